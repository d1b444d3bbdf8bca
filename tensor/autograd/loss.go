package autograd

import (
	"fmt"

	"github.com/posttrain/posttrain/tensor"
)

// The two losses on labels share posttrain's numeric core with prefopt:
// a row's log-softmax at the label with a float64 log-sum-exp
// (tensor.LogSoftmaxAt, exact for logits of any magnitude), and the
// backward's softmax in one pass from that log-sum-exp (tensor.SoftmaxLSE).

// CrossEntropy returns the mean over counted rows of −log softmax(logits)
// at the label, for logits [N, V] and labels of length N; a negative label
// (tensor.Ignore) leaves its row out. The log-softmax is fused with the
// loss, so logits of any magnitude stay finite.
//
// Labels are data, so a label ≥ V, a length mismatch or non-finite logits
// in a counted row are errors naming the row, and no Var is made; a
// malformed logits Var panics with a *tensor.ShapeError, as other ops do.
func (t *Tape) CrossEntropy(logits *Var, labels []int32) (*Var, error) {
	n, v, err := checkLabels("CrossEntropy", logits, labels)
	if err != nil {
		return nil, err
	}
	ld := logits.Value.Data()
	lse := make([]float64, n)
	var sum float64
	count := 0
	for i, y := range labels {
		if y < 0 {
			continue
		}
		lp, l, ok := tensor.LogSoftmaxAt(ld[i*v:(i+1)*v], int(y))
		if !ok {
			return nil, fmt.Errorf("autograd: CrossEntropy: row %d: logits hold NaN or +Inf, or −Inf at the label", i)
		}
		lse[i] = l
		sum -= lp
		count++
	}
	c := t.dense()
	if count > 0 {
		c.Data()[0] = float32(sum / float64(count))
	} else {
		c.Data()[0] = 0
	}
	var out *Var
	out = t.node(c, func() {
		if count == 0 {
			return
		}
		coef := out.Grad.Data()[0] / float32(count)
		dx := t.grad(logits).Data()
		nb := chunks(n, normBlock)
		t.parallel(nb, func(b int) {
			tmp := make([]float32, v)
			for i := b * normBlock; i < min((b+1)*normBlock, n); i++ {
				y := labels[i]
				if y < 0 {
					continue
				}
				// dL/dlogits = coef·(softmax − onehot(y))
				row, dr := ld[i*v:(i+1)*v], dx[i*v:(i+1)*v]
				tensor.SoftmaxLSE(tmp, coef, row, lse[i])
				tensor.Add(dr, dr, tmp)
				dr[y] -= coef
			}
		})
	}, logits)
	return out, nil
}

// LogProbs returns log softmax(logits)[i, labels[i]] for each row, shape
// [N]: the per-token log-probabilities that sequence-level objectives (DPO,
// RLOO, GRPO in prefopt) sum over completions. A negative label
// (tensor.Ignore) gives 0 and no gradient (padding, prompt tokens).
// Seeding Backward with dLoss/dlogp[i] turns a loss on log-probs into
// gradients of the model.
//
// Errors name the row, as CrossEntropy's do.
func (t *Tape) LogProbs(logits *Var, labels []int32) (*Var, error) {
	n, v, err := checkLabels("LogProbs", logits, labels)
	if err != nil {
		return nil, err
	}
	ld := logits.Value.Data()
	lse := make([]float64, n)
	c := t.dense(n)
	cd := c.Data()
	for i, y := range labels {
		cd[i] = 0
		if y < 0 {
			continue
		}
		lp, l, ok := tensor.LogSoftmaxAt(ld[i*v:(i+1)*v], int(y))
		if !ok {
			return nil, fmt.Errorf("autograd: LogProbs: row %d: logits hold NaN or +Inf, or −Inf at the label", i)
		}
		lse[i] = l
		cd[i] = float32(lp)
	}
	var out *Var
	out = t.node(c, func() {
		g, dx := out.Grad.Data(), t.grad(logits).Data()
		nb := chunks(n, normBlock)
		t.parallel(nb, func(b int) {
			tmp := make([]float32, v)
			for i := b * normBlock; i < min((b+1)*normBlock, n); i++ {
				y := labels[i]
				if y < 0 || g[i] == 0 {
					continue
				}
				// d logp / d logits = onehot(y) − softmax
				row, dr := ld[i*v:(i+1)*v], dx[i*v:(i+1)*v]
				tensor.SoftmaxLSE(tmp, -g[i], row, lse[i])
				tensor.Add(dr, dr, tmp)
				dr[y] += g[i]
			}
		})
	}, logits)
	return out, nil
}

// checkLabels validates labels of length N against logits [N, V]: logits
// of another rank are a programming error and panic, as in every op.
func checkLabels(op string, logits *Var, labels []int32) (n, v int, err error) {
	if logits.Value.Dims() != 2 {
		shapeErr(op, "logits must be [N, V], have %v", logits.Shape())
	}
	n, v = logits.Value.Dim(0), logits.Value.Dim(1)
	if len(labels) != n {
		return 0, 0, fmt.Errorf("autograd: %s: %d labels for %d rows", op, len(labels), n)
	}
	for i, y := range labels {
		if int(y) >= v {
			return 0, 0, fmt.Errorf("autograd: %s: labels[%d] = %d outside [0, %d)", op, i, y, v)
		}
	}
	return n, v, nil
}

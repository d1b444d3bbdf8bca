package autograd

import (
	"fmt"
	"math"

	"github.com/posttrain/posttrain/tensor"
)

// CrossEntropy returns the mean over counted rows of −log softmax(logits)
// at the target, for logits [N, V] and targets of length N; a negative
// target leaves its row out. The log-softmax is fused with the loss, so
// logits of any magnitude stay finite.
//
// It returns an error naming the row of a target ≥ V or of a length
// mismatch; no Var is made then.
func (t *Tape) CrossEntropy(logits *Var, targets []int32) (*Var, error) {
	if logits.Value.Dims() != 2 {
		return nil, fmt.Errorf("autograd: CrossEntropy: logits must be [N, V], have %v", logits.Shape())
	}
	n, v := logits.Value.Dim(0), logits.Value.Dim(1)
	if len(targets) != n {
		return nil, fmt.Errorf("autograd: CrossEntropy: %d targets for %d rows", len(targets), n)
	}
	for i, y := range targets {
		if int(y) >= v {
			return nil, fmt.Errorf("autograd: CrossEntropy: target %d at row %d outside vocabulary of %d", y, i, v)
		}
	}
	ld := logits.Value.Data()
	lse := t.buf(n)
	var sum float64
	count := 0
	for i, y := range targets {
		if y < 0 {
			continue
		}
		row := ld[i*v : (i+1)*v]
		lse[i] = tensor.LogSumExp(row)
		l := float64(lse[i]) - float64(row[y])
		if math.IsNaN(l) || math.IsInf(l, 0) {
			return nil, fmt.Errorf("autograd: CrossEntropy: row %d has non-finite logits", i)
		}
		sum += l
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
				y := targets[i]
				if y < 0 {
					continue
				}
				row, dr := ld[i*v:(i+1)*v], dx[i*v:(i+1)*v]
				for j, x := range row {
					tmp[j] = x - lse[i]
				}
				tensor.Exp(tmp, tmp)
				tensor.Axpy(coef, tmp, dr)
				dr[y] -= coef
			}
		})
	}, logits)
	return out, nil
}

// LogProbs returns log softmax(logits)[i, targets[i]] for each row, shape
// [N]: the per-token log-probabilities that sequence-level objectives (DPO,
// RLOO, GRPO in prefopt) sum over completions. A negative target gives 0
// and no gradient (padding, prompt tokens). Seeding Backward with
// dLoss/dlogp[i] turns a loss on log-probs into gradients of the model.
//
// Errors name the row, as CrossEntropy's do.
func (t *Tape) LogProbs(logits *Var, targets []int32) (*Var, error) {
	if logits.Value.Dims() != 2 {
		return nil, fmt.Errorf("autograd: LogProbs: logits must be [N, V], have %v", logits.Shape())
	}
	n, v := logits.Value.Dim(0), logits.Value.Dim(1)
	if len(targets) != n {
		return nil, fmt.Errorf("autograd: LogProbs: %d targets for %d rows", len(targets), n)
	}
	ld := logits.Value.Data()
	lse := t.buf(n)
	c := t.dense(n)
	cd := c.Data()
	for i, y := range targets {
		if int(y) >= v {
			return nil, fmt.Errorf("autograd: LogProbs: target %d at row %d outside vocabulary of %d", y, i, v)
		}
		cd[i] = 0
		if y < 0 {
			continue
		}
		row := ld[i*v : (i+1)*v]
		lse[i] = tensor.LogSumExp(row)
		cd[i] = row[y] - lse[i]
		if x := float64(cd[i]); math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("autograd: LogProbs: row %d has non-finite logits", i)
		}
	}
	var out *Var
	out = t.node(c, func() {
		g, dx := out.Grad.Data(), t.grad(logits).Data()
		nb := chunks(n, normBlock)
		t.parallel(nb, func(b int) {
			tmp := make([]float32, v)
			for i := b * normBlock; i < min((b+1)*normBlock, n); i++ {
				y := targets[i]
				if y < 0 || g[i] == 0 {
					continue
				}
				// d logp / d logits = onehot(y) − softmax
				row, dr := ld[i*v:(i+1)*v], dx[i*v:(i+1)*v]
				for j, x := range row {
					tmp[j] = x - lse[i]
				}
				tensor.Exp(tmp, tmp)
				tensor.Axpy(-g[i], tmp, dr)
				dr[y] += g[i]
			}
		})
	}, logits)
	return out, nil
}

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

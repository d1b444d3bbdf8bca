package distill

import (
	"fmt"

	"github.com/posttrain/posttrain/tensor"
)

// DefaultTeacherWeight is AFM's weight on the teacher's top-1 prediction.
const DefaultTeacherWeight = 0.9

// tinyProb is the probability below which a float32 softmax entry has lost
// precision (it sits near the subnormal range, or was flushed to 0), so its
// log is recomputed from the logits instead.
const tinyProb = 1e-30

// ConvexCombination returns the mean over counted rows of
//
//	L_i = −w·log p(ŷ_i) − (1−w)·log p(y_i),   p = softmax(logits_i)
//
// where y_i = labels[i] is the true next token and ŷ_i = teacherTop1[i]
// the teacher's top-1 prediction, and, when grad is not nil, writes
// dLoss/dlogits = (softmax(logits_i) − q_i)/n into grad, with
// q_i = w·onehot(ŷ_i) + (1−w)·onehot(y_i) and n the number of counted rows.
//
// A row whose label is negative (−100 in PyTorch's convention) is ignored:
// it adds nothing to the loss and its gradient row is zero. If every row is
// ignored, or there are no rows, the loss is 0, grad is all zero and the
// error is nil, so an empty step is a no-op rather than a NaN.
//
// w = 0 is plain cross-entropy, and teacherTop1 may then be nil. Where
// ŷ_i = y_i the row's loss is −log p(y_i) exactly, whatever w. grad may be
// logits itself (the gradient then overwrites the logits, saving memory);
// any other overlap (grad shifted against the logits by a row, say) is an
// error.
//
// The loss is accurate to 2⁻²⁸ absolute per row for logits of any finite
// magnitude: log p_y comes from tensor.LogSoftmaxAt, whose float64
// log-sum-exp is exact to float64's grid below 2²⁴ and which past it forms
// (z_y − max) − log Σ e^(z−max), the difference first, so all-equal
// logits of 1e16 or 3e38 give log V, not 2 or 0; log p_ŷ is log p_y plus
// the exact float64 difference z_ŷ − z_y.
//
// It returns an error, leaving grad untouched, if w is outside [0, 1]; a
// tensor is not 2-D or grad's shape differs from the logits'; labels or
// teacherTop1 have the wrong length; a counted row's label or teacher id is
// ≥ V (or the teacher id is negative); grad overlaps the logits other than
// by being them; or the logits hold NaN or ±Inf.
//
// The logits are read from memory twice — once for the finiteness check
// of every row (so that grad stays untouched on error), once by
// tensor.LogSoftmaxAt's one fused pass for the row's log-sum-exp, in
// float64 — and the gradient, e^(z−lse) by tensor.SoftmaxLSE, is written
// in one more pass while the row is in cache. Rows are spread over
// GOMAXPROCS goroutines, and steady-state calls do not allocate.
func ConvexCombination(grad, logits *tensor.Dense, labels, teacherTop1 []int32, teacherWeight float64) (float64, error) {
	return convex("ConvexCombination", grad, logits, labels, teacherTop1, teacherWeight, false)
}

// CrossEntropy returns the mean over counted rows of −log softmax(logits_i)[labels[i]]
// and, when grad is not nil, its gradient: ConvexCombination with w = 0.
// Negative labels are ignored, as there.
func CrossEntropy(grad, logits *tensor.Dense, labels []int32) (float64, error) {
	return convex("CrossEntropy", grad, logits, labels, nil, 0, false)
}

// convex is ConvexCombination; finite says the logits are known to be
// finite (a fused chunk, bounded before it was formed), sparing their
// check.
func convex(op string, grad, logits *tensor.Dense, labels, teacher []int32, w float64, finite bool) (float64, error) {
	n, v, err := dims(op, "logits", logits)
	if err != nil {
		return 0, err
	}
	if err := checkGrad(op, grad, n, v); err != nil {
		return 0, err
	}
	if err := checkUnit(op, "teacher weight", w); err != nil {
		return 0, err
	}
	if err := checkOverlap(op, grad, "logits", logits, "", nil); err != nil {
		return 0, err
	}
	count, err := checkConvex(op, labels, teacher, w, n, v, nil)
	if err != nil {
		return 0, err
	}
	if !finite {
		if err := checkFinite(op, "logits", logits, "", nil); err != nil {
			return 0, err
		}
	}
	if count == 0 {
		if grad != nil {
			grad.Zero()
		}
		return 0, nil
	}

	j := convexJobs.get()
	defer convexJobs.put(j)
	*j = convexJob{op: op, grad: grad, logits: logits, labels: labels, teacher: teacher, w: w,
		inv: 1 / float64(count), n: n, v: v, rows: chunkRows(v), parts: j.parts}
	nc := (n + j.rows - 1) / j.rows
	j.parts.reset(nc)
	run(j, nc)
	sum, err := j.parts.total()
	j.grad, j.logits, j.labels, j.teacher = nil, nil, nil, nil
	if err != nil {
		return 0, err
	}
	return sum / float64(count), nil
}

// checkConvex checks the labels and teacher ids of n rows over a
// vocabulary of v, and returns how many rows count; keep, if not nil, is
// called with each counted row in order.
func checkConvex(op string, labels, teacher []int32, w float64, n, v int, keep func(i int)) (int, error) {
	if len(labels) != n {
		return 0, fmt.Errorf("distill: %s: %d labels for %d rows", op, len(labels), n)
	}
	if teacher == nil && w != 0 {
		return 0, fmt.Errorf("distill: %s: teacherTop1 is nil but teacher weight is %v", op, w)
	}
	if teacher != nil && len(teacher) != n {
		return 0, fmt.Errorf("distill: %s: %d teacher ids for %d rows", op, len(teacher), n)
	}
	count := 0
	for i, y := range labels {
		if y < 0 {
			continue
		}
		if int(y) >= v {
			return 0, fmt.Errorf("distill: %s: labels[%d] = %d outside [0, %d)", op, i, y, v)
		}
		if teacher != nil && (teacher[i] < 0 || int(teacher[i]) >= v) {
			return 0, fmt.Errorf("distill: %s: teacherTop1[%d] = %d outside [0, %d)", op, i, teacher[i], v)
		}
		if keep != nil {
			keep(i)
		}
		count++
	}
	return count, nil
}

type convexJob struct {
	op              string
	grad, logits    *tensor.Dense
	labels, teacher []int32
	w               float64
	inv             float64 // 1/(counted rows)
	n, v, rows      int
	parts           parts
}

var convexJobs = newFreeList[convexJob]()

func (j *convexJob) chunk(c int, s *scratch) {
	lo, hi := c*j.rows, min((c+1)*j.rows, j.n)
	v := j.v
	z := j.logits.Data()
	var gd []float32
	if j.grad != nil {
		gd = j.grad.Data()
	}
	var sum float64
	for i := lo; i < hi; i++ {
		zi := z[i*v : (i+1)*v]
		y := j.labels[i]
		if y < 0 {
			if gd != nil {
				clear(gd[i*v : (i+1)*v])
			}
			continue
		}
		t := y
		if j.teacher != nil && j.w != 0 {
			t = j.teacher[i]
		}
		// log p_y and the log-sum-exp in float64, in one fused pass over
		// the row (exact for logits of any magnitude); log p_t from it by
		// the exact float64 difference z_t − z_y, so that the row is
		// read once more, for the gradient, not twice.
		lp, lse, ok := tensor.LogSoftmaxAt(zi, int(y))
		if !ok {
			j.parts.errs[c] = fmt.Errorf("distill: %s: logits row %d is not finite", j.op, i)
			return
		}
		if y == t {
			sum -= lp
		} else {
			lpt := lp + (float64(zi[t]) - float64(zi[y]))
			sum -= j.w*lpt + (1-j.w)*lp
		}
		if gd != nil {
			g := gd[i*v : (i+1)*v]
			tensor.SoftmaxLSE(g, float32(j.inv), zi, lse) // g may be zi
			if y == t {
				g[y] -= float32(j.inv)
			} else {
				g[t] -= float32(j.w * j.inv)
				g[y] -= float32((1 - j.w) * j.inv)
			}
		}
	}
	j.parts.sum[c] = sum
}

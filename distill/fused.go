package distill

import (
	"context"
	"fmt"

	"github.com/posttrain/posttrain/internal/lmhead"
	"github.com/posttrain/posttrain/tensor"
)

// Head is a model's final hidden states and output layer, the input of
// the fused losses: its logits are H·Wᵀ + Bias, with H [N, D] (one row
// per position), W [V, D] (lm_head, or the tied embedding) and Bias [V]
// or nil. It is the same type as prefopt.Head.
type Head = lmhead.Model

// HeadGrad receives a fused loss's gradients. H is overwritten with
// dLoss/dH (zero rows for ignored positions); W and Bias are accumulated
// into (+=), as a model's parameter gradients are across micro-batches.
// Any field may be nil to skip that gradient; H may be the student's H
// itself, overwriting the hidden states with their gradient. It is the
// same type as prefopt.HeadGrad.
type HeadGrad = lmhead.Grad

// Fused computes the package's losses straight from a Head, without the
// [N, V] logits: rows are taken a chunk at a time, the chunk's logits are
// formed by one GEMM, the loss's own row kernels (the very code of the
// unfused functions) turn them into their gradient in place, and two more
// GEMMs carry it back to dH and dW. The extra memory is ChunkRows·V floats
// per model, whatever N; rows whose label is negative are never gathered,
// so they cost nothing.
//
// Results equal the unfused loss applied to H·Wᵀ + Bias up to float32
// rounding (a chunk's logits may differ from the whole product's in their
// last bits — the GEMM takes another path for a single row — and dW is
// summed chunk by chunk), and do not depend on the number of workers. Every check of the unfused
// loss is made, and H, W and Bias are checked for NaN and ±Inf, before any
// output is written, so an error leaves every output untouched.
//
// A call is cancelled through ctx, checked before each chunk: it then
// returns ctx's error, wrapped (errors.Is(err, context.Canceled) holds).
// Cancelled before the first chunk's gradient is written — in the
// checks, or in the forward-only pass that runs first when the logits
// could overflow — it leaves every output untouched; cancelled later, the
// gradient outputs hold the chunks done so far (grad.W those chunks'
// contribution added), and must be discarded, as a stopping training loop
// does. Leaving them untouched there would take a private [V, D] buffer
// for dW, as large as W itself.
//
// The zero value is ready to use. A Fused keeps its scratch between calls
// and must not be used by two goroutines at once.
type Fused struct {
	// ChunkRows is the number of rows per chunk; 0 sizes chunks so that
	// their logits fill a quarter of the last-level cache, within 256 to
	// 1024 rows.
	ChunkRows int

	c       lmhead.Chunker
	labels  []int32
	teacher []int32
	rows    []int32
	topIDs  []int32
	topLPs  []float32
}

// CrossEntropy is CrossEntropy over the logits of s, fused: it returns
// the mean over counted rows of −log softmax(z_i)[labels[i]] and writes
// the gradients into grad.
func (f *Fused) CrossEntropy(ctx context.Context, grad HeadGrad, s Head, labels []int32) (float64, error) {
	return f.convex(ctx, "Fused.CrossEntropy", grad, s, labels, nil, 0)
}

// ConvexCombination is ConvexCombination over the logits of s, fused:
// the AFM target w·onehot(teacherTop1) + (1−w)·onehot(labels), whose
// teacher enters only through its stored top-1 ids (see distill/cache).
func (f *Fused) ConvexCombination(ctx context.Context, grad HeadGrad, s Head, labels, teacherTop1 []int32, teacherWeight float64) (float64, error) {
	return f.convex(ctx, "Fused.ConvexCombination", grad, s, labels, teacherTop1, teacherWeight)
}

func (f *Fused) convex(ctx context.Context, op string, grad HeadGrad, s Head, labels, teacher []int32, w float64) (float64, error) {
	n, v, _, err := f.check(op, grad, s)
	if err != nil {
		return 0, err
	}
	if err := checkUnit(op, "teacher weight", w); err != nil {
		return 0, err
	}
	f.rows = f.rows[:0]
	count, err := checkConvex(op, labels, teacher, w, n, v, f.keep)
	if err != nil {
		return 0, err
	}
	loss := func(lo, hi int, z, _ *tensor.Dense, g *tensor.Dense) (float64, error) {
		lab := pick(&f.labels, labels, f.rows[lo:hi])
		var tea []int32
		if teacher != nil {
			tea = pick(&f.teacher, teacher, f.rows[lo:hi])
		}
		return convex(op, g, z, lab, tea, w, true)
	}
	return f.run(ctx, op, grad, s, nil, 1, count, loss)
}

// SparseKL is SparseKL over the logits of s, fused: the teacher's stored
// top-k log-probabilities against the student's head, mixed with the
// hard-label cross-entropy by α.
func (f *Fused) SparseKL(ctx context.Context, grad HeadGrad, s Head, labels []int32, teacher TopK, leftover Leftover, alpha float64) (float64, error) {
	const op = "Fused.SparseKL"
	n, v, _, err := f.check(op, grad, s)
	if err != nil {
		return 0, err
	}
	f.rows = f.rows[:0]
	if _, err := checkSparse(op, labels, teacher, leftover, alpha, n, v, f.keep); err != nil {
		return 0, err
	}
	k := teacher.K
	loss := func(lo, hi int, z, _ *tensor.Dense, g *tensor.Dense) (float64, error) {
		idx := f.rows[lo:hi]
		var lab []int32
		if labels != nil {
			lab = pick(&f.labels, labels, idx)
		}
		ids := growInt32(&f.topIDs, len(idx)*k)
		lps := buf(&f.topLPs, len(idx)*k)
		for r, i := range idx {
			copy(ids[r*k:(r+1)*k], teacher.IDs[int(i)*k:int(i+1)*k])
			copy(lps[r*k:(r+1)*k], teacher.LogProbs[int(i)*k:int(i+1)*k])
		}
		return sparseKL(op, g, z, lab, TopK{IDs: ids, LogProbs: lps, K: k}, leftover, alpha, true)
	}
	return f.run(ctx, op, grad, s, nil, 1, len(f.rows), loss)
}

// SoftTarget is SoftTarget with both models given by their heads, fused:
// the student's and the teacher's logits are formed chunk by chunk side by
// side, so neither exists in full. The teacher's hidden width may differ
// from the student's; its vocabulary and row count may not. labels is an
// optional mask: rows with a negative label are ignored (nil counts every
// row), and the mean is over counted rows.
func (f *Fused) SoftTarget(ctx context.Context, grad HeadGrad, s, t Head, labels []int32, temperature float64) (float64, error) {
	return f.divergence(ctx, "Fused.SoftTarget", grad, s, t, labels, 0, temperature, temperature*temperature)
}

// ForwardKL is ForwardKL over the two heads' logits, fused; labels as for
// SoftTarget.
func (f *Fused) ForwardKL(ctx context.Context, grad HeadGrad, s, t Head, labels []int32, temperature float64) (float64, error) {
	return f.divergence(ctx, "Fused.ForwardKL", grad, s, t, labels, 0, temperature, 1)
}

// ReverseKL is ReverseKL over the two heads' logits, fused; labels as for
// SoftTarget.
func (f *Fused) ReverseKL(ctx context.Context, grad HeadGrad, s, t Head, labels []int32, temperature float64) (float64, error) {
	return f.divergence(ctx, "Fused.ReverseKL", grad, s, t, labels, 1, temperature, 1)
}

// GeneralizedJSD is GeneralizedJSD over the two heads' logits, fused;
// labels as for SoftTarget.
func (f *Fused) GeneralizedJSD(ctx context.Context, grad HeadGrad, s, t Head, labels []int32, beta, temperature float64) (float64, error) {
	const op = "Fused.GeneralizedJSD"
	if err := checkUnit(op, "beta", beta); err != nil {
		return 0, err
	}
	return f.divergence(ctx, op, grad, s, t, labels, beta, temperature, 1)
}

func (f *Fused) divergence(ctx context.Context, op string, grad HeadGrad, s, t Head, labels []int32, beta, temp, factor float64) (float64, error) {
	n, v, d, err := f.check(op, grad, s)
	if err != nil {
		return 0, err
	}
	tn, tv, _, err := t.Dims("distill", op, "teacher")
	if err != nil {
		return 0, err
	}
	if tn != n || tv != v {
		return 0, fmt.Errorf("distill: %s: teacher has %d rows and vocabulary %d, student %d and %d", op, tn, tv, n, v)
	}
	if err := grad.Check("distill", op, s, n, v, d, t); err != nil {
		return 0, err
	}
	if err := checkTemperature(op, temp); err != nil {
		return 0, err
	}
	if labels != nil && len(labels) != n {
		return 0, fmt.Errorf("distill: %s: %d labels for %d rows", op, len(labels), n)
	}
	f.rows = f.rows[:0]
	for i := range n {
		if labels == nil || labels[i] >= 0 {
			f.rows = append(f.rows, int32(i))
		}
	}
	loss := func(_, _ int, z, zt *tensor.Dense, g *tensor.Dense) (float64, error) {
		return divergence(op, g, z, zt, beta, temp, factor, true)
	}
	// The row kernels divide the logits by T before anything else.
	return f.run(ctx, op, grad, s, &t, 1/temp, len(f.rows), loss)
}

// keep appends row i to f.rows.
func (f *Fused) keep(i int) { f.rows = append(f.rows, int32(i)) }

// check validates the student head and grad's shapes.
func (f *Fused) check(op string, grad HeadGrad, s Head) (n, v, d int, err error) {
	if n, v, d, err = s.Dims("distill", op, "student"); err != nil {
		return 0, 0, 0, err
	}
	return n, v, d, grad.Check("distill", op, s, n, v, d)
}

// chunkLoss is one loss on a chunk of logits z (and a teacher's zt): the
// chunk's mean loss, with its gradient written into g (z itself, or nil).
type chunkLoss func(lo, hi int, z, zt, g *tensor.Dense) (float64, error)

// run checks the heads for NaN, ±Inf and logits that could overflow, then
// runs loss over the count counted rows in f.rows, chunk by chunk, and
// returns the mean of the chunks' losses weighted by their rows. If the
// logits, times scale, cannot be bounded away from overflow, a forward-only pass first
// runs the loss on every chunk without gradients, so that an error still
// leaves the outputs untouched.
func (f *Fused) run(ctx context.Context, op string, grad HeadGrad, s Head, t *lmhead.Model, scale float64, count int, loss chunkLoss) (float64, error) {
	bound, err := lmhead.Finite("distill", op, "student", s, f.rows)
	if err != nil {
		return 0, err
	}
	if t != nil {
		tb, err := lmhead.Finite("distill", op, "teacher", *t, f.rows)
		if err != nil {
			return 0, err
		}
		bound = max(bound, tb)
	}
	if count == 0 {
		if grad.H != nil {
			grad.H.Zero()
		}
		return 0, nil
	}
	f.c.Rows = f.ChunkRows
	var sum float64
	pass := lmhead.Pass{Name: "distill: " + op, S: s, T: t, Rows: f.rows,
		Loss: func(lo, hi int, z, zt *tensor.Dense) (float32, error) {
			for k, m := range []*tensor.Dense{z, zt} {
				if m == nil {
					continue
				}
				for r := range hi - lo {
					if x := tensor.Sum(m.Row(r)); x == x && !isInf32(x) {
						continue
					}
					for _, x := range m.Row(r) {
						if x != x || isInf32(x) {
							return 0, fmt.Errorf("distill: %s: %s logits of row %d overflow float32", op, [2]string{"student", "teacher"}[k], f.rows[lo+r])
						}
					}
				}
			}
			_, err := loss(lo, hi, z, zt, nil)
			return 0, err
		}}
	if !(bound*scale < lmhead.Safe) {
		if err := f.c.Run(ctx, pass); err != nil {
			return 0, err
		}
	}
	sum = 0
	g := &grad
	if g.H == nil && g.W == nil && g.Bias == nil {
		g = nil
	}
	pass.Grad = g
	pass.Loss = func(lo, hi int, z, zt *tensor.Dense) (float32, error) {
		var gz *tensor.Dense
		if g != nil {
			gz = z
		}
		l, err := loss(lo, hi, z, zt, gz)
		sum += l * float64(hi-lo)
		// The row kernels scaled the gradient by 1/(hi−lo); the loss is
		// the mean over all count rows.
		return float32(float64(hi-lo) / float64(count)), err
	}
	if err := f.c.Run(ctx, pass); err != nil {
		return 0, err
	}
	return sum / float64(count), nil
}

// pick gathers src[idx] into *buf.
func pick(buf *[]int32, src []int32, idx []int32) []int32 {
	out := growInt32(buf, len(idx))
	for r, i := range idx {
		out[r] = src[i]
	}
	return out
}

func growInt32(p *[]int32, n int) []int32 {
	if cap(*p) < n {
		*p = make([]int32, n)
	}
	return (*p)[:n]
}

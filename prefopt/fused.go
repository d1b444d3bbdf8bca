package prefopt

import (
	"fmt"

	"github.com/posttrain/posttrain/internal/lmhead"
	"github.com/posttrain/posttrain/tensor"
)

// Head is a policy's final hidden states and output layer: its logits are
// H·Wᵀ + Bias. The fused log-probs take it in place of the logits.
type Head struct {
	H    *tensor.Dense // [N, D] final hidden states, one row per position
	W    *tensor.Dense // [V, D] output weight (lm_head, or the tied embedding)
	Bias []float32     // [V], or nil for none
}

// HeadGrad receives the fused backward pass's gradients. H is overwritten
// with dL/dH (zero rows where nothing is scored); W and Bias are
// accumulated into (+=). Any field may be nil to skip it; H may be the
// head's H itself.
type HeadGrad struct {
	H    *tensor.Dense // [N, D]
	W    *tensor.Dense // [V, D]
	Bias []float32     // [V]
}

// Fused computes per-token log-probs and their backward pass straight from
// a Head, without the [N, V] logits: rows are taken a chunk at a time, the
// chunk's logits formed by one GEMM and handed to the unfused row code of
// TokenLogProbs or TokenLogProbsBackward, and in the backward pass
// two more GEMMs carry the gradient to dH and dW. Extra memory is
// ChunkRows·V floats, whatever N. Rows with a negative label (and, going
// back, rows whose dlogp is 0) are never gathered, so prompt and padding
// positions cost nothing.
//
// Between the two passes run the package's usual reductions —
// SequenceLogProbs, an Objective, SequenceLogProbsBackward — exactly as
// on the unfused log-probs; Pairwise does the whole round trip for a
// pairwise objective. The backward pass forms each chunk's logits again,
// and their softmax from scratch (a chunk's rows differ between the passes,
// and so may the logits' last bits, so a log-sum-exp kept from the forward
// pass could not be trusted), so a step costs four GEMMs instead of three,
// and nothing of size V is kept between the passes.
//
// Results equal the unfused functions on H·Wᵀ + Bias up to float32
// rounding (of the logits' last bits and of dW's sum over chunks), and do
// not depend on the number of workers. H's scored rows, W and Bias are
// checked for NaN and ±Inf, and every other input as the unfused
// functions check it, before any output is written; an error leaves every
// output untouched.
//
// The zero value is ready to use. A Fused keeps its scratch between calls
// and must not be used by two goroutines at once.
type Fused struct {
	// ChunkRows is the number of rows per chunk; 0 sizes chunks so that
	// their logits fill a quarter of the last-level cache, within 256 to
	// 1024 rows.
	ChunkRows int

	c      lmhead.Chunker
	rows   []int32
	labels []int32
	dlogp  []float32
	out    []float32
}

// TokenLogProbs writes dst[i] = log softmax(z_i)[labels[i]] for the
// logits z = H·Wᵀ + Bias of s, and 0 where labels[i] is negative. With no
// gradient to carry, it is one GEMM over the labelled rows.
func (f *Fused) TokenLogProbs(dst []float32, s Head, labels []int32) error {
	const op = "Fused.TokenLogProbs"
	n, _, _, err := f.check(op, HeadGrad{}, s, labels)
	if err != nil {
		return err
	}
	if len(dst) != n {
		return fmt.Errorf("prefopt: %s: dst has %d entries, H %d rows", op, len(dst), n)
	}
	f.rows = f.rows[:0]
	for i, y := range labels {
		if y >= 0 {
			f.rows = append(f.rows, int32(i))
		}
	}
	m := model(s)
	if _, err := lmhead.Finite("prefopt", op, "head", m, f.rows); err != nil {
		return err
	}
	// Results go to scratch and are committed once every row has passed.
	out := growF32(&f.out, n)
	clear(out)
	if len(f.rows) > 0 {
		f.c.Rows = f.ChunkRows
		err := f.c.Run(lmhead.Pass{S: m, Rows: f.rows, Loss: func(lo, hi int, z, _ *tensor.Dense) (float32, error) {
			idx := f.rows[lo:hi]
			dl := growF32(&f.dlogp, len(idx))
			if err := tokenLogProbs(op, dl, nil, z, pickLabels(&f.labels, labels, idx)); err != nil {
				return 0, overflow(op, z, idx, err)
			}
			for r, i := range idx {
				out[i] = dl[r]
			}
			return 0, nil
		}})
		if err != nil {
			return err
		}
	}
	copy(dst, out)
	return nil
}

// TokenLogProbsBackward is TokenLogProbs' backward pass: given
// dlogp[i] = dL/d(dst[i]), it writes dL/dH into grad.H and adds dL/dW and
// dL/dBias into grad.W and grad.Bias, for
//
//	dL/dz_i = dlogp[i]·(onehot(labels[i]) − softmax(z_i)).
//
// Rows whose label is negative or whose dlogp is 0 cost nothing.
func (f *Fused) TokenLogProbsBackward(grad HeadGrad, s Head, labels []int32, dlogp []float32) error {
	const op = "Fused.TokenLogProbsBackward"
	n, _, _, err := f.check(op, grad, s, labels)
	if err != nil {
		return err
	}
	if len(dlogp) != n {
		return fmt.Errorf("prefopt: %s: dlogp has %d entries, H %d rows", op, len(dlogp), n)
	}
	f.rows = f.rows[:0]
	for i, g := range dlogp {
		if !finite(float64(g)) {
			return fmt.Errorf("prefopt: %s: dlogp[%d] is %v", op, i, g)
		}
		if labels[i] >= 0 && g != 0 {
			f.rows = append(f.rows, int32(i))
		}
	}
	m := model(s)
	bound, err := lmhead.Finite("prefopt", op, "head", m, f.rows)
	if err != nil {
		return err
	}
	if len(f.rows) == 0 {
		if grad.H != nil {
			grad.H.Zero()
		}
		return nil
	}
	f.c.Rows = f.ChunkRows
	pass := lmhead.Pass{S: m, Rows: f.rows}
	if !(bound < lmhead.Safe) {
		// Logits that may overflow: find out before writing anything.
		pass.Loss = func(lo, hi int, z, _ *tensor.Dense) (float32, error) {
			idx := f.rows[lo:hi]
			dl := growF32(&f.dlogp, len(idx))
			if err := tokenLogProbs(op, dl, nil, z, pickLabels(&f.labels, labels, idx)); err != nil {
				return 0, overflow(op, z, idx, err)
			}
			return 0, nil
		}
		if err := f.c.Run(pass); err != nil {
			return err
		}
	}
	g := &lmhead.Grad{H: grad.H, W: grad.W, Bias: grad.Bias}
	if g.H == nil && g.W == nil && g.Bias == nil {
		return nil
	}
	pass.Grad = g
	pass.Loss = func(lo, hi int, z, _ *tensor.Dense) (float32, error) {
		idx := f.rows[lo:hi]
		dl := growF32(&f.dlogp, len(idx))
		for r, i := range idx {
			dl[r] = dlogp[i]
		}
		return 1, tokenLogProbsBackward(op, z, z, pickLabels(&f.labels, labels, idx), dl, nil)
	}
	return f.c.Run(pass)
}

// Pairwise runs a pairwise objective from the policy's head in one call:
// the fused log-probs of the chosen and the rejected completions (laid
// out in one batch as chosen, described by l, and rejected, described by
// lr, stacked: s.H holds l.Size() chosen rows and then lr.Size() rejected
// rows; tokens likewise), the per-sequence sums (or means with average),
// the objective with the reference log-probs in ref (RefChosen and
// RefRejected; the policy fields are filled in here), and the backward
// pass into grad. It returns the objective's Result.
func (f *Fused) Pairwise(grad HeadGrad, s Head, tokens []int32, l, lr Layout, average bool, obj Objective, ref Batch) (Result, error) {
	const op = "Fused.Pairwise"
	if obj == nil {
		return Result{}, fmt.Errorf("prefopt: %s: nil objective", op)
	}
	nc, nr := l.Size(), lr.Size()
	if s.H == nil || s.H.Dims() != 2 || s.H.Dim(0) != nc+nr {
		return Result{}, fmt.Errorf("prefopt: %s: H must have %d rows (%d chosen, %d rejected)", op, nc+nr, nc, nr)
	}
	if len(tokens) != nc+nr {
		return Result{}, fmt.Errorf("prefopt: %s: %d tokens for %d rows", op, len(tokens), nc+nr)
	}
	if len(l.Len) != len(lr.Len) {
		return Result{}, fmt.Errorf("prefopt: %s: %d chosen and %d rejected sequences", op, len(l.Len), len(lr.Len))
	}
	labels := make([]int32, nc+nr)
	if err := l.Targets(labels[:nc], tokens[:nc]); err != nil {
		return Result{}, err
	}
	if err := lr.Targets(labels[nc:], tokens[nc:]); err != nil {
		return Result{}, err
	}
	if _, _, _, err := f.check(op, grad, s, labels); err != nil {
		return Result{}, err // before the forward pass, not after it
	}
	logp := make([]float32, nc+nr)
	if err := f.TokenLogProbs(logp, s, labels); err != nil {
		return Result{}, err
	}
	b := ref
	b.PolicyChosen, b.PolicyRejected = make([]float64, len(l.Len)), make([]float64, len(lr.Len))
	b.ChosenLen, b.RejectedLen = l.CompletionLen(), lr.CompletionLen()
	if err := SequenceLogProbs(b.PolicyChosen, logp[:nc], l, average); err != nil {
		return Result{}, err
	}
	if err := SequenceLogProbs(b.PolicyRejected, logp[nc:], lr, average); err != nil {
		return Result{}, err
	}
	res, err := obj.Loss(b)
	if err != nil {
		return Result{}, err
	}
	dlogp := make([]float32, nc+nr)
	if err := SequenceLogProbsBackward(dlogp[:nc], res.GradChosen, l, average); err != nil {
		return Result{}, err
	}
	if err := SequenceLogProbsBackward(dlogp[nc:], res.GradRejected, lr, average); err != nil {
		return Result{}, err
	}
	if err := f.TokenLogProbsBackward(grad, s, labels, dlogp); err != nil {
		return Result{}, err
	}
	return res, nil
}

// check validates the head, grad's shapes and the labels' length and range.
func (f *Fused) check(op string, grad HeadGrad, s Head, labels []int32) (n, v, d int, err error) {
	m := model(s)
	if n, v, d, err = m.Dims("prefopt", op, "head"); err != nil {
		return 0, 0, 0, err
	}
	g := lmhead.Grad{H: grad.H, W: grad.W, Bias: grad.Bias}
	if err := g.Check("prefopt", op, m, n, v, d); err != nil {
		return 0, 0, 0, err
	}
	if len(labels) != n {
		return 0, 0, 0, fmt.Errorf("prefopt: %s: %d labels for %d rows of H", op, len(labels), n)
	}
	for i, y := range labels {
		if int(y) >= v {
			return 0, 0, 0, fmt.Errorf("prefopt: %s: labels[%d] = %d, out of range [0, %d)", op, i, y, v)
		}
	}
	return n, v, d, nil
}

func model(s Head) lmhead.Model { return lmhead.Model{H: s.H, W: s.W, Bias: s.Bias} }

// overflow names the first row of chunk z (rows idx of the batch) whose
// logits are not finite, or returns err.
func overflow(op string, z *tensor.Dense, idx []int32, err error) error {
	for r, i := range idx {
		for _, x := range z.Row(r) {
			if !finite(float64(x)) {
				return fmt.Errorf("prefopt: %s: logits of row %d overflow float32", op, i)
			}
		}
	}
	return err
}

func pickLabels(buf *[]int32, src, idx []int32) []int32 {
	if cap(*buf) < len(idx) {
		*buf = make([]int32, len(idx))
	}
	out := (*buf)[:len(idx)]
	for r, i := range idx {
		out[r] = src[i]
	}
	return out
}

func growF32(p *[]float32, n int) []float32 {
	if cap(*p) < n {
		*p = make([]float32, n)
	}
	return (*p)[:n]
}

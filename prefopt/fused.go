package prefopt

import (
	"context"
	"fmt"

	"github.com/posttrain/posttrain/internal/lmhead"
	"github.com/posttrain/posttrain/tensor"
)

// Head is a policy's final hidden states and output layer: its logits
// are H·Wᵀ + Bias, with H [N, D] (one row per position), W [V, D]
// (lm_head, or the tied embedding) and Bias [V] or nil. The fused
// log-probs take it in place of the logits. It is the same type as
// distill.Head.
type Head = lmhead.Model

// HeadGrad receives the fused backward pass's gradients. H is overwritten
// with dL/dH (zero rows where nothing is scored); W and Bias are
// accumulated into (+=). Any field may be nil to skip it; H may be the
// head's H itself. It is the same type as distill.HeadGrad.
type HeadGrad = lmhead.Grad

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
// pairwise objective. Called on its own, TokenLogProbsBackward forms each
// chunk's logits again, and their softmax from scratch (its chunks skip
// the rows whose dlogp is 0, so they differ from the forward pass's, and
// so may the logits' last bits: a log-sum-exp kept from the forward pass
// could not be trusted), so the round trip costs four GEMMs. Pairwise,
// which knows that nothing changed in between, runs the backward pass
// over the forward pass's own chunks, last first: the last chunk's logits
// are still in the buffer and are not formed again, and every row's
// log-sum-exp from the forward pass makes its softmax one pass. That is
// the three GEMMs of the floor (forward, dH, dW) when the scored rows fit
// in one chunk (ChunkRows, 256 to 1024 rows by default), and
// 3 + (k−1)/k for k chunks. Fewer is not possible within a chunk's memory:
// dW = Σ_i dlogp_i·(onehot(y_i) − p_i)·h_iᵀ needs every row's softmax
// p_i again once the objective has produced the dlogp_i, which depend on
// the whole batch, so keeping the logits between the passes would take
// the N·V floats the fused path exists to avoid.
//
// Results equal the unfused functions on H·Wᵀ + Bias up to float32
// rounding (of the logits' last bits and of dW's sum over chunks), and do
// not depend on the number of workers. H's scored rows, W and Bias are
// checked for NaN and ±Inf, and every other input as the unfused
// functions check it, before any output is written; an error leaves every
// output untouched.
//
// Each call is cancelled through ctx, checked before each chunk: it
// then returns ctx's error, wrapped (errors.Is(err, context.Canceled)
// holds). TokenLogProbs then leaves dst untouched; TokenLogProbsBackward
// and Pairwise leave the gradients untouched if cancelled before the
// first chunk's gradient is written, and otherwise with the chunks done
// so far (grad.W those chunks' contribution added), to be discarded —
// leaving them untouched there would take a private [V, D] buffer for
// dW, as large as W itself.
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
	lse    []float64 // each row's log-sum-exp, from the last TokenLogProbs
	lseC   []float64 // a chunk's
}

// TokenLogProbs writes dst[i] = log softmax(z_i)[labels[i]] for the
// logits z = H·Wᵀ + Bias of s, and 0 where labels[i] is negative. With no
// gradient to carry, it is one GEMM over the labelled rows.
func (f *Fused) TokenLogProbs(ctx context.Context, dst []float32, s Head, labels []int32) error {
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
	if _, err := lmhead.Finite("prefopt", op, "head", s, f.rows); err != nil {
		return err
	}
	// Results go to scratch and are committed once every row has passed.
	out := growF32(&f.out, n)
	clear(out)
	lse := growF64(&f.lse, n) // for Pairwise's backward
	if len(f.rows) > 0 {
		f.c.Rows = f.ChunkRows
		err := f.c.Run(ctx, lmhead.Pass{Name: "prefopt: " + op, S: s, Rows: f.rows, Loss: func(lo, hi int, z, _ *tensor.Dense) (float32, error) {
			idx := f.rows[lo:hi]
			dl := growF32(&f.dlogp, len(idx))
			ls := growF64(&f.lseC, len(idx))
			if err := tokenLogProbs(op, dl, ls, z, pickLabels(&f.labels, labels, idx)); err != nil {
				return 0, overflow(op, z, idx, err)
			}
			for r, i := range idx {
				out[i], lse[i] = dl[r], ls[r]
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
func (f *Fused) TokenLogProbsBackward(ctx context.Context, grad HeadGrad, s Head, labels []int32, dlogp []float32) error {
	return f.backward(ctx, "Fused.TokenLogProbsBackward", grad, s, labels, dlogp, false)
}

// backward is TokenLogProbsBackward. With kept, it follows a successful
// TokenLogProbs over the same head and labels in the same call (Pairwise):
// the chunks are those of that forward pass (every labelled row, so
// their logits come out bit for bit the same), its last chunk's logits
// are reused rather than formed again, and its log-sum-exps turn each
// row's softmax into one pass.
func (f *Fused) backward(ctx context.Context, op string, grad HeadGrad, s Head, labels []int32, dlogp []float32, kept bool) error {
	n, _, _, err := f.check(op, grad, s, labels)
	if err != nil {
		return err
	}
	if len(dlogp) != n {
		return fmt.Errorf("prefopt: %s: dlogp has %d entries, H %d rows", op, len(dlogp), n)
	}
	if !kept {
		f.rows = f.rows[:0]
	}
	for i, g := range dlogp {
		if !finite(float64(g)) {
			return fmt.Errorf("prefopt: %s: dlogp[%d] is %v", op, i, g)
		}
		if !kept && labels[i] >= 0 && g != 0 {
			f.rows = append(f.rows, int32(i))
		}
	}
	var bound float64
	if !kept {
		// (The forward pass checked the kept rows and formed their logits.)
		if bound, err = lmhead.Finite("prefopt", op, "head", s, f.rows); err != nil {
			return err
		}
	}
	if len(f.rows) == 0 {
		if grad.H != nil {
			grad.H.Zero()
		}
		return nil
	}
	f.c.Rows = f.ChunkRows
	pass := lmhead.Pass{Name: "prefopt: " + op, S: s, Rows: f.rows, Reuse: kept}
	if !kept && !(bound < lmhead.Safe) {
		// Logits that may overflow: find out before writing anything.
		pass.Loss = func(lo, hi int, z, _ *tensor.Dense) (float32, error) {
			idx := f.rows[lo:hi]
			dl := growF32(&f.dlogp, len(idx))
			if err := tokenLogProbs(op, dl, nil, z, pickLabels(&f.labels, labels, idx)); err != nil {
				return 0, overflow(op, z, idx, err)
			}
			return 0, nil
		}
		if err := f.c.Run(ctx, pass); err != nil {
			return err
		}
	}
	g := &grad
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
		var ls []float64
		if kept {
			ls = growF64(&f.lseC, len(idx))
			for r, i := range idx {
				ls[r] = f.lse[i]
			}
		}
		return 1, tokenLogProbsBackward(op, z, z, pickLabels(&f.labels, labels, idx), dl, ls)
	}
	return f.c.Run(ctx, pass)
}

// Pairwise runs a pairwise objective from the policy's head in one call:
// the fused log-probs of the chosen and the rejected completions (laid
// out in one batch as chosen, described by l, and rejected, described by
// lr, stacked: s.H holds l.Size() chosen rows and then lr.Size() rejected
// rows; tokens likewise), the per-sequence sums (or means with average),
// the objective with the reference log-probs in ref (RefChosen and
// RefRejected; the policy fields are filled in here), and the backward
// pass into grad. It returns the objective's Result.
func (f *Fused) Pairwise(ctx context.Context, grad HeadGrad, s Head, tokens []int32, l, lr Layout, average bool, obj Objective, ref Batch) (Result, error) {
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
	if err := f.TokenLogProbs(ctx, logp, s, labels); err != nil {
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
	if err := f.backward(ctx, op, grad, s, labels, dlogp, true); err != nil {
		return Result{}, err
	}
	return res, nil
}

// check validates the head, grad's shapes and the labels' length and range.
func (f *Fused) check(op string, grad HeadGrad, s Head, labels []int32) (n, v, d int, err error) {
	if n, v, d, err = s.Dims("prefopt", op, "head"); err != nil {
		return 0, 0, 0, err
	}
	if err := grad.Check("prefopt", op, s, n, v, d); err != nil {
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

func growF64(p *[]float64, n int) []float64 {
	if cap(*p) < n {
		*p = make([]float64, n)
	}
	return (*p)[:n]
}

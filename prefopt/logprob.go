package prefopt

import (
	"fmt"

	"github.com/posttrain/posttrain/internal/parallel"
	"github.com/posttrain/posttrain/tensor"
)

// Ignore is tensor.Ignore (−100), the label that marks a row of logits as
// not scored (a prompt or padding position): TokenLogProbs writes 0 for it
// and TokenLogProbsBackward a zero gradient row. Any negative label is
// ignored the same way.
//
// Deprecated: use tensor.Ignore, the one constant distill, prefopt and
// tensor/autograd share. (Before, prefopt's was −1.)
const Ignore = tensor.Ignore

// minRowsPerWorker is the rows of one parallel chunk: fewer would cost
// more in hand-offs than the rows take, and tiny batches stay on the
// calling goroutine.
const minRowsPerWorker = 16

// TokenLogProbs writes dst[i] = log softmax(logits[i])[labels[i]] for
// logits [N, V]: the log-prob of each label token, without the [N, V]
// log-softmax. A negative label (tensor.Ignore) writes 0. Rows are split
// over up to GOMAXPROCS goroutines.
//
// The log-prob is exact, to rounding, for logits of any finite magnitude
// (all-equal logits of 1e16 or 3e38 give −log V).
//
// It returns an error, leaving dst untouched, if the lengths disagree, a
// label is ≥ V, a scored row holds NaN or +Inf, or the label's logit is
// −Inf (probability 0; −Inf elsewhere masks a token and is allowed).
func TokenLogProbs(dst []float32, logits *tensor.Dense, labels []int32) error {
	return tokenLogProbs("TokenLogProbs", dst, nil, logits, labels)
}

// TokenLogProbsLSE is TokenLogProbs that also keeps each row's log-sum-exp
// in lse (N entries, 0 for ignored rows), for TokenLogProbsBackwardLSE:
// with it the backward pass reads the logits once instead of twice, as
// PyTorch's log_softmax backward reuses its saved output.
func TokenLogProbsLSE(dst []float32, lse []float64, logits *tensor.Dense, labels []int32) error {
	if lse == nil {
		return fmt.Errorf("prefopt: TokenLogProbsLSE: nil lse")
	}
	return tokenLogProbs("TokenLogProbsLSE", dst, lse, logits, labels)
}

func tokenLogProbs(op string, dst []float32, lse []float64, logits *tensor.Dense, labels []int32) error {
	n, v, err := checkTokens(op, logits, labels)
	if err != nil {
		return err
	}
	if len(dst) != n {
		return fmt.Errorf("prefopt: %s: dst has %d entries, logits %d rows", op, len(dst), n)
	}
	if lse != nil && len(lse) != n {
		return fmt.Errorf("prefopt: %s: lse has %d entries, logits %d rows", op, len(lse), n)
	}
	// Outputs are written only once every row has passed, so an error
	// leaves dst and lse as they were; N floats of scratch are noise next
	// to [N, V].
	out, outLSE := make([]float32, n), make([]float64, n)
	data := logits.Data()
	err = parallelRows(n, func(lo, hi int) error {
		for i := lo; i < hi; i++ {
			t := labels[i]
			if t < 0 {
				continue
			}
			lp, l, ok := tensor.LogSoftmaxAt(data[i*v:(i+1)*v], int(t))
			if !ok {
				return fmt.Errorf("prefopt: %s: row %d: logits hold NaN or +Inf, or the label's logit is −Inf (label logit %v)", op, i, data[i*v+int(t)])
			}
			out[i], outLSE[i] = float32(lp), l
		}
		return nil
	})
	if err != nil {
		return err
	}
	copy(dst, out)
	copy(lse, outLSE)
	return nil
}

// TokenLogProbsBackward is TokenLogProbs' backward pass, fused: given
// dlogp[i] = dL/d(log-prob of row i), it writes
//
//	grad[i] = dlogp[i]·(onehot(labels[i]) − softmax(logits[i])),
//
// row by row into grad [N, V] with no [N, V] temporary. grad may be logits
// itself, overwriting the logits with their gradient to save N·V floats;
// any other overlap of their memory is an error.
// Rows with a negative label or a zero dlogp get a zero gradient without
// touching their logits, so masked positions cost only the clear.
//
// Bad lengths, labels or dlogp values are reported before anything is
// written. Logits are not scanned for NaN up front (TokenLogProbs on the
// same logits already did); if a row turns out to hold NaN or +Inf, an
// error names it and the contents of grad are unspecified.
func TokenLogProbsBackward(grad, logits *tensor.Dense, labels []int32, dlogp []float32) error {
	return tokenLogProbsBackward("TokenLogProbsBackward", grad, logits, labels, dlogp, nil)
}

// TokenLogProbsBackwardLSE is TokenLogProbsBackward given the row
// log-sum-exps that TokenLogProbsLSE kept for the same logits: each row's
// softmax is then written in one pass over the logits (two for a row whose
// log-sum-exp is 2²⁴ or more in magnitude, which float64 no longer holds
// to float32 precision relative to the logits). An lse that is not
// finite, or below its row's label logit, is an error; one that does not
// come from these logits gives a wrong gradient, which nothing here can
// detect.
func TokenLogProbsBackwardLSE(grad, logits *tensor.Dense, labels []int32, dlogp []float32, lse []float64) error {
	if lse == nil {
		return fmt.Errorf("prefopt: TokenLogProbsBackwardLSE: nil lse")
	}
	return tokenLogProbsBackward("TokenLogProbsBackwardLSE", grad, logits, labels, dlogp, lse)
}

func tokenLogProbsBackward(op string, grad, logits *tensor.Dense, labels []int32, dlogp []float32, lse []float64) error {
	n, v, err := checkTokens(op, logits, labels)
	if err != nil {
		return err
	}
	if grad == nil || !grad.SameShape(logits) {
		return fmt.Errorf("prefopt: %s: grad must have the logits' shape %v", op, logits.Shape())
	}
	if err := checkInPlace(op, grad, logits); err != nil {
		return err
	}
	if len(dlogp) != n {
		return fmt.Errorf("prefopt: %s: dlogp has %d entries, logits %d rows", op, len(dlogp), n)
	}
	if lse != nil && len(lse) != n {
		return fmt.Errorf("prefopt: %s: lse has %d entries, logits %d rows", op, len(lse), n)
	}
	ld := logits.Data()
	for i, d := range dlogp {
		if !finite(float64(d)) {
			return fmt.Errorf("prefopt: %s: dlogp[%d] is %v", op, i, d)
		}
		if t := labels[i]; lse != nil && t >= 0 && d != 0 && !(finite(lse[i]) && lse[i] >= float64(ld[i*v+int(t)])) {
			return fmt.Errorf("prefopt: %s: lse[%d] = %v cannot be the log-sum-exp of its row (label logit %v)", op, i, lse[i], ld[i*v+int(t)])
		}
	}
	gd := grad.Data()
	return parallelRows(n, func(lo, hi int) error {
		for i := lo; i < hi; i++ {
			g := gd[i*v : (i+1)*v]
			t, d := labels[i], dlogp[i]
			if t < 0 || d == 0 {
				clear(g)
				continue
			}
			row := ld[i*v : (i+1)*v]
			if lse != nil {
				// SoftmaxLSE itself falls back to the max-subtracting
				// softmax where a float64 lse has lost precision (past 2²⁴).
				tensor.SoftmaxLSE(g, -d, row, lse[i])
				g[t] += d
				continue
			}
			tensor.ScaledSoftmax(g, -d, row)
			// ScaledSoftmax fills a row holding NaN or +Inf (or only −Inf)
			// with NaN, so one look at the label finds it.
			if p := g[t]; p != p {
				return fmt.Errorf("prefopt: %s: row %d: logits hold NaN or +Inf, or only −Inf", op, i)
			}
			g[t] += d
		}
		return nil
	})
}

func checkTokens(op string, logits *tensor.Dense, labels []int32) (n, v int, err error) {
	if logits == nil || logits.Dims() != 2 {
		var shape []int
		if logits != nil {
			shape = logits.Shape()
		}
		return 0, 0, fmt.Errorf("prefopt: %s: logits must be [N, V], have shape %v", op, shape)
	}
	n, v = logits.Rows(), logits.Cols()
	if len(labels) != n {
		return 0, 0, fmt.Errorf("prefopt: %s: %d labels for %d rows of logits", op, len(labels), n)
	}
	for i, t := range labels {
		if int(t) >= v {
			return 0, 0, fmt.Errorf("prefopt: %s: labels[%d] = %d, out of range [0, %d)", op, i, t, v)
		}
	}
	return n, v, nil
}

// parallelRows runs fn over [0, n) split into chunks of minRowsPerWorker
// rows on posttrain's worker pool (internal/parallel). Rows are
// independent, so the result does not depend on the worker count. If
// chunks fail, the error of the lowest failing chunk (hence the lowest bad
// row) is returned.
func parallelRows(n int, fn func(lo, hi int) error) error {
	chunks := (n + minRowsPerWorker - 1) / minRowsPerWorker
	if chunks <= 1 {
		return fn(0, n)
	}
	errs := make([]error, chunks)
	parallel.For(chunks, func(c int) {
		errs[c] = fn(c*minRowsPerWorker, min(n, (c+1)*minRowsPerWorker))
	})
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// Layout describes a batch of B token sequences right-padded to a common
// width T, the usual shape of a model's input [B, T] and its logits
// [B·T, V]:
//
//	tokens[b·T + t]  token t of sequence b, for t < Len[b]; padding after
//	logits[b·T + t]  the model's prediction of token t+1 of sequence b
//
// Sequence b is PromptLen[b] prompt tokens followed by Len[b] − PromptLen[b]
// completion tokens. Only completion tokens are scored, so the rows that
// predict them are t = PromptLen[b]−1, …, Len[b]−2; every other row (the
// prompt, the last token, the padding) contributes nothing. PromptLen[b] ≥ 1
// because the first token is never predicted.
//
// The per-token log-probs that SequenceLogProbs reads have the logits' row
// layout: entry b·T + t is the log-prob of token t+1. Labels builds the
// matching labels for TokenLogProbs.
type Layout struct {
	Width     int   // T, the padded length of every sequence
	PromptLen []int // prompt tokens per sequence, ≥ 1
	Len       []int // prompt plus completion tokens per sequence, PromptLen[b] ≤ Len[b] ≤ Width
}

// Check reports whether the layout is consistent.
func (l Layout) Check() error {
	if l.Width < 1 {
		return fmt.Errorf("prefopt: Layout: Width = %d, need ≥ 1", l.Width)
	}
	if len(l.PromptLen) != len(l.Len) {
		return fmt.Errorf("prefopt: Layout: %d prompt lengths for %d sequences", len(l.PromptLen), len(l.Len))
	}
	for b, p := range l.PromptLen {
		if p < 1 || p > l.Len[b] || l.Len[b] > l.Width {
			return fmt.Errorf("prefopt: Layout: sequence %d: PromptLen %d, Len %d, Width %d; need 1 ≤ PromptLen ≤ Len ≤ Width", b, p, l.Len[b], l.Width)
		}
	}
	return nil
}

// Size returns B·T, the number of token positions (rows of logits).
func (l Layout) Size() int { return len(l.Len) * l.Width }

// CompletionLen returns Len[b] − PromptLen[b] per sequence: the token
// counts pairwise objectives take as ChosenLen and RejectedLen.
func (l Layout) CompletionLen() []int {
	c := make([]int, len(l.Len))
	for b := range c {
		c[b] = l.Len[b] - l.PromptLen[b]
	}
	return c
}

// Labels writes the TokenLogProbs labels for tokens laid out as l
// describes: dst[b·T + t] = tokens[b·T + t + 1] on rows that predict a
// completion token, tensor.Ignore elsewhere.
func (l Layout) Labels(dst, tokens []int32) error {
	if err := l.Check(); err != nil {
		return err
	}
	if len(tokens) != l.Size() || len(dst) != l.Size() {
		return fmt.Errorf("prefopt: Layout.Labels: tokens %d and dst %d, need B·T = %d", len(tokens), len(dst), l.Size())
	}
	T := l.Width
	for b := range l.Len {
		for t := l.PromptLen[b]; t < l.Len[b]; t++ {
			if tokens[b*T+t] < 0 {
				return fmt.Errorf("prefopt: Layout.Labels: sequence %d token %d is %d", b, t, tokens[b*T+t])
			}
		}
	}
	for b := range l.Len {
		row := dst[b*T : (b+1)*T]
		for t := range row {
			if t >= l.PromptLen[b]-1 && t < l.Len[b]-1 {
				row[t] = tokens[b*T+t+1]
			} else {
				row[t] = tensor.Ignore
			}
		}
	}
	return nil
}

// Targets is Labels.
//
// Deprecated: use Labels; posttrain calls target token ids labels.
func (l Layout) Targets(dst, tokens []int32) error { return l.Labels(dst, tokens) }

// SequenceLogProbs writes per-sequence completion log-probs from per-token
// log-probs in l's layout: dst[b] is the sum over sequence b's completion
// tokens, or with average the mean over them (an empty completion is then
// an error). Sums accumulate in float64. Entries outside completions are
// never read. It leaves dst untouched on error.
func SequenceLogProbs(dst []float64, tokenLogp []float32, l Layout, average bool) error {
	const op = "SequenceLogProbs"
	if err := checkSeq(op, l, len(dst), len(tokenLogp), average); err != nil {
		return err
	}
	T := l.Width
	out := make([]float64, len(l.Len))
	for b := range out {
		var s float64
		for t := l.PromptLen[b] - 1; t < l.Len[b]-1; t++ {
			x := float64(tokenLogp[b*T+t])
			if !finite(x) {
				return fmt.Errorf("prefopt: %s: sequence %d position %d: log-prob %v", op, b, t, x)
			}
			s += x
		}
		if average {
			s /= float64(l.Len[b] - l.PromptLen[b])
		}
		out[b] = s
	}
	copy(dst, out)
	return nil
}

// SequenceLogProbsBackward is SequenceLogProbs' backward pass: given
// dSeq[b] = dL/d(dst[b]), it writes dL/d(tokenLogp) into dTok, dSeq[b] (or
// dSeq[b]/|completion| with average) on sequence b's completion rows and 0
// elsewhere: the dlogp that TokenLogProbsBackward takes.
func SequenceLogProbsBackward(dTok []float32, dSeq []float64, l Layout, average bool) error {
	const op = "SequenceLogProbsBackward"
	if err := checkSeq(op, l, len(dSeq), len(dTok), average); err != nil {
		return err
	}
	if err := checkFinite(op, "dSeq", dSeq); err != nil {
		return err
	}
	T := l.Width
	clear(dTok)
	for b, d := range dSeq {
		if average {
			d /= float64(l.Len[b] - l.PromptLen[b])
		}
		for t := l.PromptLen[b] - 1; t < l.Len[b]-1; t++ {
			dTok[b*T+t] = float32(d)
		}
	}
	return nil
}

func checkSeq(op string, l Layout, nseq, ntok int, average bool) error {
	if err := l.Check(); err != nil {
		return err
	}
	if nseq != len(l.Len) {
		return fmt.Errorf("prefopt: %s: %d per-sequence entries for %d sequences", op, nseq, len(l.Len))
	}
	if ntok != l.Size() {
		return fmt.Errorf("prefopt: %s: %d per-token entries, layout has B·T = %d", op, ntok, l.Size())
	}
	if average {
		for b := range l.Len {
			if l.Len[b] == l.PromptLen[b] {
				return fmt.Errorf("prefopt: %s: sequence %d has an empty completion; cannot average", op, b)
			}
		}
	}
	return nil
}

// checkInPlace allows grad to be logits itself (each row is read before it
// is overwritten) but refuses any other overlap of their memory, such as
// grad shifted by a row, which would overwrite rows before they are read.
func checkInPlace(op string, grad, logits *tensor.Dense) error {
	if grad == nil || !grad.Overlaps(logits) {
		return nil
	}
	if g, z := grad.Data(), logits.Data(); len(g) == len(z) && &g[0] == &z[0] {
		return nil
	}
	return fmt.Errorf("prefopt: %s: grad overlaps logits without being them", op)
}

package recipe

import (
	"context"
	"fmt"

	"github.com/posttrain/posttrain/internal/lmhead"
	"github.com/posttrain/posttrain/prefopt"
	"github.com/posttrain/posttrain/tensor"
	"github.com/posttrain/posttrain/tensor/autograd"
	"github.com/posttrain/posttrain/tensor/nn"
)

// Seqs is a batch of prompt+completion token sequences, right-padded to
// a common width, in the layout prefopt's sequence log-probs read:
// sequence b occupies Tokens[b·W : (b+1)·W], its prompt the first
// Layout.PromptLen[b] tokens, its completion up to Layout.Len[b].
type Seqs struct {
	Tokens []int32
	Layout prefopt.Layout
	Labels []int32 // the scored next token of each position, prefopt.Ignore elsewhere
	// Starts, for packed rows (Pack), lists where the examples of each
	// row begin; nil when each row is one sequence. Packed, the Layout
	// and the log-probs are per row, Labels alone marking what is scored.
	Starts [][]int
}

// NewSeqs lays out prompts[i] followed by completions[i] for every i,
// padded with pad (any id in the vocabulary: padding is never attended
// to by earlier positions and never scored). Every prompt needs at least
// one token; an empty completion is allowed and scores 0.
func NewSeqs(prompts, completions [][]int32, pad int32) (Seqs, error) {
	if len(prompts) != len(completions) || len(prompts) == 0 {
		return Seqs{}, fmt.Errorf("recipe: NewSeqs: %d prompts, %d completions", len(prompts), len(completions))
	}
	var s Seqs
	for i := range prompts {
		if len(prompts[i]) == 0 {
			return Seqs{}, fmt.Errorf("recipe: NewSeqs: sequence %d has an empty prompt", i)
		}
		n := len(prompts[i]) + len(completions[i])
		s.Layout.Width = max(s.Layout.Width, n)
		s.Layout.PromptLen = append(s.Layout.PromptLen, len(prompts[i]))
		s.Layout.Len = append(s.Layout.Len, n)
	}
	w := s.Layout.Width
	s.Tokens = make([]int32, len(prompts)*w)
	for i := range prompts {
		row := s.Tokens[i*w : (i+1)*w]
		k := copy(row, prompts[i])
		k += copy(row[k:], completions[i])
		for j := k; j < w; j++ {
			row[j] = pad
		}
	}
	s.Labels = make([]int32, len(s.Tokens))
	if err := s.Layout.Targets(s.Labels, s.Tokens); err != nil {
		return Seqs{}, err
	}
	return s, nil
}

// N returns the number of sequences.
func (s Seqs) N() int { return len(s.Layout.Len) }

// CompletionTokens returns the number of scored tokens.
func (s Seqs) CompletionTokens() int {
	n := 0
	if s.Starts != nil {
		for _, y := range s.Labels {
			if y >= 0 {
				n++
			}
		}
		return n
	}
	for b, l := range s.Layout.Len {
		n += l - s.Layout.PromptLen[b]
	}
	return n
}

// Tokens returns the number of real (unpadded) tokens.
func (s Seqs) RealTokens() int {
	n := 0
	for _, l := range s.Layout.Len {
		n += l
	}
	return n
}

// Scorer computes the summed (or, with Average, mean) completion
// log-probs of a batch of sequences under a model, and carries a loss's
// gradient with respect to them back into the model's trainable
// parameters — the two halves of every sequence-level objective.
//
// The forward pass records the decoder body on a tape and takes the
// log-probs from its final hidden states outside the tape, through the
// fused LM head (prefopt.Fused): the logits exist a chunk of rows at a
// time, never whole. The backward pass forms each chunk's logits again,
// turns dLoss/dlog-prob into the hidden states' gradient and adds the
// head's (into the embedding's gradient when the head is tied; not at all
// when it is frozen, as under LoRA), then runs the tape backward from the
// hidden states. With Unfused the [M, V] logits of the scored positions
// are formed whole instead and become their own gradient. A Scorer
// reuses its buffers across calls and is used from one goroutine.
type Scorer struct {
	Model   *nn.Model
	Average bool // mean instead of sum over completion tokens (IPO's and SimPO's length normalization)
	// PassTokens bounds the tokens LogProbs runs in one pass: a batch is
	// split into groups of whole sequences of at most this many tokens
	// (at least one sequence), so the memory of a pass without gradients
	// stays bounded whatever the batch; and the block-by-block passes
	// (LogProbs, and Forward and Backward with Recompute) run each block
	// on such groups, so their activations are one group's of one block.
	// 0 means DefaultPassTokens.
	PassTokens int
	// Recompute turns on gradient checkpointing (Chen et al. 2016; TRL's
	// gradient_checkpointing): Forward keeps only each decoder block's
	// input, and Backward runs each block forward again, on its own, just
	// before its backward pass — half by half, the attention half twice —
	// and group by group (PassTokens). Activations then cost one half
	// block's worth of one group instead of the whole model's, for about
	// 40% more compute. The gradients are the same up to float32 rounding
	// (LoRA dropout masks are redrawn identically).
	//
	// A training step then holds, besides the weights (4·P bytes) and the
	// trained parameters' gradients and AdamW moments (12 bytes each):
	// the blocks' inputs, 4·(Layers+1)·N·DModel bytes for a batch of N
	// tokens; a few [N, DModel] buffers; one half block's activations and
	// gradients for one group of G ≤ PassTokens tokens (about 190 kB per
	// token at SmolLM2-135M's shape with LoRA on q, k, v, o); and one
	// chunk of the head's logits (HeadChunkBytes).
	Recompute bool
	// Unfused forms the scored positions' logits [M, V] whole, as Logits
	// returns them, instead of taking the log-probs and their gradient
	// straight from the hidden states and the head a chunk of rows at a
	// time (prefopt.Fused: memory of a chunk's logits, not all of them).
	// The results agree to float32 rounding; the unfused path is kept
	// for tests and for losses that need the logits themselves.
	Unfused bool

	fused prefopt.Fused
	// ctx is the running trainer's context, which cancels the fused
	// head's calls between chunks; nil outside a trainer.
	ctx    context.Context
	acc    lmhead.Chunker
	headed bool // the last pass formed sc.logits
	tape   *autograd.Tape
	hidden *autograd.Var
	seqs   Seqs // of the recorded Forward
	logits *tensor.Dense
	tok    []float32 // per position, 0 where not scored
	// The scored positions, their labels, hidden states, token log-probs
	// and log-sum-exps, and the token gradient, compact.
	rows   []int32
	labels []int32
	hs     *tensor.Dense
	ctok   []float32
	clse   []float64
	cd     []float32
	dhs    *tensor.Dense
	// Gradient checkpointing: the blocks' inputs, the tape that
	// recomputes them, the RoPE tables of the recorded batch.
	inputs []*tensor.Dense
	xL, in *autograd.Var
	dx, dg *tensor.Dense
	xb     *tensor.Dense // the block-by-block pass's residual stream
	grp    [][2]int
	mid    *tensor.Dense // a block's middle, recomputed
	mv     *autograd.Var
	// RoPE tables of the last width, for ropeFor.
	ropeCos, ropeSin *tensor.Dense
	ropeFor          *nn.Model
	cos, sin         *tensor.Dense
	dtok             []float32
	dh               *tensor.Dense
}

// context returns the context of the fused head's calls.
func (sc *Scorer) context() context.Context {
	if sc.ctx == nil {
		return context.Background()
	}
	return sc.ctx
}

// NewScorer returns a Scorer for m.
func NewScorer(m *nn.Model) *Scorer { return &Scorer{Model: m, tape: autograd.NewTape()} }

// Forward returns the completion log-probs of s's sequences, recording
// what Backward needs. Each call forgets the previous one's recording.
func (sc *Scorer) Forward(s Seqs) ([]float64, error) { return sc.forward(s, true) }

// DefaultPassTokens is Scorer.PassTokens' default.
const DefaultPassTokens = 256

// LogProbs returns the completion log-probs of s's sequences without
// recording anything (evaluation, reference models), in passes of at
// most PassTokens tokens. Logits and TokenLogProbs then describe the last
// pass only when the batch took more than one.
func (sc *Scorer) LogProbs(s Seqs) ([]float64, error) {
	per := max(1, sc.passTokens()/s.Layout.Width)
	if per >= s.N() {
		return sc.forward(s, false)
	}
	out := make([]float64, 0, s.N())
	for b := 0; b < s.N(); b += per {
		e := min(b+per, s.N())
		w := s.Layout.Width
		sub := Seqs{
			Tokens: s.Tokens[b*w : e*w],
			Labels: s.Labels[b*w : e*w],
			Layout: prefopt.Layout{Width: w, PromptLen: s.Layout.PromptLen[b:e], Len: s.Layout.Len[b:e]},
		}
		if s.Starts != nil {
			sub.Starts = s.Starts[b:e]
		}
		lp, err := sc.forward(sub, false)
		if err != nil {
			return nil, err
		}
		out = append(out, lp...)
	}
	return out, nil
}

func (sc *Scorer) forward(s Seqs, record bool) ([]float64, error) {
	m := sc.Model
	h, err := sc.body(s, record)
	if err != nil {
		return nil, err
	}
	sc.hidden = nil
	n, v, k := len(s.Tokens), m.Config.Vocab, len(sc.rows)
	sc.ctok = fitF32(sc.ctok, k)
	sc.headed = sc.Unfused
	switch {
	case k == 0:
	case sc.Unfused:
		sc.logits, sc.clse = fit(sc.logits, k, v), fitF64(sc.clse, k)
		tensor.Gemm(false, true, 1, sc.hs, m.HeadWeight(), 0, sc.logits)
		if err := prefopt.TokenLogProbsLSE(sc.ctok, sc.clse, sc.logits, sc.labels); err != nil {
			return nil, fmt.Errorf("recipe: Scorer: %w", err)
		}
	default:
		if err := sc.fused.TokenLogProbs(sc.context(), sc.ctok, sc.head(), sc.labels); err != nil {
			return nil, fmt.Errorf("recipe: Scorer: %w", err)
		}
	}
	sc.tok = fitF32(sc.tok, n)
	clear(sc.tok)
	for r, i := range sc.rows {
		sc.tok[i] = sc.ctok[r]
	}
	lp := make([]float64, s.N())
	if err := prefopt.SequenceLogProbs(lp, sc.tok, s.Layout, sc.Average); err != nil {
		return nil, fmt.Errorf("recipe: Scorer: %w", err)
	}
	if record {
		sc.hidden, sc.seqs = h, s
	}
	return lp, nil
}

// body runs the decoder body on s (recording it with record) and keeps
// the final hidden states of the scored positions in sc.hs, without
// forming any logits: the distillation losses take them with the head.
func (sc *Scorer) body(s Seqs, record bool) (*autograd.Var, error) {
	m := sc.Model
	if m.Head.B != nil {
		return nil, fmt.Errorf("recipe: Scorer: output heads with a bias are not supported")
	}
	if sc.tape == nil {
		sc.tape = autograd.NewTape()
	}
	if s.Starts != nil {
		if sc.Average {
			return nil, fmt.Errorf("recipe: Scorer: packed rows have no per-sequence mean (Average)")
		}
		if len(s.Starts) != s.N() {
			return nil, fmt.Errorf("recipe: Scorer: packed rows: %d starts for %d rows", len(s.Starts), s.N())
		}
		if err := nn.CheckStarts(len(s.Tokens), s.Starts); err != nil {
			return nil, fmt.Errorf("recipe: Scorer: packed rows: %w", err)
		}
	}
	t := sc.tape
	t.Reset()
	t.NoGrad = !record
	sc.hidden, sc.inputs, sc.headed = nil, sc.inputs[:0], false
	var h *autograd.Var
	var err error
	switch {
	case record && sc.Recompute:
		h, err = sc.checkpointed(s)
	case record && s.Starts != nil:
		h, err = m.HiddenPacked(t, s.Tokens, s.Starts)
	case record:
		h, err = m.Hidden(t, s.Tokens, s.N())
	default:
		h, err = sc.blockwise(s)
	}
	if err != nil {
		return nil, fmt.Errorf("recipe: Scorer: %w", err)
	}
	sc.gather(h.Value, s)
	if record {
		sc.hidden, sc.seqs = h, s
	}
	return h, nil
}

// gather keeps the scored positions of s, their labels and their rows of
// the hidden states h in sc.rows, sc.labels and sc.hs. Only the scored
// positions (completion tokens) reach the head: prompt and padding rows
// would cost a GEMM row and V floats each for nothing.
func (sc *Scorer) gather(h *tensor.Dense, s Seqs) {
	sc.rows, sc.labels = sc.rows[:0], sc.labels[:0]
	for i, y := range s.Labels {
		if y >= 0 {
			sc.rows = append(sc.rows, int32(i))
			sc.labels = append(sc.labels, y)
		}
	}
	sc.hs = fit(sc.hs, len(sc.rows), h.Dim(1))
	for r, i := range sc.rows {
		copy(sc.hs.Row(r), h.Row(int(i)))
	}
}

// HeadChunkBytes bounds the logits a fused pass holds at once: a chunk
// of the scored rows whose [rows, V] logits fit in it (at least 16 rows,
// at most lmhead's cache-sized default). The cache-sized chunk of a large
// last-level cache can be tens of MB, a fifth of what a small model's
// training step needs besides its weights.
const HeadChunkBytes = 16 << 20

// head returns the scored positions' hidden states with the model's
// output weight, the fused losses' input, and sizes the fused head's
// chunks by HeadChunkBytes.
func (sc *Scorer) head() prefopt.Head {
	if sc.fused.ChunkRows == 0 {
		v := sc.Model.Config.Vocab
		sc.fused.ChunkRows = min(lmhead.ChunkRows(v, 1), max(16, HeadChunkBytes/(4*v)/16*16))
	}
	return prefopt.Head{H: sc.hs, W: sc.Model.HeadWeight()}
}

// headGrad returns where the head's gradient goes: the output weight's
// gradient (the embedding's when tied) when it trains, nothing when it is
// frozen (LoRA).
func (sc *Scorer) headGrad() *tensor.Dense {
	if w := sc.Model.Head.W; w.RequiresGrad() {
		return w.Grad
	}
	return nil
}

// Backward adds to the model's trainable parameters' gradients the
// gradient of a loss whose derivative with respect to the log-probs that
// the last Forward returned is dSeq.
func (sc *Scorer) Backward(dSeq []float64) error {
	if sc.hidden == nil {
		return fmt.Errorf("recipe: Scorer.Backward: no Forward recorded")
	}
	s, m := sc.seqs, sc.Model
	if len(dSeq) != s.N() {
		return fmt.Errorf("recipe: Scorer.Backward: %d gradients for %d sequences", len(dSeq), s.N())
	}
	sc.dtok = fitF32(sc.dtok, len(s.Tokens))
	if err := prefopt.SequenceLogProbsBackward(sc.dtok, dSeq, s.Layout, sc.Average); err != nil {
		return fmt.Errorf("recipe: Scorer.Backward: %w", err)
	}
	sc.cd = fitF32(sc.cd, len(sc.rows))
	for r, i := range sc.rows {
		sc.cd[r] = sc.dtok[i]
	}
	return sc.backwardTokens(m, "Backward")
}

// backwardTokens carries the compact token gradient sc.cd through the
// head and the body: fused, the hidden states of the scored rows become
// their own gradient; unfused, the logits become theirs.
func (sc *Scorer) backwardTokens(m *nn.Model, op string) error {
	if sc.headed {
		if len(sc.rows) > 0 {
			if err := prefopt.TokenLogProbsBackwardLSE(sc.logits, sc.logits, sc.labels, sc.cd, sc.clse); err != nil {
				return fmt.Errorf("recipe: Scorer.%s: %w", op, err)
			}
		}
		sc.backwardLogits(m, sc.logits)
		return nil
	}
	if len(sc.rows) > 0 {
		g := prefopt.HeadGrad{H: sc.hs, W: sc.headGrad()}
		if err := sc.fused.TokenLogProbsBackward(sc.context(), g, sc.head(), sc.labels, sc.cd); err != nil {
			return fmt.Errorf("recipe: Scorer.%s: %w", op, err)
		}
	}
	sc.backwardHidden(sc.hs)
	return nil
}

// Logits returns the logits [M, V] of the last pass's scored positions
// (the M completion tokens, sequence after sequence: row r predicts the
// r-th entry of TokenLogProbs; Labels gives their tokens). A fused pass
// (the default) has not formed them, so the first call after it does,
// from the kept hidden states: M·V floats that the fused path otherwise
// never holds; call it before the backward pass, which turns the kept
// hidden states into their gradient. They are the Scorer's buffer:
// BackwardLogits may be given them back, overwritten with a gradient.
func (sc *Scorer) Logits() *tensor.Dense {
	if !sc.headed {
		sc.logits = fit(sc.logits, len(sc.rows), sc.Model.Config.Vocab)
		if len(sc.rows) > 0 {
			tensor.Gemm(false, true, 1, sc.hs, sc.Model.HeadWeight(), 0, sc.logits)
		}
		sc.headed = true
	}
	return sc.logits
}

// Labels returns the tokens that Logits' rows predict.
func (sc *Scorer) Labels() []int32 { return sc.labels }

// BackwardLogits adds to the model's trainable parameters' gradients the
// gradient of a loss whose derivative with respect to the last Forward's
// Logits is g [M, V] (losses that need the logits whole give it). g may
// be Logits() itself.
func (sc *Scorer) BackwardLogits(g *tensor.Dense) error {
	if sc.hidden == nil {
		return fmt.Errorf("recipe: Scorer.BackwardLogits: no Forward recorded")
	}
	if k, v := len(sc.rows), sc.Model.Config.Vocab; g.Dims() != 2 || g.Dim(0) != k || g.Dim(1) != v {
		return fmt.Errorf("recipe: Scorer.BackwardLogits: gradient of shape %v for logits [%d %d]", g.Shape(), k, v)
	}
	sc.backwardLogits(sc.Model, g)
	return nil
}

func (sc *Scorer) backwardLogits(m *nn.Model, g *tensor.Dense) {
	k := len(sc.rows)
	if w := sc.headGrad(); w != nil && k > 0 {
		tensor.Gemm(true, false, 1, g, sc.hs, 1, w) // dW += Gᵀ·H
	}
	if k > 0 && sc.hidden.RequiresGrad() {
		sc.dhs = fit(sc.dhs, k, sc.hs.Dim(1))
		tensor.Gemm(false, false, 1, g, m.HeadWeight(), 0, sc.dhs) // dH = G·W on the scored rows
	}
	sc.backwardHidden(sc.dhs)
}

// backwardHidden runs the recorded pass backward from dhs, the gradient
// of the scored positions' hidden states (the other positions' is 0).
func (sc *Scorer) backwardHidden(dhs *tensor.Dense) {
	h := sc.hidden
	sc.hidden = nil
	if !h.RequiresGrad() {
		return
	}
	sc.dh = fit(sc.dh, h.Value.Dim(0), h.Value.Dim(1))
	sc.dh.Zero()
	for r, i := range sc.rows {
		copy(sc.dh.Row(int(i)), dhs.Row(r))
	}
	sc.tape.Backward(h, sc.dh)
	if sc.xL != nil {
		sc.backwardBlocks()
	}
}

// checkpointed runs the decoder body on the recording tape one block at a
// time, keeping each block's input and forgetting its activations, and
// returns the final norm's output recorded on sc.tape from a leaf holding
// the last block's output. Each block runs on one group of sequences at a
// time (groups), so the tape holds one group's activations of one block.
func (sc *Scorer) checkpointed(s Seqs) (*autograd.Var, error) {
	m := sc.Model
	var err error
	if sc.cos, sc.sin, err = sc.rope(s); err != nil {
		return nil, err
	}
	// The blocks run on sc.tape, rewound between them, so one arena
	// serves the blocks, the head and, in Backward, the recomputation.
	t := sc.tape
	t.Reset()
	// The saved inputs keep their buffers from step to step.
	n, d := len(s.Tokens), m.Config.DModel
	keep := sc.inputs[:cap(sc.inputs)]
	sc.inputs = sc.inputs[:0]
	buf := func(i int) *tensor.Dense {
		var old *tensor.Dense
		if i < len(keep) {
			old = keep[i]
		}
		return fit(old, n, d)
	}
	x := buf(0)
	copy(x.Data(), m.Embed.Forward(t, s.Tokens).Value.Data())
	groups := sc.groups(s)
	w := s.Layout.Width
	for i := range m.Blocks {
		sc.inputs = append(sc.inputs, x)
		next := buf(i + 1)
		for _, g := range groups {
			t.Reset()
			y := sc.block(&m.Blocks[i], t, autograd.Const(rows(x, g[0]*w, g[1]*w)), s, g, sc.cos, sc.sin).Value
			copy(next.Data()[g[0]*w*d:], y.Data())
		}
		x = next
	}
	t.Reset()
	sc.inputs = append(sc.inputs, x)
	sc.xL = sc.leaf(x)
	return m.Norm.Forward(sc.tape, sc.xL), nil
}

// groups splits s's sequences into runs [first, end) of whole sequences of
// at most PassTokens tokens (at least one sequence each), the unit that
// the block-by-block passes run a block on: a block's activations are then
// those of one group, whatever the batch. The sequences of a batch never
// attend to one another, so a block gives every row the same value on a
// group as on the whole batch. LoRA dropout draws its mask over a block's
// whole input, so with dropout on there is one group.
func (sc *Scorer) groups(s Seqs) [][2]int {
	per := s.N()
	if a := sc.Model.LoRA(); a == nil || a.Config.Dropout == 0 {
		per = max(1, sc.passTokens()/max(1, s.Layout.Width))
	}
	sc.grp = sc.grp[:0]
	for b := 0; b < s.N(); b += per {
		sc.grp = append(sc.grp, [2]int{b, min(b+per, s.N())})
	}
	return sc.grp
}

func (sc *Scorer) passTokens() int {
	if sc.PassTokens > 0 {
		return sc.PassTokens
	}
	return DefaultPassTokens
}

// rows returns rows [lo, hi) of d [N, D] as a [hi−lo, D] view.
func rows(d *tensor.Dense, lo, hi int) *tensor.Dense {
	c := d.Dim(1)
	return tensor.FromSlice(d.Data()[lo*c:hi*c], hi-lo, c)
}

// leaf returns the Scorer's reusable gradient-taking leaf holding x, its
// gradient zeroed: one [N, D] gradient buffer serves every block.
func (sc *Scorer) leaf(x *tensor.Dense) *autograd.Var { return reuseLeaf(&sc.in, x) }

// midLeaf is leaf for a block's middle (the attention half's output),
// with its own gradient buffer.
func (sc *Scorer) midLeaf(x *tensor.Dense) *autograd.Var { return reuseLeaf(&sc.mv, x) }

// reuseLeaf points the leaf *v (made on first use, or when its gradient
// buffer is too small) at x and zeroes its gradient.
func reuseLeaf(v **autograd.Var, x *tensor.Dense) *autograd.Var {
	if *v == nil || cap((*v).Grad.Data()) < x.Len() {
		*v = autograd.Param(x)
	}
	l := *v
	l.Value = x
	l.Grad = fit(l.Grad, x.Dim(0), x.Dim(1))
	l.Grad.Zero()
	return l
}

// rope checks s for a block-by-block pass, as Model.Hidden checks its
// input, and returns the RoPE tables of s's width, kept for the next
// batch of that width.
func (sc *Scorer) rope(s Seqs) (cos, sin *tensor.Dense, err error) {
	m := sc.Model
	if s.Layout.Width > m.Config.Context {
		return nil, nil, fmt.Errorf("sequence length %d exceeds context %d", s.Layout.Width, m.Config.Context)
	}
	if err := m.CheckTokens(s.Tokens); err != nil {
		return nil, nil, err
	}
	if w := s.Layout.Width; sc.ropeCos == nil || sc.ropeFor != m || sc.ropeCos.Dim(0) != w {
		sc.ropeCos, sc.ropeSin = m.RoPETables(w)
		sc.ropeFor = m
	}
	return sc.ropeCos, sc.ropeSin, nil
}

// blockwise runs the decoder body without gradients one block at a time
// on sc.tape, rewinding the tape between blocks and running each block on
// one group of sequences at a time, so a pass holds one group's
// activations of one block whatever the depth and the batch; the final
// norm's output is on the tape.
func (sc *Scorer) blockwise(s Seqs) (*autograd.Var, error) {
	m := sc.Model
	cos, sin, err := sc.rope(s)
	if err != nil {
		return nil, err
	}
	t := sc.tape
	e := m.Embed.Forward(t, s.Tokens).Value
	sc.xb = fit(sc.xb, e.Dim(0), e.Dim(1))
	x := sc.xb
	copy(x.Data(), e.Data())
	w, d := s.Layout.Width, x.Dim(1)
	groups := sc.groups(s)
	for i := range m.Blocks {
		for _, g := range groups {
			t.Reset()
			y := sc.block(&m.Blocks[i], t, autograd.Const(rows(x, g[0]*w, g[1]*w)), s, g, cos, sin).Value
			copy(x.Data()[g[0]*w*d:], y.Data())
		}
	}
	t.Reset()
	return m.Norm.Forward(t, autograd.Const(x)), nil
}

// backwardBlocks carries the gradient that the head's backward pass left
// in the last block's output down through the blocks, recomputing each,
// one group of sequences at a time.
func (sc *Scorer) backwardBlocks() {
	m := sc.Model
	g := sc.xL.Grad
	sc.xL = nil
	s := sc.seqs
	w := s.Layout.Width
	t := sc.tape // the head's backward pass is done with it
	// Below the lowest block with trainable parameters (and a frozen
	// embedding) nothing more needs a gradient.
	low := len(m.Blocks)
	for i := len(m.Blocks) - 1; i >= 0; i-- {
		if blockTrainable(&m.Blocks[i]) {
			low = i
		}
	}
	embed := m.Embed.W.RequiresGrad()
	if embed {
		low = 0
	}
	groups := sc.groups(s)
	// g is the gradient of block i's output; the groups' input gradients
	// go to next, which becomes the next g (sc.dg and sc.dx, since the
	// leaf, whose gradient g first is, is reused by the groups).
	sc.dx = fit(sc.dx, g.Dim(0), g.Dim(1))
	sc.dg = fit(sc.dg, g.Dim(0), g.Dim(1))
	copy(sc.dg.Data(), g.Data())
	g, next := sc.dg, sc.dx
	for i := len(m.Blocks) - 1; i >= low; i-- {
		blk := &m.Blocks[i]
		for _, gr := range groups {
			// Half by half: the attention half's output, then the MLP
			// half's forward and backward from it, then the attention
			// half again and its backward. The tape holds one half's
			// activations and gradients, for one more forward pass of the
			// attention half.
			lo, hi := gr[0]*w, gr[1]*w
			t.Reset()
			in := sc.leaf(rows(sc.inputs[i], lo, hi))
			x1 := attnHalf(blk, t, in, s, gr, sc.cos, sc.sin).Value
			sc.mid = fit(sc.mid, x1.Dim(0), x1.Dim(1))
			copy(sc.mid.Data(), x1.Data())
			t.Reset()
			mid := sc.midLeaf(sc.mid)
			t.Backward(blk.ForwardMLP(t, mid), rows(g, lo, hi))
			t.Reset()
			in = sc.leaf(rows(sc.inputs[i], lo, hi))
			t.Backward(attnHalf(blk, t, in, s, gr, sc.cos, sc.sin), mid.Grad)
			copy(rows(next, lo, hi).Data(), in.Grad.Data())
		}
		g, next = next, g
	}
	if embed {
		t.Reset()
		t.Backward(m.Embed.Forward(t, s.Tokens), g)
	}
	t.Reset()
	sc.inputs = sc.inputs[:0]
}

// block runs blk on the rows of group g of s: packed when s is.
func (sc *Scorer) block(blk *nn.Block, t *autograd.Tape, x *autograd.Var, s Seqs, g [2]int, cos, sin *tensor.Dense) *autograd.Var {
	return blk.ForwardMLP(t, attnHalf(blk, t, x, s, g, cos, sin))
}

// attnHalf runs blk's attention half on the rows of group g of s.
func attnHalf(blk *nn.Block, t *autograd.Tape, x *autograd.Var, s Seqs, g [2]int, cos, sin *tensor.Dense) *autograd.Var {
	if s.Starts != nil {
		return blk.ForwardAttnPacked(t, x, s.Starts[g[0]:g[1]], cos, sin)
	}
	return blk.ForwardAttn(t, x, g[1]-g[0], cos, sin)
}

// blockTrainable reports whether any parameter of b takes gradients.
func blockTrainable(b *nn.Block) bool {
	for _, v := range []*autograd.Var{b.Norm1.W, b.Norm2.W} {
		if v.RequiresGrad() {
			return true
		}
	}
	for _, l := range []*nn.Linear{&b.Attn.Q, &b.Attn.K, &b.Attn.V, &b.Attn.O, &b.MLP.Gate, &b.MLP.Up, &b.MLP.Down} {
		if l.W.RequiresGrad() || (l.B != nil && l.B.RequiresGrad()) || (l.LoRA != nil && l.LoRA.A.RequiresGrad()) {
			return true
		}
	}
	return false
}

// accuracy returns how many scored rows of the last pass have their
// label as the logits' argmax, and how many rows are scored.
func (sc *Scorer) accuracy() (hits, n int) {
	sc.eachLogits(func(r int, z []float32) {
		if tensor.ArgMax(z) == int(sc.labels[r]) {
			hits++
		}
	})
	return hits, len(sc.labels)
}

// eachLogits calls fn on every scored row's logits in turn: the kept
// logits after an unfused pass; after a fused one, logits formed again a
// chunk of rows at a time, so they never exist whole.
func (sc *Scorer) eachLogits(fn func(r int, z []float32)) {
	k := len(sc.rows)
	if sc.headed || k == 0 {
		for r := range k {
			fn(r, sc.logits.Row(r))
		}
		return
	}
	all := make([]int32, k)
	for i := range all {
		all[i] = int32(i)
	}
	sc.head()
	sc.acc.Rows = sc.fused.ChunkRows
	pass := lmhead.Pass{S: lmhead.Model{H: sc.hs, W: sc.Model.HeadWeight()}, Rows: all,
		Loss: func(lo, hi int, z, _ *tensor.Dense) (float32, error) {
			for r := range hi - lo {
				fn(lo+r, z.Row(r))
			}
			return 0, nil
		}}
	_ = sc.acc.Run(sc.context(), pass) // the loss never fails; a cancellation shows in the trainer's next check
}

func fit(d *tensor.Dense, r, c int) *tensor.Dense {
	if d != nil && cap(d.Data()) >= r*c {
		return tensor.FromSlice(d.Data()[:r*c], r, c)
	}
	return tensor.New(r, c)
}

func fitF32(b []float32, n int) []float32 {
	if cap(b) >= n {
		return b[:n]
	}
	return make([]float32, n)
}

func fitF64(b []float64, n int) []float64 {
	if cap(b) >= n {
		return b[:n]
	}
	return make([]float64, n)
}

// TokenLogProbs returns the last Forward's completion token log-probs,
// sequence after sequence (sequence b's Len[b]−PromptLen[b] entries in
// order), the layout of prefopt.Rollout.
func (sc *Scorer) TokenLogProbs() []float64 {
	out := make([]float64, len(sc.ctok))
	for i, x := range sc.ctok {
		out[i] = float64(x)
	}
	return out
}

// BackwardTokens is Backward given the loss's gradient with respect to
// the completion token log-probs, in TokenLogProbs' layout (token-level
// objectives: GRPOLoss).
func (sc *Scorer) BackwardTokens(d []float64) error {
	if sc.hidden == nil {
		return fmt.Errorf("recipe: Scorer.BackwardTokens: no Forward recorded")
	}
	if len(d) != len(sc.rows) {
		return fmt.Errorf("recipe: Scorer.BackwardTokens: %d gradients for %d completion tokens", len(d), len(sc.rows))
	}
	sc.cd = fitF32(sc.cd, len(d))
	for i, x := range d {
		sc.cd[i] = float32(x)
	}
	return sc.backwardTokens(sc.Model, "BackwardTokens")
}

package autograd

import (
	"fmt"
	"runtime"

	"github.com/posttrain/posttrain/internal/parallel"
	"github.com/posttrain/posttrain/tensor"
)

// Var is a node of the computation: a value and, once the backward pass
// has reached it, the gradient of the seeded output with respect to it.
//
// Parameters (made by Param) own their Grad, which accumulates across
// backward passes until ZeroGrad. Intermediate Vars belong to the Tape that
// made them: their Value and Grad live in the tape's buffers and are
// reused after Tape.Reset, so copy out anything needed past that point.
type Var struct {
	Value *tensor.Dense
	Grad  *tensor.Dense // nil until a gradient reaches this Var

	needs bool   // whether gradients flow to this Var
	back  func() // propagates Grad to the inputs; nil for leaves
	view  *Var   // for Reshape: the Var whose buffers this one shares
	tape  *Tape
}

// Param returns a leaf that takes part in backward passes, with a zeroed
// gradient of the same shape as value.
func Param(value *tensor.Dense) *Var {
	return &Var{Value: value, Grad: tensor.New(value.Shape()...), needs: true}
}

// Const returns a leaf that gradients do not flow to.
func Const(value *tensor.Dense) *Var { return &Var{Value: value} }

// Shape returns the shape of the value.
func (v *Var) Shape() []int { return v.Value.Shape() }

// RequiresGrad reports whether gradients flow to v. A nil Var, such as
// the float32 weight of a layer frozen in bfloat16, takes none.
func (v *Var) RequiresGrad() bool { return v != nil && v.needs }

// ZeroGrad sets v's gradient to zero (a no-op when it has none).
func (v *Var) ZeroGrad() {
	if v.Grad != nil {
		v.Grad.Zero()
	}
}

// Tape records operations in the order they run so that Backward can
// replay them in reverse. A Tape is used from one goroutine; the ops
// themselves split large work over Workers goroutines, with results that
// do not depend on the number of workers.
//
// Buffers are handed out from an arena that Reset rewinds: a training
// loop that builds the same graph every step allocates its activations and
// gradients once, on the first step.
type Tape struct {
	// Workers bounds the goroutines an op may use; NewTape sets it to
	// GOMAXPROCS. Values ≤ 1 run everything on the calling goroutine.
	Workers int

	nodes []*Var
	pool  []*Var // Var structs reused across Reset
	npool int
	bufs  [][]float32
	nbuf  int
	// NoGrad, when set, records nothing: ops compute values only, as for
	// evaluation or sampling.
	NoGrad bool
}

// NewTape returns an empty tape using GOMAXPROCS workers.
func NewTape() *Tape { return &Tape{Workers: runtime.GOMAXPROCS(0)} }

// Reset forgets the recorded operations and rewinds the buffer arena.
// Vars made by the tape before Reset must not be used after it.
func (t *Tape) Reset() {
	clear(t.nodes)
	t.nodes = t.nodes[:0]
	t.npool = 0
	t.nbuf = 0
}

// Len returns the number of recorded operations.
func (t *Tape) Len() int { return len(t.nodes) }

// buf returns a scratch slice of length n from the arena. Its contents are
// unspecified.
//
// The arena hands out its buffers in order. When the next one is too
// small or more than twice too big — a tape that records different passes
// between resets, such as a pass without gradients and one with — the
// smallest unused buffer that is big enough takes its place, and only
// when none is does the arena grow; a buffer is never dropped. So the
// passes share one set of buffers, and a loop over a fixed set of passes
// stops allocating (and making garbage for the collector) after its first
// round.
func (t *Tape) buf(n int) []float32 {
	if t.nbuf < len(t.bufs) {
		if c := cap(t.bufs[t.nbuf]); c < n || c > 2*n {
			best := -1
			for j := t.nbuf; j < len(t.bufs); j++ {
				if c := cap(t.bufs[j]); c >= n && (best < 0 || c < cap(t.bufs[best])) {
					best = j
				}
			}
			if best < 0 {
				t.bufs = append(t.bufs, make([]float32, n))
				best = len(t.bufs) - 1
			}
			t.bufs[t.nbuf], t.bufs[best] = t.bufs[best], t.bufs[t.nbuf]
		}
		b := t.bufs[t.nbuf]
		t.nbuf++
		return b[:n]
	}
	b := make([]float32, n)
	t.bufs = append(t.bufs, b)
	t.nbuf++
	return b
}

// zbuf returns a zeroed slice of length n from the arena.
func (t *Tape) zbuf(n int) []float32 {
	b := t.buf(n)
	clear(b)
	return b
}

// dense returns an arena-backed tensor of the given shape, contents unspecified.
func (t *Tape) dense(shape ...int) *tensor.Dense {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return tensor.FromSlice(t.buf(n), shape...)
}

// node makes the output Var of an op. It needs gradients if any input
// does (and the tape is recording); back is kept only then.
func (t *Tape) node(value *tensor.Dense, back func(), inputs ...*Var) *Var {
	var v *Var
	if t.npool < len(t.pool) {
		v = t.pool[t.npool]
		*v = Var{}
	} else {
		v = new(Var)
		t.pool = append(t.pool, v)
	}
	t.npool++
	v.Value, v.tape = value, t
	if t.NoGrad {
		return v
	}
	for _, in := range inputs {
		if in.needs {
			v.needs = true
			break
		}
	}
	if v.needs {
		v.back = back
		t.nodes = append(t.nodes, v)
	}
	return v
}

// grad returns v's gradient, creating a zeroed one on first use. A view
// (Reshape) shares its source's gradient buffer, so no copy is needed
// on the way back.
func (t *Tape) grad(v *Var) *tensor.Dense {
	if v.Grad != nil {
		return v.Grad
	}
	if v.view != nil {
		g := t.grad(v.view)
		v.Grad = g.Reshape(v.Value.Shape()...)
		return v.Grad
	}
	v.Grad = tensor.FromSlice(t.zbuf(v.Value.Len()), v.Value.Shape()...)
	return v.Grad
}

// gradOut returns v's gradient for an op that writes every element of
// it, and whether the buffer is new: a new one is not zeroed, and the op
// must store where it would otherwise add. A view's buffer is its
// source's, all of it, so the same holds through Reshape.
func (t *Tape) gradOut(v *Var) (g *tensor.Dense, fresh bool) {
	if v.Grad != nil {
		return v.Grad, false
	}
	if v.view != nil {
		g, fresh = t.gradOut(v.view)
		v.Grad = g.Reshape(v.Value.Shape()...)
		return v.Grad, fresh
	}
	v.Grad = tensor.FromSlice(t.buf(v.Value.Len()), v.Value.Shape()...)
	return v.Grad, true
}

// Backward runs the recorded operations in reverse, accumulating into the
// Grad of every Var that v depends on. grad is dLoss/dv, of v's shape: the
// seed a fused loss computed elsewhere (say, dLoss/dlogits) enters here.
// A nil grad seeds 1 and requires v to hold one element.
//
// Backward may run more than once on one recording (each pass adds to the
// parameters' gradients). It panics with a *tensor.ShapeError if grad's
// size differs from v's.
func (t *Tape) Backward(v *Var, grad *tensor.Dense) {
	if !v.needs {
		return
	}
	// Gradients of intermediates from an earlier pass over this tape would
	// be counted twice: start them afresh, so that a second Backward adds
	// the same gradients to the parameters again.
	for _, n := range t.nodes {
		n.Grad = nil
	}
	g := t.grad(v)
	switch {
	case grad == nil:
		if v.Value.Len() != 1 {
			panic(&tensor.ShapeError{Op: "Backward", Msg: fmt.Sprintf("nil seed needs a one-element output, have shape %v", v.Shape())})
		}
		g.Data()[0]++
	default:
		if grad.Len() != g.Len() {
			panic(&tensor.ShapeError{Op: "Backward", Msg: fmt.Sprintf("seed of shape %v for output of shape %v", grad.Shape(), v.Shape())})
		}
		tensor.Add(g.Data(), g.Data(), grad.Data())
	}
	for i := len(t.nodes) - 1; i >= 0; i-- {
		n := t.nodes[i]
		if n.Grad != nil && n.back != nil {
			n.back()
		}
	}
}

// parallel runs fn(i) for i in [0, n) on up to t.Workers goroutines of
// posttrain's one worker pool (internal/parallel). Each index is one
// independent task, so results do not depend on scheduling.
func (t *Tape) parallel(n int, fn func(i int)) { parallel.Run(n, max(1, t.Workers), parallel.Func(fn)) }

// chunks splits n items into blocks of about size for parallel; the split
// depends only on n and size, never on the worker count.
func chunks(n, size int) int { return max(1, (n+size-1)/size) }

func shapeErr(op, format string, args ...any) {
	panic(&tensor.ShapeError{Op: op, Msg: fmt.Sprintf(format, args...)})
}

// rowsCols views a tensor as [rows, last dim].
func rowsCols(d *tensor.Dense) (int, int) {
	s := d.Shape()
	if len(s) == 0 {
		return 1, 1
	}
	c := s[len(s)-1]
	if c == 0 {
		return 0, 0
	}
	return d.Len() / c, c
}

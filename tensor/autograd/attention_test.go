package autograd

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/posttrain/posttrain/tensor"
)

// unfusedAttention is Attention written with the tape's separate ops, as
// tensor/nn composed it before the fused op existed.
func unfusedAttention(t *Tape, q, k, v *Var, batch, heads, kvh int, cos, sin *tensor.Dense) *Var {
	n := q.Value.Dim(0)
	tt, dh := n/batch, 2*cos.Dim(1)
	g := heads / kvh
	split := func(x *Var, h int) *Var { return t.Transpose(t.Reshape(x, batch, tt, h, dh), 1, 2) }
	qh, kh := t.RoPE(split(q, heads), cos, sin), t.RoPE(split(k, kvh), cos, sin)
	s := t.BatchMatMul(t.Reshape(qh, batch, kvh, g*tt, dh), kh, true)
	p := t.CausalSoftmax(t.Reshape(s, batch, kvh, g, tt, tt), float32(1/math.Sqrt(float64(dh))))
	o := t.BatchMatMul(t.Reshape(p, batch, kvh, g*tt, tt), split(v, kvh), false)
	return t.Reshape(t.Transpose(t.Reshape(o, batch, heads, tt, dh), 1, 2), n, heads*dh)
}

// TestAttentionMatchesUnfused compares Attention with the unfused graph
// on projections that are intermediates (their gradients start on
// reused, unzeroed buffers), over several row blocks and key/value groups, and with q, k
// and v one Var.
func TestAttentionMatchesUnfused(t *testing.T) {
	for _, c := range []struct {
		name                      string
		batch, tt, heads, kvh, dh int
		shared                    bool
	}{
		{"gqa", 2, 150, 6, 2, 8, false},
		{"mqa", 1, 64, 3, 1, 4, false},
		{"shared", 2, 70, 2, 2, 6, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(11, 12))
			const d = 16
			n := c.batch * c.tt
			x := randParam(rng, n, d)
			wq, wk, wv := randParam(rng, c.heads*c.dh, d), randParam(rng, c.kvh*c.dh, d), randParam(rng, c.kvh*c.dh, d)
			cos, sin := RoPETables(0, c.tt, c.dh, 500)
			seed := tensor.New(n, c.heads*c.dh)
			for i := range seed.Data() {
				seed.Data()[i] = float32(rng.NormFloat64())
			}
			params := []*Var{x, wq, wk, wv}
			// One tape for both runs: the fused op then gets buffers the
			// unfused graph left garbage in, as in a training loop.
			tp := NewTape()
			run := func(fused bool) (out []float32, grads [][]float32) {
				for _, p := range params {
					p.ZeroGrad()
				}
				tp.Reset()
				q, k, v := tp.MatMulT(x, wq), tp.MatMulT(x, wk), tp.MatMulT(x, wv)
				if c.shared {
					k, v = q, q
				}
				var o *Var
				if fused {
					o = tp.Attention(q, k, v, c.batch, cos, sin)
				} else {
					o = unfusedAttention(tp, q, k, v, c.batch, c.heads, c.kvh, cos, sin)
				}
				tp.Backward(o, seed)
				for _, p := range params {
					grads = append(grads, slices.Clone(p.Grad.Data()))
				}
				return slices.Clone(o.Value.Data()), grads
			}
			o2, g2 := run(false)
			o1, g1 := run(true)
			near := func(what string, got, want []float32) {
				t.Helper()
				for i := range want {
					if math.Abs(float64(got[i]-want[i])) > 1e-4*max(1, math.Abs(float64(want[i]))) {
						t.Fatalf("%s[%d] = %v, unfused %v", what, i, got[i], want[i])
					}
				}
			}
			near("out", o1, o2)
			for i := range g1 {
				near([]string{"dx", "dwq", "dwk", "dwv"}[i], g1[i], g2[i])
			}
		})
	}
}

func TestAttentionShapePanics(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	cos, sin := RoPETables(0, 4, 4, 100)
	q, k := randParam(rng, 8, 12), randParam(rng, 8, 4)
	for name, f := range map[string]func(tp *Tape){
		"batch":       func(tp *Tape) { tp.Attention(q, k, k, 3, cos, sin) },
		"positions":   func(tp *Tape) { tp.Attention(q, k, k, 1, cos, sin) },
		"kv rows":     func(tp *Tape) { tp.Attention(q, randParam(rng, 4, 4), k, 2, cos, sin) },
		"v width":     func(tp *Tape) { tp.Attention(q, k, randParam(rng, 8, 8), 2, cos, sin) },
		"head groups": func(tp *Tape) { tp.Attention(q, randParam(rng, 8, 8), randParam(rng, 8, 8), 2, cos, sin) },
	} {
		func() {
			defer func() {
				if _, ok := recover().(*tensor.ShapeError); !ok {
					t.Errorf("%s: no *tensor.ShapeError", name)
				}
			}()
			f(NewTape())
		}()
	}
}

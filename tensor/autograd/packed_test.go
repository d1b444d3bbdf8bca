package autograd

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/posttrain/posttrain/tensor"
)

// TestPackedAttentionMatchesDocuments checks that every document of a
// packed sequence gets, in value and in gradient, exactly what the
// unfused graph gives it alone (a batch of one, positions from 0), with
// documents that cross the 64-position row blocks, a block that starts
// inside a document, a one-token document and a sequence of one
// document. The tape is shared by the runs, so the packed op meets
// buffers left dirty.
func TestPackedAttentionMatchesDocuments(t *testing.T) {
	const tt, heads, kvh, dh = 150, 4, 2, 8
	starts := [][]int{{0, 50, 130}, {0, 64, 65, 140}, {}}
	rng := rand.New(rand.NewPCG(3, 4))
	n := len(starts) * tt
	q, k, v := randParam(rng, n, heads*dh), randParam(rng, n, kvh*dh), randParam(rng, n, kvh*dh)
	seed := randParam(rng, n, heads*dh).Value
	cos, sin := RoPETables(0, tt, dh, 500)
	tp := NewTape()
	for range 2 {
		for _, p := range []*Var{q, k, v} {
			p.ZeroGrad()
		}
		tp.Reset()
		o := tp.PackedAttention(q, k, v, starts, cos, sin)
		tp.Backward(o, seed)
		for b, st := range starts {
			if len(st) == 0 {
				st = []int{0}
			}
			for i, s0 := range st {
				e := tt
				if i+1 < len(st) {
					e = st[i+1]
				}
				lo, hi, m := b*tt+s0, b*tt+e, e-s0
				rows := func(x *tensor.Dense) *Var {
					c := x.Dim(1)
					return Param(tensor.FromSlice(append([]float32(nil), x.Data()[lo*c:hi*c]...), m, c))
				}
				dq, dk, dv := rows(q.Value), rows(k.Value), rows(v.Value)
				rt := NewTape()
				c1, s1 := RoPETables(0, m, dh, 500)
				want := unfusedAttention(rt, dq, dk, dv, 1, heads, kvh, c1, s1)
				rt.Backward(want, rows(seed).Value)
				for _, c := range []struct {
					what      string
					got, want *tensor.Dense
				}{{"out", o.Value, want.Value}, {"dq", q.Grad, dq.Grad}, {"dk", k.Grad, dk.Grad}, {"dv", v.Grad, dv.Grad}} {
					w := c.got.Dim(1)
					g := c.got.Data()[lo*w : hi*w]
					for j, x := range c.want.Data() {
						if math.Abs(float64(g[j]-x)) > 1e-4*max(1, math.Abs(float64(x))) {
							t.Fatalf("sequence %d document %d: %s[%d] = %v, alone %v", b, i, c.what, j, g[j], x)
						}
					}
				}
			}
		}
	}
}

func TestPackedAttentionBadStarts(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	q := randParam(rng, 8, 4)
	cos, sin := RoPETables(0, 4, 4, 100)
	for name, st := range map[string][][]int{
		"not from 0": {{1}, {0}},
		"repeated":   {{0, 2, 2}, {0}},
		"past end":   {{0, 4}, {0}},
		"decreasing": {{0, 3, 1}, {0}},
		"batch":      {{0}, {0}, {0}},
	} {
		func() {
			defer func() {
				var se *tensor.ShapeError
				if e, ok := recover().(error); !ok || !errors.As(e, &se) {
					t.Errorf("%s: recovered %v, want *tensor.ShapeError", name, e)
				}
			}()
			NewTape().PackedAttention(q, q, q, st, cos, sin)
		}()
	}
}

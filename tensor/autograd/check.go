package autograd

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/posttrain/posttrain/tensor"
)

// GradCheck compares the gradients a backward pass gives with central
// finite differences. f builds a computation from inputs (made by Param)
// on the tape it is given; the scalar checked is L = Σ wᵢ·outᵢ with
// weights w drawn from seed, accumulated in float64, so every output
// element takes part. Each input element is moved by ±eps.
//
// It returns an error naming the worst element when |analytic − numeric|
// exceeds tol·max(1, |numeric|), and nil otherwise. Inputs' gradients
// are zeroed first and hold the analytic gradient afterwards; their
// values are restored.
func GradCheck(f func(t *Tape) *Var, inputs []*Var, eps, tol float64, seed uint64) error {
	for _, in := range inputs {
		if !in.needs || in.Grad == nil {
			return fmt.Errorf("autograd: GradCheck: inputs must be made by Param")
		}
		in.ZeroGrad()
	}
	t := NewTape()
	out := f(t)
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	w := tensor.New(out.Shape()...)
	for i := range w.Data() {
		w.Data()[i] = float32(rng.Float64()*2 - 1)
	}
	t.Backward(out, w)
	loss := func() float64 {
		tp := NewTape()
		o := f(tp)
		var s float64
		for i, v := range o.Value.Data() {
			s += float64(w.Data()[i]) * float64(v)
		}
		return s
	}
	worst, where := 0.0, ""
	for k, in := range inputs {
		xd, gd := in.Value.Data(), in.Grad.Data()
		for i := range xd {
			x0 := xd[i]
			xd[i] = x0 + float32(eps)
			hp := float64(xd[i]) - float64(x0)
			lp := loss()
			xd[i] = x0 - float32(eps)
			hm := float64(x0) - float64(xd[i])
			lm := loss()
			xd[i] = x0
			num := (lp - lm) / (hp + hm)
			e := math.Abs(float64(gd[i])-num) / max(1, math.Abs(num))
			if e > worst || math.IsNaN(e) {
				worst = e
				where = fmt.Sprintf("input %d element %d: analytic %.6g, numeric %.6g", k, i, gd[i], num)
			}
		}
	}
	if worst > tol || math.IsNaN(worst) {
		return fmt.Errorf("autograd: GradCheck: error %.3g > %.3g at %s", worst, tol, where)
	}
	return nil
}

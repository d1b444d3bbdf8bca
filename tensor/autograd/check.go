package autograd

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/posttrain/posttrain/tensor"
)

// GradCheckOptions are GradCheckWith's settings, by name. The zero value
// is the default check for float32 graphs: steps of 1e-2, an error of at
// most 1e-2, weights drawn from seed 0.
type GradCheckOptions struct {
	// Eps is the step of the central differences; 0 means 1e-2. The
	// inputs are float32: a smaller step loses more to rounding
	// (≈ 2⁻²⁴·|L|/Eps) than it gains in truncation (≈ Eps²·|L‴|/6).
	Eps float64
	// Tol is the largest error accepted, |analytic − numeric| relative
	// to max(1, |numeric|); 0 means 1e-2.
	Tol float64
	// Seed draws the weights w of the scalar checked, L = Σ wᵢ·outᵢ.
	Seed uint64
}

// GradCheckWith compares the gradients a backward pass gives with central
// finite differences. f builds a computation from inputs (made by Param)
// on the tape it is given; the scalar checked is L = Σ wᵢ·outᵢ with
// weights w drawn from o.Seed, accumulated in float64, so every output
// element takes part. Each input element is moved by ±o.Eps.
//
// It returns an error naming the worst element when |analytic − numeric|
// exceeds o.Tol·max(1, |numeric|), and nil otherwise; a negative or
// non-finite setting is an error too. Inputs' gradients are zeroed first
// and hold the analytic gradient afterwards; their values are restored.
func GradCheckWith(f func(t *Tape) *Var, inputs []*Var, o GradCheckOptions) error {
	const op = "GradCheckWith"
	var err error
	if o.Eps, err = orDefault(op, "Eps", o.Eps); err != nil {
		return err
	}
	if o.Tol, err = orDefault(op, "Tol", o.Tol); err != nil {
		return err
	}
	return gradCheck(op, f, inputs, o.Eps, o.Tol, o.Seed)
}

// orDefault returns a GradCheckOptions setting, 1e-2 for 0.
func orDefault(op, field string, v float64) (float64, error) {
	switch {
	case !(v >= 0) || math.IsInf(v, 0):
		return 0, fmt.Errorf("autograd: %s: GradCheckOptions.%s = %v, need finite and ≥ 0 (0 means 1e-2)", op, field, v)
	case v == 0:
		return 1e-2, nil
	}
	return v, nil
}

// GradCheck is GradCheckWith with its settings positional: steps of ±eps,
// an error of at most tol, weights drawn from seed. eps and tol are
// adjacent float64s, which a swap changes silently; new code names them
// with GradCheckWith. Here eps must be finite and > 0 and tol finite and
// ≥ 0, with no defaults.
func GradCheck(f func(t *Tape) *Var, inputs []*Var, eps, tol float64, seed uint64) error {
	const op = "GradCheck"
	if !(eps > 0) || math.IsInf(eps, 0) {
		return fmt.Errorf("autograd: %s: eps = %v, need finite and > 0", op, eps)
	}
	if !(tol >= 0) || math.IsInf(tol, 0) {
		return fmt.Errorf("autograd: %s: tol = %v, need finite and ≥ 0", op, tol)
	}
	return gradCheck(op, f, inputs, eps, tol, seed)
}

func gradCheck(op string, f func(t *Tape) *Var, inputs []*Var, eps, tol float64, seed uint64) error {
	for k, in := range inputs {
		if !in.needs || in.Grad == nil {
			return fmt.Errorf("autograd: %s: inputs[%d] is not made by Param", op, k)
		}
	}
	for _, in := range inputs {
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
		return fmt.Errorf("autograd: %s: error %.3g > %.3g at %s", op, worst, tol, where)
	}
	return nil
}

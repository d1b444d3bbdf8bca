package mirrordescent

import (
	"fmt"
	"math"
)

// Mirror is a mirror map ψ restricted to the probability simplex: the
// geometry a mirror-descent step measures distance in. One step solves
//
//	x_{t+1} = argmin_{y ∈ Δ} η·⟨g, y⟩ + D_ψ(y, x_t),
//
// with D_ψ(y, x) = ψ(y) − ψ(x) − ⟨∇ψ(x), y − x⟩ the Bregman divergence.
type Mirror interface {
	// Step performs one mirror-descent step in place on the probability
	// vector x with gradient grad and step size eta.
	Step(x, grad []float64, eta float64) error
	// Divergence returns the Bregman divergence D_ψ(y, x) ≥ 0.
	Divergence(y, x []float64) (float64, error)
	// Potential returns ψ(x).
	Potential(x []float64) (float64, error)
}

// NegEntropy is the negative-entropy map ψ(x) = Σ x_i·log x_i. Its step is
// the exponentiated gradient (EntropicStep) and its Bregman divergence on
// the simplex is the KL divergence KL(y‖x). It suits the simplex: the
// regret of mirror descent grows with log n, not n, in the dimension.
type NegEntropy struct{}

// Euclidean is the squared-Euclidean map ψ(x) = ½‖x‖². Its step is
// projected gradient descent (x − η·g, then ProjectSimplex) and its
// Bregman divergence is ½‖y − x‖².
type Euclidean struct{}

// Step is EntropicStep.
func (NegEntropy) Step(x, grad []float64, eta float64) error { return EntropicStep(x, grad, eta) }

// Divergence returns KL(y‖x) = Σ y_i·log(y_i/x_i), with 0·log 0 = 0 and
// +Inf where y_i > 0 = x_i.
func (NegEntropy) Divergence(y, x []float64) (float64, error) { return KLDivergence(y, x) }

// Potential returns Σ x_i·log x_i, with 0·log 0 = 0.
func (NegEntropy) Potential(x []float64) (float64, error) {
	if err := checkProb("NegEntropy.Potential", "x", x); err != nil {
		return 0, err
	}
	var s float64
	for _, v := range x {
		if v > 0 {
			s += v * math.Log(v)
		}
	}
	return s, nil
}

// Step sets x ← ProjectSimplex(x − η·g). It validates like EntropicStep
// and leaves x untouched on error, an overflowing x − η·g included.
func (Euclidean) Step(x, grad []float64, eta float64) error {
	if err := checkStep("Euclidean.Step", x, grad, eta); err != nil {
		return err
	}
	// x − η·g can overflow for finite inputs, and the projection of an
	// infinite entry is undefined: check before writing anything.
	for i := range x {
		if v := x[i] - eta*grad[i]; math.IsInf(v, 0) {
			return fmt.Errorf("mirrordescent: Euclidean.Step: x[%d] − η·grad[%d] overflows", i, i)
		}
	}
	for i := range x {
		x[i] -= eta * grad[i]
	}
	project(x, x)
	return nil
}

// Divergence returns ½‖y − x‖².
func (Euclidean) Divergence(y, x []float64) (float64, error) { return SquaredDistance(y, x) }

// Potential returns ½‖x‖².
func (Euclidean) Potential(x []float64) (float64, error) {
	if err := checkFinite("Euclidean.Potential", "x", x); err != nil {
		return 0, err
	}
	var s float64
	for _, v := range x {
		s += v * v
	}
	return s / 2, nil
}

// KLDivergence returns KL(p‖q) = Σ p_i·log(p_i/q_i) for nonnegative p and
// q (not renormalized): terms with p_i = 0 count 0, a term with
// p_i > 0 = q_i makes the result +Inf. It returns an error naming the
// entry if a length differs or an entry is negative, NaN or infinite.
//
// It is the Bregman divergence of NegEntropy between two distributions,
// not a penalty on sampled log-probs: that is prefopt.KL.
func KLDivergence(p, q []float64) (float64, error) {
	const op = "KLDivergence"
	if len(p) != len(q) {
		return 0, fmt.Errorf("mirrordescent: %s: len(p) = %d but len(q) = %d", op, len(p), len(q))
	}
	if err := checkProb(op, "p", p); err != nil {
		return 0, err
	}
	if err := checkProb(op, "q", q); err != nil {
		return 0, err
	}
	var s float64
	for i, pi := range p {
		if pi == 0 {
			continue
		}
		if q[i] == 0 {
			return math.Inf(1), nil
		}
		s += pi * (math.Log(pi) - math.Log(q[i]))
	}
	return s, nil
}

// KL is KLDivergence.
//
// Deprecated: use KLDivergence; the name KL is prefopt's sampled penalty.
func KL(p, q []float64) (float64, error) { return KLDivergence(p, q) }

// SquaredDistance returns ½‖x − y‖².
func SquaredDistance(x, y []float64) (float64, error) {
	if len(x) != len(y) {
		return 0, fmt.Errorf("mirrordescent: SquaredDistance: len(x) = %d but len(y) = %d", len(x), len(y))
	}
	if err := checkFinite("SquaredDistance", "x", x); err != nil {
		return 0, err
	}
	if err := checkFinite("SquaredDistance", "y", y); err != nil {
		return 0, err
	}
	var s float64
	for i := range x {
		d := x[i] - y[i]
		s += d * d
	}
	return s / 2, nil
}

func checkProb(op, name string, x []float64) error {
	for i, v := range x {
		if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			return fmt.Errorf("mirrordescent: %s: %s[%d] = %v, need finite and ≥ 0", op, name, i, v)
		}
	}
	return nil
}

func checkFinite(op, name string, x []float64) error {
	for i, v := range x {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("mirrordescent: %s: %s[%d] = %v", op, name, i, v)
		}
	}
	return nil
}

package mirrordescent

import (
	"fmt"
	"math"
	"slices"
)

// EntropicStep performs one exponentiated-gradient step in place,
//
//	x ← x·exp(−η·g) / Z,   Z = Σ_i x_i·exp(−η·g_i),
//
// the mirror-descent step for the negative-entropy map on the probability
// simplex. It works in log space, l_i = log x_i − η·(g_i − g_min) followed
// by a softmax, so gradients of any finite size (1e300 included) leave x on
// the simplex instead of overflowing exp. Coordinates with x_i = 0 stay 0.
//
// x must be a probability vector: entries finite and ≥ 0 with a positive
// sum (it is not renormalized first, but the output is normalized). It
// returns an error naming the bad input, and leaves x untouched, if the
// lengths differ, x has a negative, NaN or infinite entry or sums to 0, a
// gradient entry is NaN or infinite, or η is negative, NaN or infinite.
func EntropicStep(x, grad []float64, eta float64) error {
	if err := checkStep("EntropicStep", x, grad, eta); err != nil {
		return err
	}
	// Subtract the smallest gradient on the support so every exponent is
	// ≤ 0 before scaling by η: η·(g_i − g_min) may overflow to +Inf, which
	// just sends that coordinate to 0, the correct limit.
	gmin := math.Inf(1)
	for i, xi := range x {
		if xi > 0 && grad[i] < gmin {
			gmin = grad[i]
		}
	}
	lmax := math.Inf(-1)
	for i, xi := range x {
		l := math.Inf(-1)
		if xi > 0 {
			l = math.Log(xi) - eta*(grad[i]-gmin)
		}
		x[i] = l
		lmax = max(lmax, l)
	}
	var z float64
	for i, l := range x {
		e := math.Exp(l - lmax)
		x[i] = e
		z += e
	}
	inv := 1 / z
	for i := range x {
		x[i] *= inv
	}
	return nil
}

// checkStep validates the inputs of a simplex step without touching them.
func checkStep(op string, x, grad []float64, eta float64) error {
	if len(x) != len(grad) {
		return fmt.Errorf("mirrordescent: %s: len(x) = %d but len(grad) = %d", op, len(x), len(grad))
	}
	if math.IsNaN(eta) || math.IsInf(eta, 0) || eta < 0 {
		return fmt.Errorf("mirrordescent: %s: step size η = %v, need finite and ≥ 0", op, eta)
	}
	return checkSimplexGrad(op, x, grad)
}

func checkSimplexGrad(op string, x, grad []float64) error {
	if len(x) == 0 {
		return fmt.Errorf("mirrordescent: %s: empty x", op)
	}
	var sum float64
	for i, xi := range x {
		if math.IsNaN(xi) || math.IsInf(xi, 0) || xi < 0 {
			return fmt.Errorf("mirrordescent: %s: x[%d] = %v, need finite and ≥ 0", op, i, xi)
		}
		sum += xi
	}
	if sum <= 0 {
		return fmt.Errorf("mirrordescent: %s: x sums to %v, need a positive sum", op, sum)
	}
	for i, g := range grad {
		if math.IsNaN(g) || math.IsInf(g, 0) {
			return fmt.Errorf("mirrordescent: %s: grad[%d] = %v", op, i, g)
		}
	}
	return nil
}

// ProjectSimplex replaces x by its Euclidean projection onto the
// probability simplex {y : y ≥ 0, Σ y = 1}, the unique
//
//	argmin_y ‖y − x‖²   subject to y ≥ 0, Σ_i y_i = 1,
//
// which has the form y_i = max(x_i − θ, 0) for one threshold θ. θ is found
// by sorting, in O(n log n) (Duchi, Shalev-Shwartz, Singer and Chandra,
// "Efficient projections onto the ℓ1-ball for learning in high
// dimensions", ICML 2008, Fig. 1). The projection commutes with adding a
// constant to every entry, so x is shifted by its maximum first: the
// partial sums then cannot overflow for any finite input.
//
// ProjectSimplex is the in-place form for input known to be finite (the
// result of a step the caller has checked): it has no error to return, so
// an empty x is left alone and a NaN or ±Inf entry makes every entry NaN,
// loudly wrong rather than silently plausible. For input that may hold
// anything, use ProjectSimplexTo, which reports it.
func ProjectSimplex(x []float64) { projectInPlace(x) }

// ProjectSimplexTo writes the Euclidean projection of x onto the
// probability simplex (see ProjectSimplex) to dst, which may be x itself.
// It returns an error naming the input, and leaves dst untouched, if the
// lengths differ, x is empty or an entry of x is NaN or ±Inf.
func ProjectSimplexTo(dst, x []float64) error { return projectTo("ProjectSimplexTo", dst, x) }

// projectInPlace is ProjectSimplex and ProjectSimplex32.
func projectInPlace[F float32 | float64](x []F) {
	for _, v := range x {
		if f := float64(v); math.IsNaN(f) || math.IsInf(f, 0) {
			for i := range x {
				x[i] = F(math.NaN())
			}
			return
		}
	}
	project(x, x)
}

// projectTo is ProjectSimplexTo and ProjectSimplex32To.
func projectTo[F float32 | float64](op string, dst, x []F) error {
	if len(dst) != len(x) {
		return fmt.Errorf("mirrordescent: %s: len(dst) = %d but len(x) = %d", op, len(dst), len(x))
	}
	if len(x) == 0 {
		return fmt.Errorf("mirrordescent: %s: empty x", op)
	}
	for i, v := range x {
		if f := float64(v); math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("mirrordescent: %s: x[%d] = %v", op, i, v)
		}
	}
	project(dst, x)
	return nil
}

// project writes the projection of the finite x to dst; the threshold's
// partial sums run in float64 whatever F is.
func project[F float32 | float64](dst, x []F) {
	n := len(x)
	if n == 0 {
		return
	}
	top := math.Inf(-1)
	for _, v := range x {
		top = max(top, float64(v))
	}
	u := make([]float64, n)
	for i, v := range x {
		u[i] = float64(v) - top
	}
	slices.Sort(u)
	slices.Reverse(u)
	theta := thresholdSorted(u)
	for i, v := range x {
		dst[i] = F(max(float64(v)-top-theta, 0))
	}
}

// thresholdSorted returns θ for u sorted in decreasing order: with
// ρ = max{j : u_j − (Σ_{i≤j} u_i − 1)/j > 0}, θ = (Σ_{i≤ρ} u_i − 1)/ρ.
// The condition holds for j = 1 always and fails from ρ+1 on, so the scan
// stops at the first failure.
func thresholdSorted(u []float64) float64 {
	var cum, theta float64
	for j, v := range u {
		c := cum + v
		t := (c - 1) / float64(j+1)
		if !(v-t > 0) { // also stops at NaN from −Inf − (−Inf)
			break
		}
		cum, theta = c, t
	}
	return theta
}

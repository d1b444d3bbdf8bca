package mirrordescent

import "math"

// Schedule gives the step size of iteration k, counted from 1. Values of
// k below 1 are treated as 1.
type Schedule func(k int) float64

// Constant returns the schedule η_k = eta.
func Constant(eta float64) Schedule { return func(int) float64 { return eta } }

// InvSqrt returns η_k = eta0/√k, the anytime step size of online mirror
// descent: with η_k ∝ √(log n / k) exponentiated gradient keeps regret
// O(√(T log n)) without knowing the horizon T.
func InvSqrt(eta0 float64) Schedule {
	return func(k int) float64 { return eta0 / math.Sqrt(float64(max(k, 1))) }
}

// Linear returns MDPO's annealed step size t_k = 1 − (k−1)/iters (Tomar
// et al. 2020): t_1 = 1 down to t_iters = 1/iters, so the proximity weight
// 1/t_k grows from 1 to iters and late iterations move the policy less.
// Past iters it stays at 1/iters, keeping 1/t_k finite. iters < 1 is
// treated as 1.
func Linear(iters int) Schedule {
	n := float64(max(iters, 1))
	return func(k int) float64 {
		k = min(max(k, 1), max(iters, 1))
		return 1 - float64(k-1)/n
	}
}

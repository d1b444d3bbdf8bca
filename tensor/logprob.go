package tensor

import (
	"fmt"
	"math"

	"github.com/posttrain/posttrain/tensor/internal/simd"
)

// The one numeric core of posttrain's losses over labels: a row's
// log-softmax at one index with a float64 log-sum-exp (LogSoftmaxAt), and
// the softmax from that log-sum-exp in one pass (SoftmaxLSE). prefopt's
// TokenLogProbs and Grading, autograd's CrossEntropy and LogProbs, and
// distill's ConvexCombination, CrossEntropy and SparseKL all go through
// them, so they agree to the bit on the same row.

// lseExact is the magnitude of a log-sum-exp below which x − lse, formed
// in float64, is within 2⁻²⁹ of the truth: float64's grid step at 2²⁴ is
// 2⁻²⁸. Above it the log-sum-exp itself, max + log Σ e^(x−max) rounded to
// float64, has lost the small term (its grid step is 2 at |max| = 1e16).
const lseExact = 1 << 24

// LogSoftmaxAt returns log softmax(x)[i] and the log-sum-exp of x, both in
// float64, and ok = false if x holds NaN or +Inf or x[i] is −Inf
// (probability 0; −Inf elsewhere masks an entry and is allowed).
//
// The fast path is the fused one-pass log-sum-exp kernel (LogSumExp64).
// For logits of magnitude past 2²⁴ it forms (x[i] − max) − log Σ e^(x−max)
// instead, the difference first, exact for any two float32s, so the small
// log-sum is not lost against max: logits of 1e16 or 3e38 all equal give
// −log len(x). It allocates nothing. It panics with a *ShapeError if i is
// out of range.
func LogSoftmaxAt(x []float32, i int) (lp, lse float64, ok bool) {
	if i < 0 || i >= len(x) {
		panic(&ShapeError{Op: "LogSoftmaxAt", Msg: fmt.Sprintf("index %d out of range [0, %d)", i, len(x))})
	}
	xi := float64(x[i])
	if l := simd.K.LogSumExp(x); finite(l) && math.Abs(l) < lseExact {
		return xi - l, l, finite(xi)
	}
	if !finite(xi) {
		return 0, 0, false
	}
	m := float64(simd.K.Max(x))
	if !finite(m) {
		return 0, 0, false
	}
	// Σ e^(x−max) a block at a time through the Exp kernel on the stack;
	// a NaN anywhere makes the sum NaN.
	var buf [256]float32
	var s float64
	for k := 0; k < len(x); k += len(buf) {
		c := x[k:min(k+len(buf), len(x))]
		e := buf[:len(c)]
		for j, z := range c {
			e[j] = float32(float64(z) - m) // ≤ 0; −Inf for masked entries
		}
		simd.K.Exp(e, e)
		s += float64(simd.K.Sum(e))
	}
	if !(s >= 1) { // the max contributes e⁰ = 1; NaN fails too
		return 0, 0, false
	}
	ls := math.Log(s)
	return (xi - m) - ls, m + ls, true
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

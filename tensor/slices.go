package tensor

import (
	"math"

	"github.com/posttrain/posttrain/tensor/internal/simd"
)

// The slice kernels below run the fastest tier this CPU supports (see
// package doc). They panic with a *ShapeError when lengths differ, never
// allocate, and accept aliased dst and inputs (dst may be x or y).

// Dot returns Σ x[i]·y[i].
func Dot(x, y []float32) float32 {
	mustSameLen("Dot", len(x), len(y))
	return simd.K.Dot(x, y)
}

// Axpy computes y += alpha·x.
func Axpy(alpha float32, x, y []float32) {
	mustSameLen("Axpy", len(x), len(y))
	simd.K.Axpy(alpha, x, y)
}

// Scale computes dst = alpha·x.
func Scale(dst []float32, alpha float32, x []float32) {
	mustSameLen("Scale", len(dst), len(x))
	simd.K.Scale(dst, alpha, x)
}

// Add computes dst = x + y.
func Add(dst, x, y []float32) {
	mustSameLen("Add", len(x), len(y))
	mustSameLen("Add", len(dst), len(x))
	simd.K.Add(dst, x, y)
}

// Sub computes dst = x − y.
func Sub(dst, x, y []float32) {
	mustSameLen("Sub", len(x), len(y))
	mustSameLen("Sub", len(dst), len(x))
	simd.K.Sub(dst, x, y)
}

// Mul computes dst = x·y elementwise.
func Mul(dst, x, y []float32) {
	mustSameLen("Mul", len(x), len(y))
	mustSameLen("Mul", len(dst), len(x))
	simd.K.Mul(dst, x, y)
}

// Sum returns Σ x[i]. Partial sums are kept in float32 lanes over blocks
// of 4096 elements and in float64 across blocks, so a million elements sum
// within about 1e-7 relative of an exact float64 sum.
func Sum(x []float32) float32 { return simd.K.Sum(x) }

// Max returns the largest element: NaN if any element is NaN, −Inf for an
// empty slice.
func Max(x []float32) float32 { return simd.K.Max(x) }

// ArgMax returns the first index of the maximum, the index of the first NaN
// if there is one, and −1 for an empty slice.
func ArgMax(x []float32) int { return simd.K.ArgMax(x) }

// Exp computes dst[i] = e^x[i] within 2 ulp. Results that would be below
// the smallest normal float32 (x < −87.34) are 0, so very negative inputs
// cost no subnormal arithmetic; x > 88.72 gives +Inf; NaN stays NaN.
func Exp(dst, x []float32) {
	mustSameLen("Exp", len(dst), len(x))
	simd.K.Exp(dst, x)
}

// Log computes dst[i] = ln x[i] within 2 ulp, subnormal inputs included:
// ln 0 = −Inf, ln of a negative number is NaN, ln +Inf = +Inf.
func Log(dst, x []float32) {
	mustSameLen("Log", len(dst), len(x))
	simd.K.Log(dst, x)
}

// LogSumExp returns ln Σ e^x[i], computed as max + ln Σ e^(x[i]−max) so it
// does not overflow. It is −Inf for an empty slice or one of only −Inf, NaN
// if any element is NaN, and +Inf if any element is +Inf.
func LogSumExp(x []float32) float32 { return float32(simd.K.LogSumExp(x)) }

// LogSumExp64 is LogSumExp rounded only to float64: max + ln Σ e^(x−max)
// with the max exact, so subtracting it from logits of magnitude 1e4
// loses nothing that float32 rounding of the sum would (see SoftmaxLSE).
func LogSumExp64(x []float32) float64 { return simd.K.LogSumExp(x) }

// Softmax computes dst = e^(x−max) / Σ e^(x−max) in two passes over x:
// the running max and sum together, then the write. A row holding NaN or
// +Inf, or only −Inf, gives NaN everywhere.
func Softmax(dst, x []float32) {
	mustSameLen("Softmax", len(dst), len(x))
	simd.K.Softmax(dst, 1, x)
}

// ScaledSoftmax computes dst = alpha·softmax(x) in Softmax's two passes:
// the scale rides on the normalization, so a gradient such as
// −dlogp·softmax(logits) costs no extra pass over the row.
func ScaledSoftmax(dst []float32, alpha float32, x []float32) {
	mustSameLen("ScaledSoftmax", len(dst), len(x))
	simd.K.Softmax(dst, alpha, x)
}

// LogSoftmax computes dst = (x − max) − ln Σ e^(x−max), with Softmax's two
// passes and special cases. Subtracting the max first keeps log-probs of
// logits of magnitude 1e4 accurate to float32 precision.
func LogSoftmax(dst, x []float32) {
	mustSameLen("LogSoftmax", len(dst), len(x))
	simd.K.LogSoftmax(dst, x)
}

// SoftmaxLSE computes dst = alpha·e^(x−lse) in one pass: ScaledSoftmax's
// second pass alone, for a caller that already holds lse = LogSumExp64(x)
// (or LogSoftmaxAt's), typically from a forward pass over the same logits.
// lse is split into a float32 shift, which the kernel subtracts, and an
// exact float64 correction folded into alpha, so logits of magnitude 1e4
// lose no more precision than in Softmax. lse must be at least every
// element of x and x must hold no NaN, as is true whenever LogSumExp64(x)
// is finite; the results are unspecified otherwise. Past |lse| = 2²⁴ a
// float64 log-sum-exp has lost its small term (its grid step is 2 at
// 1e16), so there SoftmaxLSE ignores lse and runs ScaledSoftmax's two
// passes, exact at any magnitude.
func SoftmaxLSE(dst []float32, alpha float32, x []float32, lse float64) {
	mustSameLen("SoftmaxLSE", len(dst), len(x))
	if math.Abs(lse) >= lseExact {
		simd.K.Softmax(dst, alpha, x)
		return
	}
	m := float32(lse) // ≥ max x: rounding is monotone and max x is a float32
	simd.K.SoftmaxOut(dst, x, m, float32(float64(alpha)*math.Exp(float64(m)-lse)))
}

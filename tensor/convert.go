package tensor

import "github.com/posttrain/posttrain/tensor/internal/simd"

// bfloat16 keeps float32's exponent range with 8 bits of precision; IEEE
// binary16 keeps 11 bits of precision over ±65504. Both halve the storage of
// cached teacher log-probs. Conversions to 16 bits round to nearest, ties
// to even; NaN stays NaN (quiet); conversions back are exact.

// ToBF16 converts x to bfloat16 bit patterns in dst.
func ToBF16(dst []uint16, x []float32) {
	mustSameLen("ToBF16", len(dst), len(x))
	simd.K.ToBF16(dst, x)
}

// FromBF16 converts bfloat16 bit patterns to float32, exactly.
func FromBF16(dst []float32, x []uint16) {
	mustSameLen("FromBF16", len(dst), len(x))
	simd.K.FromBF16(dst, x)
}

// ToF16 converts x to IEEE binary16 bit patterns in dst; magnitudes that
// round above 65504 become ±Inf, tiny ones round into the subnormals or to
// ±0.
func ToF16(dst []uint16, x []float32) {
	mustSameLen("ToF16", len(dst), len(x))
	simd.K.ToF16(dst, x)
}

// FromF16 converts IEEE binary16 bit patterns to float32, exactly.
func FromF16(dst []float32, x []uint16) {
	mustSameLen("FromF16", len(dst), len(x))
	simd.K.FromF16(dst, x)
}

//go:build gc && !purego

package simd

import "math"

//go:generate sh -c "cd _gen/arith && go run . -out ../../arith_amd64.s"

// arithAVX2 and arithAVX512 install the arithmetic, reduction, search and
// conversion kernels of each amd64 tier. The assembly is generated, for
// both vector widths from one description, by _gen/arith.
func arithAVX2(k *Kernels) {
	k.Dot, k.Axpy, k.Scale = dotAVX2, axpyAVX2, scaleAVX2
	k.Add, k.Sub, k.Mul = addAVX2, subAVX2, mulAVX2
	k.Sum, k.Max, k.ArgMax, k.FirstAbove = sumAVX2, maxAVX2, argMaxAVX2, firstAboveAVX2
	k.ToBF16, k.FromBF16, k.ToF16, k.FromF16 = toBF16AVX2, fromBF16AVX2, toF16AVX2, fromF16AVX2
	k.AdamW = adamWAVX2
}

func arithAVX512(k *Kernels) {
	k.Dot, k.Axpy, k.Scale = dotAVX512, axpyAVX512, scaleAVX512
	k.Add, k.Sub, k.Mul = addAVX512, subAVX512, mulAVX512
	k.Sum, k.Max, k.ArgMax, k.FirstAbove = sumAVX512, maxAVX512, argMaxAVX512, firstAboveAVX512
	k.ToBF16, k.FromBF16, k.ToF16, k.FromF16 = toBF16AVX512, fromBF16AVX512, toF16AVX512, fromF16AVX512
	k.AdamW = adamWAVX512
}

// ArgMax takes two passes: the maximum (which reports any NaN), then the
// first element not below it, which is the first index of the maximum. With
// a NaN present, the answer is the first NaN: the first element not ≤ +Inf.
func argMaxAVX2(x []float32) int {
	if len(x) == 0 {
		return -1
	}
	m := maxAVX2(x)
	if m != m {
		return firstAboveAVX2(x, float32(math.Inf(1)))
	}
	return firstAtLeastAVX2(x, m)
}

func argMaxAVX512(x []float32) int {
	if len(x) == 0 {
		return -1
	}
	m := maxAVX512(x)
	if m != m {
		return firstAboveAVX512(x, float32(math.Inf(1)))
	}
	return firstAtLeastAVX512(x, m)
}

//go:noescape
func dotAVX2(x, y []float32) float32

//go:noescape
func axpyAVX2(alpha float32, x, y []float32)

//go:noescape
func scaleAVX2(dst []float32, alpha float32, x []float32)

//go:noescape
func addAVX2(dst, x, y []float32)

//go:noescape
func subAVX2(dst, x, y []float32)

//go:noescape
func mulAVX2(dst, x, y []float32)

//go:noescape
func sumAVX2(x []float32) float32

//go:noescape
func maxAVX2(x []float32) float32

//go:noescape
func firstAboveAVX2(x []float32, t float32) int

// firstAtLeastAVX2 returns the first index i with !(x[i] < t), or len(x).
//
//go:noescape
func firstAtLeastAVX2(x []float32, t float32) int

//go:noescape
func toBF16AVX2(dst []uint16, x []float32)

//go:noescape
func fromBF16AVX2(dst []float32, x []uint16)

//go:noescape
func toF16AVX2(dst []uint16, x []float32)

//go:noescape
func fromF16AVX2(dst []float32, x []uint16)

//go:noescape
func dotAVX512(x, y []float32) float32

//go:noescape
func axpyAVX512(alpha float32, x, y []float32)

//go:noescape
func scaleAVX512(dst []float32, alpha float32, x []float32)

//go:noescape
func addAVX512(dst, x, y []float32)

//go:noescape
func subAVX512(dst, x, y []float32)

//go:noescape
func mulAVX512(dst, x, y []float32)

//go:noescape
func sumAVX512(x []float32) float32

//go:noescape
func maxAVX512(x []float32) float32

//go:noescape
func firstAboveAVX512(x []float32, t float32) int

// firstAtLeastAVX512 returns the first index i with !(x[i] < t), or len(x).
//
//go:noescape
func firstAtLeastAVX512(x []float32, t float32) int

//go:noescape
func toBF16AVX512(dst []uint16, x []float32)

//go:noescape
func fromBF16AVX512(dst []float32, x []uint16)

//go:noescape
func toF16AVX512(dst []uint16, x []float32)

//go:noescape
func fromF16AVX512(dst []float32, x []uint16)

//go:noescape
func adamWAVX2(w, g, m, v []float32, s *AdamWStep)

//go:noescape
func adamWAVX512(w, g, m, v []float32, s *AdamWStep)

//go:build gc && !purego

package simd

// The instruction-peak loops of peak_amd64.s (written by _gen/gemm):
// peakFMA<acc> and peakBF16_<acc> run n×24 VFMADD231PS or VDPBF16PS
// (zmm) spread over acc accumulators, peakMix24 the two alternating
// over 24. BenchmarkPeak times them.

//go:noescape
func peakFMA1(n int)

//go:noescape
func peakBF16_1(n int)

//go:noescape
func peakFMA2(n int)

//go:noescape
func peakBF16_2(n int)

//go:noescape
func peakFMA4(n int)

//go:noescape
func peakBF16_4(n int)

//go:noescape
func peakFMA8(n int)

//go:noescape
func peakBF16_8(n int)

//go:noescape
func peakFMA12(n int)

//go:noescape
func peakBF16_12(n int)

//go:noescape
func peakFMA24(n int)

//go:noescape
func peakBF16_24(n int)

//go:noescape
func peakMix24(n int)

// peakLoops lists the loops by accumulator count.
var peakLoops = []struct {
	acc       int
	fma, bf16 func(n int)
}{
	{1, peakFMA1, peakBF16_1},
	{2, peakFMA2, peakBF16_2},
	{4, peakFMA4, peakBF16_4},
	{8, peakFMA8, peakBF16_8},
	{12, peakFMA12, peakBF16_12},
	{24, peakFMA24, peakBF16_24},
}

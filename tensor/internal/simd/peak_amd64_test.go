//go:build gc && !purego

package simd

import (
	"testing"

	"golang.org/x/sys/cpu"
)

// BenchmarkPeak measures the peak rate of the two multiply-add
// instructions on this CPU, in GFLOPS of one core: VDPBF16PS does 32
// multiply-adds per zmm instruction, VFMADD231PS 16. The bfloat16 GEMM is
// reported against these.
func BenchmarkPeak(b *testing.B) {
	const n = 1000
	run := func(b *testing.B, f func(int), madds float64) {
		for b.Loop() {
			f(n)
		}
		b.ReportMetric(2*madds*24*n*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOPS")
	}
	if cpu.X86.HasAVX512F {
		b.Run("fma", func(b *testing.B) { run(b, peakFMA, 16) })
	}
	if cpu.X86.HasAVX512BF16 {
		b.Run("vdpbf16ps", func(b *testing.B) { run(b, peakBF16, 32) })
	}
}

//go:build gc && !purego

package simd

import (
	"fmt"
	"testing"

	"golang.org/x/sys/cpu"
)

// BenchmarkPeak measures, on one core, the rate of the two multiply-add
// instructions the GEMM micro-kernels are made of: VFMADD231PS (16
// multiply-adds per zmm instruction, the float32 kernel's) and VDPBF16PS
// (32, the bfloat16 kernel's), each over 1 to 24 independent
// accumulators, in GFLOPS (2 per multiply-add) and in instructions per
// nanosecond. One accumulator gives the latency (ns/instruction =
// 1/Ginst/s), enough of them the throughput, which is the peak a kernel
// is measured against. "mix/24" alternates the two instructions: a rate
// above either alone means they do not share their execution ports.
func BenchmarkPeak(b *testing.B) {
	const n = 1000
	run := func(b *testing.B, f func(int), madds float64) {
		for b.Loop() {
			f(n)
		}
		inst := 24 * n * float64(b.N) / b.Elapsed().Seconds()
		b.ReportMetric(2*madds*inst/1e9, "GFLOPS")
		b.ReportMetric(inst/1e9, "Ginst/s")
	}
	for _, l := range peakLoops {
		if cpu.X86.HasAVX512F {
			b.Run(fmt.Sprintf("fma/%d", l.acc), func(b *testing.B) { run(b, l.fma, 16) })
		}
		if cpu.X86.HasAVX512BF16 {
			b.Run(fmt.Sprintf("vdpbf16ps/%d", l.acc), func(b *testing.B) { run(b, l.bf16, 32) })
		}
	}
	if cpu.X86.HasAVX512BF16 {
		b.Run("mix/24", func(b *testing.B) { run(b, peakMix24, 24) })
	}
}

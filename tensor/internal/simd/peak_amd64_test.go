//go:build gc && !purego

package simd

import (
	"fmt"
	"math"
	"testing"
	"time"

	"golang.org/x/sys/cpu"
)

// BenchmarkPeak measures, on one core, the rate of the two multiply-add
// instructions the GEMM micro-kernels are made of: VFMADD231PS (16
// multiply-adds per zmm instruction, the float32 kernel's) and VDPBF16PS
// (32, the bfloat16 kernel's), each over 1 to 24 independent
// accumulators, in GFLOPS (2 per multiply-add) and in instructions per
// nanosecond, from the fastest of the calls (4,800 instructions each): on
// a loaded machine most calls are interrupted, the fastest is not. One
// accumulator gives the latency (ns/instruction = 1/Ginst/s), enough of
// them the throughput, which is the peak a kernel is measured against. "mix/24" alternates the two instructions: a rate
// above either alone means they do not share their execution ports.
func BenchmarkPeak(b *testing.B) {
	const n = 200
	run := func(b *testing.B, f func(int), madds float64) {
		best := time.Duration(math.MaxInt64)
		for b.Loop() {
			t := time.Now()
			f(n)
			best = min(best, time.Since(t))
		}
		inst := 24 * n / best.Seconds()
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

// BenchmarkKernelPeak times the AVX-512 GEMM micro-kernels on operands
// that stay in L1 — a 12×512 tile of A (256 pairs for bfloat16) against
// one 32-wide panel of B, the blocking of package tensor — against the
// peak loop of their instruction (24 accumulators), alternating the two
// in slices of a few microseconds and keeping each side's fastest slice:
// on a loaded machine most slices are interrupted, the fastest is not.
// "of-peak" is the kernel's rate over the peak's: what the micro-kernel
// leaves on the table before packing and memory come into it.
func BenchmarkKernelPeak(b *testing.B) {
	const mr, nr, k = 12, 32, 512
	a32, b32, c := make([]float32, mr*k), make([]float32, nr*k), make([]float32, mr*nr)
	a16, b16 := make([]uint16, mr*k), make([]uint16, nr*k)
	for i := range a32 {
		a32[i], a16[i] = float32(i%7)/8, uint16(0x3f80+i%5)
	}
	for i := range b32 {
		b32[i], b16[i] = float32(i%5)/8, uint16(0x3f80+i%3)
	}
	flops := 2.0 * mr * nr * k
	type kernel struct {
		name  string
		ok    bool
		run   func()
		peak  func(int)
		madds float64 // multiply-adds per peak-loop instruction
	}
	for _, kn := range []kernel{
		{"fma", cpu.X86.HasAVX512F, func() { gemmAVX512Kernel(mr, nr, k, a32, k, 1, b32, c, nr, true) }, peakFMA24, 16},
		{"vdpbf16ps", cpu.X86.HasAVX512BF16, func() { gemmBF16AVX512(k/2, a16, b16, c, nr, true) }, peakBF16_24, 32},
	} {
		if !kn.ok {
			continue
		}
		b.Run(kn.name, func(b *testing.B) {
			const calls, iters = 32, 100 // about equal work on either side
			tk, tp := time.Duration(math.MaxInt64), time.Duration(math.MaxInt64)
			for b.Loop() {
				t0 := time.Now()
				for range calls {
					kn.run()
				}
				t1 := time.Now()
				kn.peak(iters)
				tp = min(tp, time.Since(t1))
				tk = min(tk, t1.Sub(t0))
			}
			rk := flops * calls / tk.Seconds()
			rp := 2 * kn.madds * 24 * iters / tp.Seconds()
			b.ReportMetric(rk/1e9, "GFLOPS")
			b.ReportMetric(rp/1e9, "peak-GFLOPS")
			b.ReportMetric(rk/rp, "of-peak")
		})
	}
}

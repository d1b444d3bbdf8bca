package simd

import (
	"fmt"
	"testing"
)

// Exp of inputs whose results would be subnormal (flushed to 0) and Log of
// subnormal inputs must cost what ordinary inputs cost: a subnormal
// operand or result in a multiply takes a microcode assist on x86 that
// makes a kernel ten times slower. Compare the sub-benchmarks of each tier:
//
//	go test -run '^$' -bench 'Range' ./tensor/internal/simd/
func BenchmarkExpRange(b *testing.B) {
	for _, tier := range f32Tiers() {
		for _, v := range []float32{-1, -87.5, -95, -1e4} {
			b.Run(fmt.Sprintf("%v/x=%g", tier, v), func(b *testing.B) {
				x, y := make([]float32, 4096), make([]float32, 4096)
				for i := range x {
					x[i] = v
				}
				b.SetBytes(8 * int64(len(x)))
				for b.Loop() {
					Table(tier).Exp(y, x)
				}
			})
		}
	}
}

func BenchmarkLogRange(b *testing.B) {
	for _, tier := range f32Tiers() {
		for _, v := range []float32{1.5, 1e-39, 1e-44} {
			b.Run(fmt.Sprintf("%v/x=%g", tier, v), func(b *testing.B) {
				x, y := make([]float32, 4096), make([]float32, 4096)
				for i := range x {
					x[i] = v
				}
				b.SetBytes(8 * int64(len(x)))
				for b.Loop() {
					Table(tier).Log(y, x)
				}
			})
		}
	}
}

// BenchmarkSoftmaxRange: one 0 among 4095 equal logits, so x − max is
// ordinary (−1), next to ExpUnderflow (−87.5) or far beyond it (−1e4).
func BenchmarkSoftmaxRange(b *testing.B) {
	for _, tier := range f32Tiers() {
		for _, v := range []float32{-1, -87.5, -1e4} {
			b.Run(fmt.Sprintf("%v/x=%g", tier, v), func(b *testing.B) {
				x, y := make([]float32, 4096), make([]float32, 4096)
				for i := range x {
					x[i] = v
				}
				x[0] = 0
				b.SetBytes(8 * int64(len(x)))
				for b.Loop() {
					Table(tier).Softmax(y, 1, x)
				}
			})
		}
	}
}

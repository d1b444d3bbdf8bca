package simd

import (
	"math"
	"testing"
)

// TestExhaustiveTo16 runs every one of the 2^32 float32 bit patterns
// through ToBF16 and ToF16 on every tier and compares with the generic twin.
// It takes minutes, so it runs only on request:
//
//	SIMD_EXHAUSTIVE=1 go test -run Exhaustive ./tensor/internal/simd/
//
// (TestConversions samples random bit patterns, and checks the two From
// directions on all 2^16 inputs.)
func TestExhaustiveTo16(t *testing.T) {
	skipExhaustive(t)
	const chunk = 1 << 20
	x := make([]float32, chunk)
	want, got := make([]uint16, chunk), make([]uint16, chunk)
	for base := uint64(0); base < 1<<32; base += chunk {
		for i := range x {
			x[i] = math.Float32frombits(uint32(base) + uint32(i))
		}
		for _, c := range []struct {
			name string
			ref  func([]uint16, []float32)
			get  func(*Kernels) func([]uint16, []float32)
		}{
			{"ToBF16", toBF16Generic, func(k *Kernels) func([]uint16, []float32) { return k.ToBF16 }},
			{"ToF16", toF16Generic, func(k *Kernels) func([]uint16, []float32) { return k.ToF16 }},
		} {
			c.ref(want, x)
			for _, tier := range f32Tiers()[1:] {
				c.get(Table(tier))(got, x)
				for i := range want {
					if got[i] != want[i] {
						t.Fatalf("%v %s(%#08x) = %#04x, generic %#04x", tier, c.name, math.Float32bits(x[i]), got[i], want[i])
					}
				}
			}
		}
	}
}

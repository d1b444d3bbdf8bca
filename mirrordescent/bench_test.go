package mirrordescent

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

func benchVec(n int) ([]float64, []float64) {
	rng := rand.New(rand.NewPCG(1, 2))
	x, g := make([]float64, n), make([]float64, n)
	for i := range x {
		x[i] = rng.Float64() + 1e-3
		g[i] = rng.NormFloat64()
	}
	normalize(x)
	return x, g
}

var sizes = []int{1 << 10, 32000, 1 << 17}

func BenchmarkEntropicStep(b *testing.B) {
	for _, n := range sizes {
		x, g := benchVec(n)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.SetBytes(int64(16 * n))
			for b.Loop() {
				_ = EntropicStep(x, g, 1e-3)
			}
		})
	}
}

func BenchmarkEntropicStep32(b *testing.B) {
	for _, n := range sizes {
		x, g := benchVec(n)
		x32, g32 := to32(x), to32(g)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.SetBytes(int64(8 * n))
			for b.Loop() {
				_ = EntropicStep32(x32, g32, 1e-3)
			}
		})
	}
}

func BenchmarkTabularMDPO32(b *testing.B) {
	for _, n := range sizes {
		x, g := benchVec(n)
		lp, g32 := to32(x), to32(g)
		for i := range lp {
			lp[i] = -float32(i%50) / 5
		}
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.SetBytes(int64(8 * n))
			for b.Loop() {
				_ = TabularMDPO32(lp, g32, 1e-3)
			}
		})
	}
}

func BenchmarkProjectSimplex32(b *testing.B) {
	for _, n := range sizes {
		x, _ := benchVec(n)
		x32 := to32(x)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.SetBytes(int64(4 * n))
			for b.Loop() {
				ProjectSimplex32(x32)
			}
		})
	}
}

func BenchmarkTokenSurrogate(b *testing.B) {
	for _, n := range []int{1 << 10, 1 << 16} {
		rng := rand.New(rand.NewPCG(3, 4))
		nw, old, g := make([]float32, n), make([]float32, n), make([]float32, n)
		for i := range nw {
			old[i] = -rng.Float32() * 3
			nw[i] = old[i] + 0.1*float32(rng.NormFloat64())
		}
		lengths := make([]int, n/256)
		adv := make([]float64, len(lengths))
		for i := range lengths {
			lengths[i] = 256
			adv[i] = rng.NormFloat64()
		}
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.SetBytes(int64(12 * n))
			for b.Loop() {
				_, _ = TokenSurrogate(g, nw, old, lengths, adv, 1)
			}
		})
	}
}

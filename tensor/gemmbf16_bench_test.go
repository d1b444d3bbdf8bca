package tensor

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/posttrain/posttrain/tensor/internal/simd"
)

// BenchmarkGemmBF16 measures GemmBF16 (bfloat16 a·b, float32 c) at 1024³
// and a 4096×512×512 layer, and GemmMixed on the layer (float32
// activations times bfloat16 weights [out,in], the frozen-layer forward),
// in GFLOPS (2·M·N·K per call), on every tier: the tier's name is the
// first part of the benchmark's name.
func BenchmarkGemmBF16(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	for _, tier := range simd.Available() {
		if tier == simd.Generic {
			continue
		}
		for _, s := range [][3]int{{1024, 1024, 1024}, {4096, 512, 512}} {
			m, k, n := s[0], s[1], s[2]
			a, w := FromSlice(randSlice(r, m*k), m, k), FromSlice(randSlice(r, n*k), n, k).BF16()
			a16, c := a.BF16(), New(m, n)
			for _, mixed := range []bool{false, true} {
				op := "bf16"
				if mixed {
					op = "mixed"
				}
				b.Run(fmt.Sprintf("%v/%s/%dx%dx%d", tier, op, m, k, n), func(b *testing.B) {
					prev, _ := simd.Use(tier)
					defer simd.Use(prev)
					for b.Loop() {
						if mixed {
							GemmMixed(false, true, 1, a, w, 0, c)
						} else {
							GemmBF16(false, true, 1, a16, w, 0, c)
						}
					}
					b.ReportMetric(2*float64(m)*float64(n)*float64(k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOPS")
				})
			}
		}
	}
}

// BenchmarkMatVecBF16 measures MatVecBF16 on the SmolLM2-135M shapes
// (576 hidden, 1536 MLP, 49,152 vocabulary) in GB/s of weights read, and
// BenchmarkCopy the copy bandwidth it is bounded by.
func BenchmarkMatVecBF16(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	for _, tier := range simd.Available() {
		for _, s := range [][2]int{{576, 576}, {1536, 576}, {576, 1536}, {49152, 576}} {
			rows, cols := s[0], s[1]
			w := FromSlice(randSlice(r, rows*cols), rows, cols).BF16()
			x, y := randSlice(r, cols), make([]float32, rows)
			b.Run(fmt.Sprintf("%v/%dx%d", tier, rows, cols), func(b *testing.B) {
				prev, _ := simd.Use(tier)
				defer simd.Use(prev)
				for b.Loop() {
					MatVecBF16(y, w, x)
				}
				b.ReportMetric(2*float64(rows*cols)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
			})
		}
	}
}

// BenchmarkCopy measures memory copy bandwidth (bytes read) at the size of
// the SmolLM2-135M weights in bfloat16 (270 MB) and of one 49,152×576
// matrix, the bound for MatVecBF16.
func BenchmarkCopy(b *testing.B) {
	for _, n := range []int{49152 * 576, 135 << 20} {
		src, dst := make([]uint16, n), make([]uint16, n)
		b.Run(fmt.Sprintf("%dMB", 2*n>>20), func(b *testing.B) {
			for b.Loop() {
				copy(dst, src)
			}
			b.ReportMetric(2*float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
		})
	}
}

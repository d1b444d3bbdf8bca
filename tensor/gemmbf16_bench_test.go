package tensor

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/posttrain/posttrain/tensor/internal/simd"
)

// BenchmarkGemmBF16 measures GemmBF16 (bfloat16 a·b, float32 c) at 1024³
// and a 4096×512×512 layer, and GemmMixed and GemmWiden (float32
// activations, rounded or exact, times bfloat16 weights [out,in], the
// frozen-layer forward), in GFLOPS (2·M·N·K per call), on every tier: the tier's name is the
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
			for _, op := range bf16Ops {
				if op == opWiden && tier == simd.AVX512BF16 {
					continue // the float32 kernel: avx512's
				}
				name := map[bf16Op]string{opBF16: "bf16", opMixed: "mixed", opWiden: "widen"}[op]
				b.Run(fmt.Sprintf("%v/%s/%dx%dx%d", tier, name, m, k, n), func(b *testing.B) {
					prev, _ := simd.Use(tier)
					defer simd.Use(prev)
					for b.Loop() {
						switch op {
						case opBF16:
							GemmBF16(false, true, 1, a16, w, 0, c)
						case opMixed:
							GemmMixed(false, true, 1, a, w, 0, c)
						case opWiden:
							GemmWiden(false, true, 1, a, w, 0, c)
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

// BenchmarkCopy measures memory copy bandwidth at the size of the
// SmolLM2-135M weights in bfloat16 (270 MB) and of one 49,152×576 matrix,
// the bound for MatVecBF16. GB/s counts bytes read plus bytes written, as
// STREAM's Copy does.
func BenchmarkCopy(b *testing.B) {
	for _, n := range []int{49152 * 576, 135 << 20} {
		src, dst := make([]uint16, n), make([]uint16, n)
		b.Run(fmt.Sprintf("%dMB", 2*n>>20), func(b *testing.B) {
			for b.Loop() {
				copy(dst, src)
			}
			b.ReportMetric(4*float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
		})
	}
}

// smolLM2Weights are the weight matrices [out, in] one token of
// SmolLM2-135M reads: per layer (30) the q, k, v, o projections (576
// model width, 3 key-value heads of 64) and the gated MLP (1,536), then
// the tied 49,152×576 output projection: 134.5M weights.
func smolLM2Weights() [][2]int {
	var s [][2]int
	for range 30 {
		s = append(s, [2]int{576, 576}, [2]int{192, 576}, [2]int{192, 576}, [2]int{576, 576},
			[2]int{1536, 576}, [2]int{1536, 576}, [2]int{576, 1536})
	}
	return append(s, [2]int{49152, 576})
}

// BenchmarkDecodeWeights measures the weight products of one batch-1
// decoding step of SmolLM2-135M, the part of decoding bound by memory
// bandwidth: bf16 runs MatVecBF16 on bfloat16 weights (269 MB); on the
// float32 weights (538 MB), f32-gemm runs what the float32 decoder
// (nn.Decoder) calls today, Gemm with one row and a transposed B, and
// f32-dot one Dot per row on the calling goroutine, a streaming float32
// matrix–vector product. It reports tokens/s and GB/s of weights read;
// BenchmarkCopy/270MB gives the bound.
func BenchmarkDecodeWeights(b *testing.B) {
	shapes := smolLM2Weights()
	var w16 []*BF16
	var w32 []*Dense
	seed := uint32(1)
	bytes16 := 0
	for _, s := range shapes {
		w := NewBF16(s[0], s[1])
		for i := range w.data {
			seed = seed*1664525 + 1013904223
			w.data[i] = 0x3c00 | uint16(seed>>16)&0x83ff // ±[2^-7, 2^-5): a plausible weight's size
		}
		w16 = append(w16, w)
		bytes16 += 2 * w.Len()
	}
	x, y := make([]float32, 1536), make([]float32, 49152)
	for i := range x {
		x[i] = float32(i%7) - 3
	}
	report := func(b *testing.B, bytes int) {
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
		b.ReportMetric(float64(bytes)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
	}
	b.Run("bf16", func(b *testing.B) {
		for b.Loop() {
			for _, w := range w16 {
				MatVecBF16(y[:w.shape[0]], w, x[:w.shape[1]])
			}
		}
		report(b, bytes16)
	})
	for _, w := range w16 {
		w32 = append(w32, w.Dense())
	}
	b.Run("f32-dot", func(b *testing.B) {
		for b.Loop() {
			for _, w := range w32 {
				out, in := w.shape[0], w.shape[1]
				for i := range out {
					y[i] = Dot(w.data[i*in:(i+1)*in], x[:in])
				}
			}
		}
		report(b, 2*bytes16)
	})
	b.Run("f32-gemm", func(b *testing.B) {
		for b.Loop() {
			for _, w := range w32 {
				out, in := w.shape[0], w.shape[1]
				Gemm(false, true, 1, FromSlice(x[:in], 1, in), w, 0, FromSlice(y[:out], 1, out))
			}
		}
		report(b, 2*bytes16)
	})
}

package tensor

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// gemmBenchShapes are the sizes the issue asks about: cubes, the examples'
// logits projection (M = 1…16 rows × K = 512 × N = 49,152) and a
// 4096×512×512 layer.
var gemmBenchShapes = [][3]int{
	{256, 256, 256}, {1024, 1024, 1024}, {1040, 1040, 1040},
	{1, 512, 49152}, {4, 512, 49152}, {16, 512, 49152},
	{4096, 512, 512},
}

func benchGemm(b *testing.B, m, k, n int, f func(c, a, bb *Dense)) {
	r := rand.New(rand.NewPCG(1, 1))
	a, bb, c := FromSlice(randSlice(r, m*k), m, k), FromSlice(randSlice(r, k*n), k, n), New(m, n)
	f(c, a, bb)
	for b.Loop() {
		f(c, a, bb)
	}
	b.ReportMetric(2*float64(m)*float64(n)*float64(k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOPS")
}

// BenchmarkGemm measures MatMul (c = a·b) in GFLOPS, 2·M·N·K per call.
func BenchmarkGemm(b *testing.B) {
	for _, s := range gemmBenchShapes {
		b.Run(fmt.Sprintf("%dx%dx%d", s[0], s[1], s[2]), func(b *testing.B) { benchGemm(b, s[0], s[1], s[2], MatMul) })
	}
}

// BenchmarkGemmTrans measures the transposed operand paths at 1024³.
func BenchmarkGemmTrans(b *testing.B) {
	for _, t := range [][2]bool{{false, true}, {true, false}, {true, true}} {
		b.Run(fmt.Sprintf("tA=%v,tB=%v", t[0], t[1]), func(b *testing.B) {
			benchGemm(b, 1024, 1024, 1024, func(c, a, bb *Dense) { Gemm(t[0], t[1], 1, a, bb, 0, c) })
		})
	}
}

// BenchmarkGemmNaive is the twin: the textbook i-p-j loop over rows of b
// with Axpy, the placeholder this package used before the blocked product.
func BenchmarkGemmNaive(b *testing.B) {
	for _, s := range gemmBenchShapes[:2] {
		b.Run(fmt.Sprintf("%dx%dx%d", s[0], s[1], s[2]), func(b *testing.B) { benchGemm(b, s[0], s[1], s[2], naiveMatMul) })
	}
}

func naiveMatMul(c, a, b *Dense) {
	m, k, n := a.shape[0], a.shape[1], b.shape[1]
	clear(c.data)
	for i := range m {
		ci := c.data[i*n : (i+1)*n]
		for p := range k {
			Axpy(a.data[i*k+p], b.data[p*n:(p+1)*n], ci)
		}
	}
}

// BenchmarkBatchedMatMul measures attention-sized products: 32 heads of
// 128×64 · 64×128.
func BenchmarkBatchedMatMul(b *testing.B) {
	const nb, m, k, n = 32, 128, 64, 128
	r := rand.New(rand.NewPCG(1, 1))
	x, y, z := FromSlice(randSlice(r, nb*m*k), nb, m, k), FromSlice(randSlice(r, nb*k*n), nb, k, n), New(nb, m, n)
	for b.Loop() {
		BatchedMatMul(z, x, y)
	}
	b.ReportMetric(2*float64(nb*m*n*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOPS")
}

package simd

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkDots times the decoder's products on one core, at SmolLM2-135M's
// MLP shape (1536 weight rows of 576, 3.5 MB in float32: in L2 on most
// CPUs, so the kernel's arithmetic shows) and its head (49,152 rows,
// 113 MB: memory-bound), for one input row and eight: "dots" is the
// tier's Dots or DotsBF16 (splitting the input rows included), f32-each
// one Dot per output, as the float32 decoder did before. GFLOPS counts 2 per multiply-add;
// GB/s the weights read.
//
//	go test -run '^$' -bench Dots ./tensor/internal/simd/
func BenchmarkDots(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, tier := range f32Tiers() {
		k := Table(tier)
		for _, sh := range []struct{ n, in int }{{1536, 576}, {49152, 576}} {
			w := make([]float32, sh.n*sh.in)
			gen(r, w, normal)
			w16 := make([]uint16, len(w))
			toBF16Generic(w16, w)
			for _, m := range []int{1, 8} {
				x := make([]float32, m*sh.in)
				gen(r, x, normal)
				xs := make([]float32, m*SplitLen(sh.in))
				y := make([]float32, m*sh.n)
				run := func(name string, bytes int, f func()) {
					b.Run(fmt.Sprintf("%v/%s/m=%d/%dx%d", tier, name, m, sh.n, sh.in), func(b *testing.B) {
						for b.Loop() {
							f()
						}
						s := b.Elapsed().Seconds() / float64(b.N)
						b.ReportMetric(2*float64(m*sh.n*sh.in)/s/1e9, "GFLOPS")
						b.ReportMetric(float64(bytes*sh.n*sh.in)/s/1e9, "GB/s")
					})
				}
				run("f32-dots", 4, func() { k.Dots(y, sh.n, w, sh.in, x, sh.in, m, sh.n, sh.in) })
				run("f32-each", 4, func() {
					for i := range sh.n {
						for rr := range m {
							y[rr*sh.n+i] = k.Dot(w[i*sh.in:(i+1)*sh.in], x[rr*sh.in:(rr+1)*sh.in])
						}
					}
				})
				run("bf16-dots", 2, func() {
					for rr := range m {
						SplitBF16(xs[rr*SplitLen(sh.in):], x[rr*sh.in:(rr+1)*sh.in])
					}
					k.DotsBF16(y, sh.n, w16, sh.in, xs, SplitLen(sh.in), m, sh.n, sh.in)
				})
			}
		}
	}
}

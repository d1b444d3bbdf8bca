package gonumblas

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
)

// BenchmarkSgemm times C = A·B on square n×n matrices through blas32, with
// posttrain's implementation and gonum's native one side by side:
// bench/gonumblas.sh prints the ratio.
func BenchmarkSgemm(b *testing.B) {
	impls := []struct {
		name string
		impl blas.Float32
	}{{"posttrain", Implementation{}}, {"gonum", ref}}
	for _, n := range []int{64, 256, 1024} {
		for _, im := range impls {
			b.Run(fmt.Sprintf("%s/%d", im.name, n), func(b *testing.B) {
				r := rand.New(rand.NewPCG(1, uint64(n)))
				a, bb := randSlice(r, n*n), randSlice(r, n*n)
				c := make([]float32, n*n)
				prev := blas32.Implementation()
				blas32.Use(im.impl)
				defer blas32.Use(prev)
				ga := blas32.General{Rows: n, Cols: n, Stride: n, Data: a}
				gb := blas32.General{Rows: n, Cols: n, Stride: n, Data: bb}
				gc := blas32.General{Rows: n, Cols: n, Stride: n, Data: c}
				for b.Loop() {
					blas32.Gemm(blas.NoTrans, blas.NoTrans, 1, ga, gb, 0, gc)
				}
				b.ReportMetric(2*float64(n)*float64(n)*float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOPS")
			})
		}
	}
}

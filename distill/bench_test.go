package distill

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"

	"github.com/posttrain/posttrain/tensor"
)

// Benchmarks report throughput against the memory-traffic model of the
// bound: the logits read twice (the finiteness check, then each row's
// maximum; later passes over a row hit cache) and the gradient written
// once, 12 bytes per logit. BenchmarkCopy measures the machine's copy bandwidth
// on the same footprint, so
//
//	bound time = 12·N·V bytes / copy GB/s
//
// and "within 2x of the bound" means ConvexCombination's GB/s is at least
// half of Copy's.
//
//	go test -run '^$' -bench 'ConvexCombination|Copy' -benchtime 5x ./distill/

var benchSizes = []struct{ n, v int }{{64, 32000}, {512, 49152}, {2048, 49152}}

func BenchmarkConvexCombination(b *testing.B) {
	for _, s := range benchSizes {
		b.Run(fmt.Sprintf("%dx%d", s.n, s.v), func(b *testing.B) {
			r := rand.New(rand.NewPCG(1, 1))
			z := randDense(r, 3, s.n, s.v)
			g := tensor.New(s.n, s.v)
			g.Zero() // fault the pages in before timing
			labels, teacher := randIDs(r, s.n, s.v), randIDs(r, s.n, s.v)
			b.SetBytes(int64(12 * s.n * s.v))
			for b.Loop() {
				if _, err := ConvexCombination(g, z, labels, teacher, DefaultTeacherWeight); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkConvexCombinationLoss is the loss alone (grad nil): no
// gradient write, so 8 bytes per logit.
func BenchmarkConvexCombinationLoss(b *testing.B) {
	for _, s := range benchSizes[:2] {
		b.Run(fmt.Sprintf("%dx%d", s.n, s.v), func(b *testing.B) {
			r := rand.New(rand.NewPCG(1, 1))
			z := randDense(r, 3, s.n, s.v)
			labels, teacher := randIDs(r, s.n, s.v), randIDs(r, s.n, s.v)
			b.SetBytes(int64(8 * s.n * s.v))
			for b.Loop() {
				if _, err := ConvexCombination(nil, z, labels, teacher, DefaultTeacherWeight); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCopy copies an [N, V] float32 array: 8 bytes moved per element
// (one read, one write), the bandwidth the bound above is taken against.
// It copies in GOMAXPROCS contiguous pieces at once, as the losses use
// GOMAXPROCS workers; serial is one goroutine, for reference.
func BenchmarkCopy(b *testing.B) {
	for _, s := range benchSizes {
		src, dst := make([]float32, s.n*s.v), make([]float32, s.n*s.v)
		for i := range src {
			src[i] = float32(i)
		}
		copy(dst, src) // fault the pages in before timing
		b.Run(fmt.Sprintf("%dx%d", s.n, s.v), func(b *testing.B) {
			p := runtime.GOMAXPROCS(0)
			piece := (len(src) + p - 1) / p
			b.SetBytes(int64(8 * s.n * s.v))
			for b.Loop() {
				var wg sync.WaitGroup
				for lo := 0; lo < len(src); lo += piece {
					hi := min(lo+piece, len(src))
					wg.Go(func() { copy(dst[lo:hi], src[lo:hi]) })
				}
				wg.Wait()
			}
		})
		b.Run(fmt.Sprintf("serial/%dx%d", s.n, s.v), func(b *testing.B) {
			b.SetBytes(int64(8 * s.n * s.v))
			for b.Loop() {
				copy(dst, src)
			}
		})
	}
}

func BenchmarkDivergence(b *testing.B) {
	const n, v = 64, 32000
	r := rand.New(rand.NewPCG(1, 1))
	s, t, g := randDense(r, 3, n, v), randDense(r, 3, n, v), tensor.New(n, v)
	for _, c := range []struct {
		name string
		f    func() (float64, error)
	}{
		{"SoftTarget", func() (float64, error) { return SoftTarget(g, s, t, 2) }},
		// Above T = 8 the forward and reverse KL take the float64 path.
		{"SoftTargetT16", func() (float64, error) { return SoftTarget(g, s, t, 16) }},
		{"ReverseKL", func() (float64, error) { return ReverseKL(g, s, t, 1) }},
		{"GJSD0.5", func() (float64, error) { return GeneralizedJSD(g, s, t, 0.5, 1) }},
	} {
		b.Run(fmt.Sprintf("%s/%dx%d", c.name, n, v), func(b *testing.B) {
			b.SetBytes(int64(16 * n * v))
			for b.Loop() {
				if _, err := c.f(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkSparseKL(b *testing.B) {
	const n, v, k = 256, 32000, 32
	r := rand.New(rand.NewPCG(1, 1))
	z, g := randDense(r, 3, n, v), tensor.New(n, v)
	labels := randIDs(r, n, v)
	top := sparseTeacher(r, n, v, k)
	for _, c := range []struct {
		name  string
		g     *tensor.Dense
		mode  Leftover
		alpha float64
	}{{"DropLossOnly", nil, Drop, 1}, {"Drop", g, Drop, 1}, {"Bucket", g, Bucket, 1}, {"BucketMixed", g, Bucket, 0.5}} {
		b.Run(fmt.Sprintf("%s/%dx%d/k=%d", c.name, n, v, k), func(b *testing.B) {
			for b.Loop() {
				if _, err := SparseKL(c.g, z, labels, top, c.mode, c.alpha); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

package tensor

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/posttrain/posttrain/tensor/internal/simd"
)

// Kernel benchmarks run every available tier, the generic twin included,
// at 1K, 49,152 (AFM's on-device vocabulary) and 4M elements:
//
//	go test -run '^$' -bench 'Exp|Dot' ./tensor/
//
// Names read Benchmark<Kernel>/<tier>/<size>, so benchstat can set tiers
// side by side. SetBytes counts the bytes each call reads and writes.

var benchSizes = []struct {
	name string
	n    int
}{{"1K", 1 << 10}, {"49152", 49152}, {"4M", 1 << 22}}

func benchData(n int, scale float64) []float32 {
	r := rand.New(rand.NewPCG(1, uint64(n)))
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(scale * r.NormFloat64())
	}
	return x
}

// benchTiers runs body under each available tier at each size. bytesPer is
// the traffic per element (e.g. 8 for a read and a write of float32).
func benchTiers(b *testing.B, bytesPer int, body func(b *testing.B, n int) func()) {
	for _, tier := range f32TiersTensor() {
		b.Run(tier.String(), func(b *testing.B) {
			prev, err := simd.Use(tier)
			if err != nil {
				b.Fatal(err)
			}
			defer simd.Use(prev)
			for _, s := range benchSizes {
				b.Run(s.name, func(b *testing.B) {
					call := body(b, s.n)
					b.SetBytes(int64(bytesPer * s.n))
					for b.Loop() {
						call()
					}
				})
			}
		})
	}
}

func BenchmarkDot(b *testing.B) {
	benchTiers(b, 8, func(b *testing.B, n int) func() {
		x, y := benchData(n, 1), benchData(n, 1)
		return func() { Dot(x, y) }
	})
}

func BenchmarkAxpy(b *testing.B) {
	benchTiers(b, 12, func(b *testing.B, n int) func() {
		x, y := benchData(n, 1), benchData(n, 1)
		return func() { Axpy(1e-3, x, y) }
	})
}

func BenchmarkAdd(b *testing.B) {
	benchTiers(b, 12, func(b *testing.B, n int) func() {
		x, y := benchData(n, 1), benchData(n, 1)
		return func() { Add(y, x, y) }
	})
}

func BenchmarkScale(b *testing.B) {
	benchTiers(b, 8, func(b *testing.B, n int) func() {
		x := benchData(n, 1)
		return func() { Scale(x, 1.0001, x) }
	})
}

func BenchmarkSum(b *testing.B) {
	benchTiers(b, 4, func(b *testing.B, n int) func() {
		x := benchData(n, 1)
		return func() { Sum(x) }
	})
}

func BenchmarkMax(b *testing.B) {
	benchTiers(b, 4, func(b *testing.B, n int) func() {
		x := benchData(n, 1)
		return func() { Max(x) }
	})
}

func BenchmarkArgMax(b *testing.B) {
	benchTiers(b, 4, func(b *testing.B, n int) func() {
		x := benchData(n, 1)
		return func() { ArgMax(x) }
	})
}

func BenchmarkExp(b *testing.B) {
	benchTiers(b, 8, func(b *testing.B, n int) func() {
		x, y := benchData(n, 10), make([]float32, n)
		return func() { Exp(y, x) }
	})
}

func BenchmarkLog(b *testing.B) {
	benchTiers(b, 8, func(b *testing.B, n int) func() {
		x, y := benchData(n, 10), make([]float32, n)
		Exp(x, x)
		return func() { Log(y, x) }
	})
}

func BenchmarkLogSumExp(b *testing.B) {
	benchTiers(b, 4, func(b *testing.B, n int) func() {
		x := benchData(n, 3)
		return func() { LogSumExp(x) }
	})
}

func BenchmarkSoftmax(b *testing.B) {
	benchTiers(b, 12, func(b *testing.B, n int) func() {
		x, y := benchData(n, 3), make([]float32, n)
		return func() { Softmax(y, x) }
	})
}

func BenchmarkLogSoftmax(b *testing.B) {
	benchTiers(b, 12, func(b *testing.B, n int) func() {
		x, y := benchData(n, 3), make([]float32, n)
		return func() { LogSoftmax(y, x) }
	})
}

func BenchmarkTopK(b *testing.B) {
	benchTiers(b, 4, func(b *testing.B, n int) func() {
		x := benchData(n, 3)
		idx, val := make([]int, 32), make([]float32, 32)
		return func() { TopKTo(idx, val, x) }
	})
}

func BenchmarkToBF16(b *testing.B) {
	benchTiers(b, 6, func(b *testing.B, n int) func() {
		x, h := benchData(n, 3), make([]uint16, n)
		return func() { ToBF16(h, x) }
	})
}

func BenchmarkToF16(b *testing.B) {
	benchTiers(b, 6, func(b *testing.B, n int) func() {
		x, h := benchData(n, 3), make([]uint16, n)
		return func() { ToF16(h, x) }
	})
}

func BenchmarkFromF16(b *testing.B) {
	benchTiers(b, 6, func(b *testing.B, n int) func() {
		x, h := benchData(n, 3), make([]uint16, n)
		ToF16(h, x)
		return func() { FromF16(x, h) }
	})
}

// BenchmarkLogSoftmaxRows is the anchor workload: 512 rows of 49,152
// logits on one goroutine (PyTorch's F.log_softmax on one thread).
func BenchmarkLogSoftmaxRows(b *testing.B) {
	const rows, v = 512, 49152
	x, y := benchData(rows*v, 3), make([]float32, rows*v)
	for _, tier := range f32TiersTensor() {
		b.Run(fmt.Sprintf("%v/512x49152", tier), func(b *testing.B) {
			prev, _ := simd.Use(tier)
			defer simd.Use(prev)
			b.SetBytes(8 * rows * v)
			for b.Loop() {
				for r := 0; r < rows; r++ {
					LogSoftmax(y[r*v:(r+1)*v], x[r*v:(r+1)*v])
				}
			}
		})
	}
}

package simd

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestGemmKernel drives each tier's micro-kernel directly, for every tile
// size up to MR×NR, both A layouts, both store modes, and checks it against
// a float64 sum, that acc = false ignores NaN in c, and that nothing
// outside the tile is written.
func TestGemmKernel(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, tier := range Available() {
		kern := Table(tier).Gemm
		t.Run(tier.String(), func(t *testing.T) {
			MR, NR := kern.MR, kern.NR
			for _, k := range []int{1, 2, 3, 4, 5, 9, 33} {
				for mr := 1; mr <= MR; mr++ {
					for nr := 1; nr <= NR; nr++ {
						for _, trans := range []bool{false, true} {
							checkKernel(t, r, kern, mr, nr, k, trans, nr%2 == 0)
						}
					}
				}
			}
		})
	}
}

func checkKernel(t *testing.T, r *rand.Rand, kern *GemmKernel, mr, nr, k int, trans, acc bool) {
	t.Helper()
	const pad = 3 // A's leading dimension exceeds the tile, as in a real matrix
	NR := kern.NR
	lda := k + pad
	rs, ks := lda, 1
	if trans {
		lda = mr + pad
		rs, ks = 1, lda
	}
	a := make([]float32, (mr+pad)*(k+pad))
	for i := range a {
		a[i] = float32(r.NormFloat64())
	}
	b := make([]float32, k*NR)
	for i := range b {
		b[i] = float32(r.NormFloat64())
		if i%NR >= nr {
			b[i] = float32(math.NaN()) // lanes past nr are don't-care
		}
	}
	ldc := NR + 5
	c := make([]float32, (mr+1)*ldc)
	for i := range c {
		c[i] = float32(r.NormFloat64())
	}
	c0 := append([]float32(nil), c...)
	if !acc {
		for i := 0; i < mr; i++ {
			c[i*ldc] = float32(math.NaN())
		}
	}
	kern.Run(mr, nr, k, a, rs, ks, b, c, ldc, acc)
	for i := range mr + 1 {
		for j := range ldc {
			got := c[i*ldc+j]
			if i >= mr || j >= nr {
				if got != c0[i*ldc+j] {
					t.Fatalf("mr=%d nr=%d k=%d: wrote c[%d,%d] outside the tile", mr, nr, k, i, j)
				}
				continue
			}
			var s, sa float64
			for p := range k {
				x, y := float64(a[i*rs+p*ks]), float64(b[p*NR+j])
				s += x * y
				sa += math.Abs(x * y)
			}
			if acc {
				s += float64(c0[i*ldc+j])
				sa += math.Abs(float64(c0[i*ldc+j]))
			}
			if math.Abs(float64(got)-s) > 1e-6*float64(k+1)*sa+1e-30 {
				t.Fatalf("mr=%d nr=%d k=%d trans=%v acc=%v: c[%d,%d] = %v, want %v", mr, nr, k, rs == 1, acc, i, j, got, s)
			}
		}
	}
}

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
	for _, tier := range f32Tiers() {
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

func TestGemmPackT16(t *testing.T) {
	for _, tier := range f32Tiers() {
		pack := Table(tier).Gemm.PackT16
		if pack == nil {
			continue
		}
		t.Run(tier.String(), func(t *testing.T) {
			for _, n16 := range []int{0, 1, 3} {
				const lds, ldd = 53, 37
				src := make([]float32, 15*lds+16*n16)
				for i := range src {
					src[i] = float32(i)
				}
				dst := make([]float32, 16*n16*ldd+16)
				for i := range dst {
					dst[i] = -1
				}
				pack(dst, src, lds, ldd, n16)
				for i, got := range dst {
					want := float32(-1)
					if row, r := i/ldd, i%ldd; row < 16*n16 && r < 16 {
						want = src[r*lds+row]
					}
					if got != want {
						t.Fatalf("n16=%d: dst[%d] = %v, want %v", n16, i, got, want)
					}
				}
			}
		})
	}
}

func TestGemmPackN(t *testing.T) {
	for _, tier := range f32Tiers() {
		kern := Table(tier).Gemm
		if kern.PackN == nil {
			continue
		}
		t.Run(tier.String(), func(t *testing.T) {
			NR := kern.NR
			for _, s := range [][2]int{{0, 3}, {3, 0}, {1, 1}, {3, 5}} {
				np, k := s[0], s[1]
				lds, panel := np*NR+7, k*NR+3
				src := make([]float32, k*lds)
				for i := range src {
					src[i] = float32(i)
				}
				dst := make([]float32, np*panel+5)
				for i := range dst {
					dst[i] = -1
				}
				kern.PackN(dst, src, lds, panel, np, k)
				for i, got := range dst {
					want := float32(-1)
					if q, o := i/panel, i%panel; q < np && o < k*NR {
						want = src[(o/NR)*lds+q*NR+o%NR]
					}
					if got != want {
						t.Fatalf("np=%d k=%d: dst[%d] = %v, want %v", np, k, i, got, want)
					}
				}
			}
		})
	}
}

func TestGemmRows4(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, tier := range f32Tiers() {
		rows4 := Table(tier).Gemm.Rows4
		if rows4 == nil {
			continue
		}
		t.Run(tier.String(), func(t *testing.T) {
			for n := 0; n <= 100; n++ {
				ldb := n + 3
				b := make([]float32, 3*ldb+n)
				for i := range b {
					b[i] = float32(r.NormFloat64())
				}
				a := [4]float32{float32(r.NormFloat64()), float32(r.NormFloat64()), float32(r.NormFloat64()), float32(r.NormFloat64())}
				c := make([]float32, n+1)
				for i := range c {
					c[i] = float32(r.NormFloat64())
				}
				c0 := append([]float32(nil), c...)
				rows4(c[:n], a[0], a[1], a[2], a[3], b, ldb)
				for j := range n {
					want, scale := float64(c0[j]), math.Abs(float64(c0[j]))
					for i := range 4 {
						v := float64(a[i]) * float64(b[i*ldb+j])
						want += v
						scale += math.Abs(v)
					}
					if math.Abs(float64(c[j])-want) > 1e-6*scale {
						t.Fatalf("n=%d: c[%d] = %v, want %v", n, j, c[j], want)
					}
				}
				if c[n] != c0[n] {
					t.Fatalf("n=%d: wrote past the end of c", n)
				}
			}
		})
	}
}

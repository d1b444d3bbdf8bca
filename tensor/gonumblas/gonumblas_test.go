package gonumblas

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/gonum/blas/gonum"

	"github.com/posttrain/posttrain/tensor"
)

// The reference throughout is gonum's own native implementation: an
// independent BLAS, written and tested by others.
var ref gonum.Implementation

func randSlice(r *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	return x
}

// absGemm is |alpha|·|op(A)|·|op(B)| + |beta|·|C| in float64: the scale
// a float32 rounding error in each element of C is relative to.
func absGemm(aT, bT bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) []float64 {
	out := make([]float64, m*n)
	for i := range m {
		for j := range n {
			var s float64
			for p := range k {
				var x, y float32
				if aT {
					x = a[p*lda+i]
				} else {
					x = a[i*lda+p]
				}
				if bT {
					y = b[j*ldb+p]
				} else {
					y = b[p*ldb+j]
				}
				s += math.Abs(float64(x) * float64(y))
			}
			s *= math.Abs(float64(alpha))
			if beta != 0 {
				s += math.Abs(float64(beta) * float64(c[i*ldc+j]))
			}
			out[i*n+j] = s
		}
	}
	return out
}

var transposes = []blas.Transpose{blas.NoTrans, blas.Trans, blas.ConjTrans}

// forEachTier runs f under every kernel tier this CPU can run, so each
// tier's micro-kernel meets the strided operands.
func forEachTier(t *testing.T, f func(t *testing.T)) {
	for _, tier := range tensor.Tiers() {
		t.Run(tier, func(t *testing.T) {
			prev, err := tensor.SetTier(tier)
			require.NoError(t, err)
			defer tensor.SetTier(prev)
			f(t)
		})
	}
}

func TestSgemm(t *testing.T) { forEachTier(t, testSgemm) }

func testSgemm(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	dims := []int{0, 1, 3, 13, 40} // empty, one, under and over a micro-tile (12×32 on AVX-512)
	for _, tA := range transposes {
		for _, tB := range transposes {
			for _, m := range dims {
				for _, n := range dims {
					for _, k := range dims {
						pad := r.IntN(4) // leading dimensions beyond the row length
						ab := [][2]float32{{1, 0}, {-0.5, 1}, {2, 0.5}, {0, 0.25}}[r.IntN(4)]
						name := fmt.Sprintf("%c%c/m=%d,n=%d,k=%d,pad=%d,alpha=%g,beta=%g", tA, tB, m, n, k, pad, ab[0], ab[1])
						checkSgemm(t, r, name, tA, tB, m, n, k, pad, ab[0], ab[1])
					}
				}
			}
		}
	}
}

// TestSgemmLarge runs products big enough to be split across workers and
// packed in several K blocks, with strided operands.
func TestSgemmLarge(t *testing.T) { forEachTier(t, testSgemmLarge) }

func testSgemmLarge(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, c := range []struct {
		tA, tB  blas.Transpose
		m, n, k int
		pad     int
	}{
		{blas.NoTrans, blas.NoTrans, 100, 130, 600, 7}, // two K blocks, several workers
		{blas.Trans, blas.Trans, 67, 131, 530, 1},
		{blas.NoTrans, blas.Trans, 1, 3000, 300, 5}, // one row: the streaming path
		{blas.Trans, blas.NoTrans, 1, 2500, 257, 3}, // one row of a transposed, strided A
		{blas.Trans, blas.Trans, 1, 2100, 200, 3},   // the same with B transposed: not the Dot path
	} {
		name := fmt.Sprintf("%c%c/%dx%dx%d,pad=%d", c.tA, c.tB, c.m, c.n, c.k, c.pad)
		checkSgemm(t, r, name, c.tA, c.tB, c.m, c.n, c.k, c.pad, 1.5, 0.5)
	}
}

func checkSgemm(t *testing.T, r *rand.Rand, name string, tA, tB blas.Transpose, m, n, k, pad int, alpha, beta float32) {
	t.Helper()
	aT, bT := tA != blas.NoTrans, tB != blas.NoTrans
	ar, ac := m, k
	if aT {
		ar, ac = k, m
	}
	br, bc := k, n
	if bT {
		br, bc = n, k
	}
	lda, ldb, ldc := max(1, ac+pad), max(1, bc+pad), max(1, n+pad)
	a, b := randSlice(r, max(0, (ar-1)*lda+ac)), randSlice(r, max(0, (br-1)*ldb+bc))
	c := randSlice(r, max(0, (m-1)*ldc+n))
	// The padding of C holds a marker neither side may touch.
	for i := range m {
		for j := n; j < ldc && i*ldc+j < len(c); j++ {
			c[i*ldc+j] = 1234
		}
	}
	want := append([]float32(nil), c...)
	got := append([]float32(nil), c...)
	scale := absGemm(aT, bT, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
	ref.Sgemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, want, ldc)
	Implementation{}.Sgemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, got, ldc)
	for i := range m {
		for j := range ldc {
			p := i*ldc + j
			if p >= len(c) {
				break
			}
			if j >= n {
				if got[p] != 1234 {
					t.Fatalf("%s: padding C[%d,%d] changed to %v", name, i, j, got[p])
				}
				continue
			}
			// Both sides round each product and sum in float32, in different
			// orders: a few ulp of the absolute sum per accumulated term.
			tol := 4 * float64(k+2) * 0x1p-24 * scale[i*n+j]
			if d := math.Abs(float64(got[p]) - float64(want[p])); d > tol {
				t.Fatalf("%s: C[%d,%d] = %v, gonum %v (|Δ| %g > %g)", name, i, j, got[p], want[p], d, tol)
			}
		}
	}
}

func TestSgemmBetaZeroIgnoresC(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	m, n, k := 9, 40, 17
	a, b := randSlice(r, m*k), randSlice(r, k*n)
	for _, alpha := range []float32{0, 1} {
		c := make([]float32, m*n)
		for i := range c {
			c[i] = float32(math.NaN())
		}
		want := make([]float32, m*n)
		ref.Sgemm(blas.NoTrans, blas.NoTrans, m, n, k, alpha, a, k, b, n, 0, want, n)
		Implementation{}.Sgemm(blas.NoTrans, blas.NoTrans, m, n, k, alpha, a, k, b, n, 0, c, n)
		for i := range c {
			require.False(t, math.IsNaN(float64(c[i])), "alpha=%v: C[%d] is NaN", alpha, i)
			require.InDelta(t, want[i], c[i], 1e-4, "alpha=%v: C[%d]", alpha, i)
		}
	}
}

// TestSgemmPanics checks that every invalid call panics with gonum's own
// message, and before touching C.
func TestSgemmPanics(t *testing.T) {
	a, b, c := make([]float32, 12), make([]float32, 12), make([]float32, 12)
	for _, tc := range []struct {
		name    string
		tA, tB  blas.Transpose
		m, n, k int
		lda     int
		ldb     int
		ldc     int
		la      int
	}{
		{"bad transpose", 'X', blas.NoTrans, 3, 4, 3, 3, 4, 4, 12},
		{"m < 0", blas.NoTrans, blas.NoTrans, -1, 4, 3, 3, 4, 4, 12},
		{"n < 0", blas.NoTrans, blas.NoTrans, 3, -1, 3, 3, 4, 4, 12},
		{"k < 0", blas.NoTrans, blas.NoTrans, 3, 4, -1, 3, 4, 4, 12},
		{"lda", blas.NoTrans, blas.NoTrans, 3, 4, 3, 2, 4, 4, 12},
		{"lda transposed", blas.Trans, blas.NoTrans, 3, 4, 3, 2, 4, 4, 12},
		{"ldb", blas.NoTrans, blas.NoTrans, 3, 4, 3, 3, 3, 4, 12},
		{"ldc", blas.NoTrans, blas.NoTrans, 3, 4, 3, 3, 4, 3, 12},
		{"short a", blas.NoTrans, blas.NoTrans, 3, 4, 3, 3, 4, 4, 8},
		{"short c", blas.NoTrans, blas.NoTrans, 3, 4, 3, 3, 4, 5, 12},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := recovered(func() {
				ref.Sgemm(tc.tA, tc.tB, tc.m, tc.n, tc.k, 1, a[:tc.la], tc.lda, b, tc.ldb, 0, c, tc.ldc)
			})
			require.NotNil(t, msg, "gonum accepts the call")
			for i := range c {
				c[i] = 7
			}
			assert.PanicsWithValue(t, msg, func() {
				Implementation{}.Sgemm(tc.tA, tc.tB, tc.m, tc.n, tc.k, 1, a[:tc.la], tc.lda, b, tc.ldb, 0, c, tc.ldc)
			})
			for _, v := range c {
				require.Equal(t, float32(7), v, "C changed before the panic")
			}
		})
	}
}

func recovered(f func()) (v any) {
	defer func() { v = recover() }()
	f()
	return nil
}

func TestSgemv(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, tA := range transposes {
		for _, m := range []int{0, 1, 3, 17, 100} {
			for _, n := range []int{0, 1, 4, 33, 2100} {
				for _, inc := range []int{1, 2, -1} {
					for _, ab := range [][2]float32{{1, 0}, {-2, 0.5}, {0, 3}} {
						name := fmt.Sprintf("%c/m=%d,n=%d,inc=%d,alpha=%g,beta=%g", tA, m, n, inc, ab[0], ab[1])
						t.Run(name, func(t *testing.T) {
							lenX, lenY := n, m
							if tA != blas.NoTrans {
								lenX, lenY = m, n
							}
							abs := max(inc, -inc)
							lda := n + 2
							a := randSlice(r, max(0, (m-1)*lda+n))
							x := randSlice(r, max(0, (lenX-1)*abs+1))
							y := randSlice(r, max(0, (lenY-1)*abs+1))
							want := append([]float32(nil), y...)
							ref.Sgemv(tA, m, n, ab[0], a, lda, x, inc, ab[1], want, inc)
							Implementation{}.Sgemv(tA, m, n, ab[0], a, lda, x, inc, ab[1], y, inc)
							// Scale of the rounding error: the sum of |terms|.
							var s float64
							for _, v := range a {
								s = max(s, math.Abs(float64(v)))
							}
							tol := 1e-5 * float64(max(m, n)+1) * 4 * (1 + s)
							for i := range y {
								assert.InDelta(t, want[i], y[i], tol, "y[%d]", i)
							}
						})
					}
				}
			}
		}
	}
}

func TestLevel1(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for _, n := range []int{0, 1, 7, 64, 1000, 5000} {
		for _, inc := range []int{1, 3, -2} {
			t.Run(fmt.Sprintf("n=%d,inc=%d", n, inc), func(t *testing.T) {
				abs := max(inc, -inc)
				x := randSlice(r, max(0, (n-1)*abs+1))
				y := randSlice(r, len(x))
				var s float64
				for _, v := range x {
					s += math.Abs(float64(v))
				}
				tol := 1e-6 * (s + 1) * 4

				assert.InDelta(t, ref.Sdot(n, x, inc, y, inc), Implementation{}.Sdot(n, x, inc, y, inc), tol*4, "Sdot")

				for _, alpha := range []float32{0, 0.5, -3} {
					want, got := append([]float32(nil), y...), append([]float32(nil), y...)
					ref.Saxpy(n, alpha, x, inc, want, inc)
					Implementation{}.Saxpy(n, alpha, x, inc, got, inc)
					require.InDeltaSlice(t, want, got, 1e-5, "Saxpy alpha=%v", alpha)

					want, got = append([]float32(nil), x...), append([]float32(nil), x...)
					if n > 0 {
						want[0], got[0] = float32(math.NaN()), float32(math.NaN())
					}
					ref.Sscal(n, alpha, want, inc)
					Implementation{}.Sscal(n, alpha, got, inc)
					for i := range want {
						if math.IsNaN(float64(want[i])) {
							require.True(t, math.IsNaN(float64(got[i])), "Sscal alpha=%v: [%d] = %v, gonum NaN", alpha, i, got[i])
							continue
						}
						require.InDelta(t, want[i], got[i], 1e-5, "Sscal alpha=%v [%d]", alpha, i)
					}
				}
			})
		}
	}
}

// TestUse runs a product through blas32's package-level API after Use.
func TestUse(t *testing.T) {
	prev := blas32.Implementation()
	blas32.Use(Implementation{})
	defer blas32.Use(prev)

	a := blas32.General{Rows: 2, Cols: 3, Stride: 4, Data: []float32{
		1, 2, 3, -1,
		4, 5, 6, -1,
	}}
	b := blas32.General{Rows: 3, Cols: 2, Stride: 2, Data: []float32{
		7, 8,
		9, 10,
		11, 12,
	}}
	c := blas32.General{Rows: 2, Cols: 2, Stride: 3, Data: []float32{
		1, 1, -1,
		1, 1, -1,
	}}
	blas32.Gemm(blas.NoTrans, blas.NoTrans, 1, a, b, 2, c)
	// [1 2 3; 4 5 6]·[7 8; 9 10; 11 12] = [58 64; 139 154], plus 2·1.
	assert.Equal(t, []float32{60, 66, -1, 141, 156, -1}, c.Data)
}

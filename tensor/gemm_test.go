package tensor

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/posttrain/posttrain/tensor/internal/simd"
)

// refGemm is the float64 triple loop the blocked product is checked
// against: c = alpha·op(a)·op(b) + beta·c, with beta = 0 ignoring c.
func refGemm(transA, transB bool, m, n, k int, alpha float64, a, b []float32, beta float64, c []float32) []float64 {
	out := make([]float64, m*n)
	for i := range m {
		for j := range n {
			var s float64
			for p := range k {
				var x, y float32
				if transA {
					x = a[p*m+i]
				} else {
					x = a[i*k+p]
				}
				if transB {
					y = b[j*k+p]
				} else {
					y = b[p*n+j]
				}
				s += float64(x) * float64(y)
			}
			s *= alpha
			if beta != 0 {
				s += beta * float64(c[i*n+j])
			}
			out[i*n+j] = s
		}
	}
	return out
}

// absRef is Σ|alpha·a·b| + |beta·c|, the scale a float32 rounding error of
// each element is relative to.
func absRef(transA, transB bool, m, n, k int, alpha float64, a, b []float32, beta float64, c []float32) []float64 {
	abs := func(x []float32) []float32 {
		y := make([]float32, len(x))
		for i, v := range x {
			y[i] = float32(math.Abs(float64(v)))
		}
		return y
	}
	var cc []float32
	if beta != 0 {
		cc = abs(c)
	}
	return refGemm(transA, transB, m, n, k, math.Abs(alpha), abs(a), abs(b), math.Abs(beta), cc)
}

func randSlice(r *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	return x
}

// forEachTier runs f with each available SIMD tier forced.
func forEachTier(t *testing.T, f func(t *testing.T)) {
	for _, tier := range f32TiersTensor() {
		t.Run(tier.String(), func(t *testing.T) {
			prev, err := simd.Use(tier)
			require.NoError(t, err)
			defer simd.Use(prev)
			f(t)
		})
	}
}

// checkGemm runs one Gemm with each available tier forced and compares
// every element with the float64 reference, within a bound proportional to
// k and the element's scale. The reference is computed once for all tiers.
func checkGemm(t *testing.T, r *rand.Rand, transA, transB bool, m, n, k int, alpha, beta float32) {
	t.Helper()
	a, b := randSlice(r, m*k), randSlice(r, k*n)
	c := randSlice(r, m*n)
	if beta == 0 && len(c) > 0 {
		for i := range c {
			if i%3 == 0 {
				c[i] = float32(math.NaN())
			}
		}
	}
	want := refGemm(transA, transB, m, n, k, float64(alpha), a, b, float64(beta), c)
	scale := absRef(transA, transB, m, n, k, float64(alpha), a, b, float64(beta), c)
	ash, bsh := []int{m, k}, []int{k, n}
	if transA {
		ash = []int{k, m}
	}
	if transB {
		bsh = []int{n, k}
	}
	tol := float64(k+2) * 6e-8
	for _, tier := range f32TiersTensor() {
		prev, err := simd.Use(tier)
		require.NoError(t, err)
		C := FromSlice(append([]float32(nil), c...), m, n)
		Gemm(transA, transB, alpha, FromSlice(a, ash...), FromSlice(b, bsh...), beta, C)
		simd.Use(prev)
		for i, got := range C.Data() {
			if d := math.Abs(float64(got) - want[i]); !(d <= tol*scale[i]+1e-30) {
				t.Fatalf("%v: Gemm(%v,%v, m=%d n=%d k=%d, alpha=%v beta=%v): c[%d,%d] = %v, want %v (scale %v)",
					tier, transA, transB, m, n, k, alpha, beta, i/n, i%n, got, want[i], scale[i])
			}
		}
	}
}

var gemmSizes = []int{0, 1, 2, 3, 5, 7, 11, 13, 16, 17, 31, 33, 47, 64, 67}

func TestGemmShapes(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, tA := range []bool{false, true} {
		for _, tB := range []bool{false, true} {
			for _, m := range gemmSizes {
				for _, n := range []int{0, 1, 5, 16, 33, 67} {
					for _, k := range []int{0, 1, 7, 32, 65} {
						checkGemm(t, r, tA, tB, m, n, k, 1, 0)
					}
				}
			}
		}
	}
}

func TestGemmRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	iters := 60
	if testing.Short() || raceEnabled {
		iters = 15
	}
	for range iters {
		m, n, k := 1+r.IntN(130), 1+r.IntN(130), 1+r.IntN(200)
		switch r.IntN(4) {
		case 0:
			m = 1 // a row vector times a matrix
		case 1:
			n = 1 // a matrix times a column vector
		}
		checkGemm(t, r, r.IntN(2) == 1, r.IntN(2) == 1, m, n, k, float32(r.NormFloat64()), float32(r.NormFloat64()))
	}
}

// TestGemmBlocks crosses the K, N and task block boundaries and runs the
// parallel path.
func TestGemmBlocks(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	shapes := [][3]int{{131, 67, 1031}, {37, 600, 520}, {301, 293, 97}, {13, 800, 1031}, {5, 2100, 131}, {1, 4100, 37}}
	if testing.Short() || raceEnabled {
		shapes = [][3]int{{13, 800, 1031}, {40, 70, 600}, {1, 4100, 37}}
	}
	for _, s := range shapes {
		for _, tA := range []bool{false, true} {
			for _, tB := range []bool{false, true} {
				checkGemm(t, r, tA, tB, s[0], s[1], s[2], 1, 0.5)
			}
		}
	}
}

func TestGemmAlphaBeta(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, alpha := range []float32{0, 1, -1, 0.5, 3} {
		for _, beta := range []float32{0, 1, -1, 0.25} {
			for _, k := range []int{0, 3, 40} {
				checkGemm(t, r, false, false, 13, 37, k, alpha, beta)
				checkGemm(t, r, true, true, 29, 3, k, alpha, beta)
			}
		}
	}
}

// TestGemmBetaZeroNaN checks that beta = 0 overwrites NaN and Inf in c,
// on every path: empty k, alpha = 0, and the product itself.
func TestGemmBetaZeroNaN(t *testing.T) {
	forEachTier(t, func(t *testing.T) {
		for _, k := range []int{0, 4, 600} {
			for _, alpha := range []float32{0, 1} {
				a, b := New(9, k), New(k, 70)
				for i := range a.Data() {
					a.Data()[i] = 1
				}
				for i := range b.Data() {
					b.Data()[i] = 2
				}
				c := New(9, 70)
				for i := range c.Data() {
					c.Data()[i] = float32(math.NaN())
				}
				c.Data()[5] = float32(math.Inf(1))
				Gemm(false, false, alpha, a, b, 0, c)
				want := alpha * 2 * float32(k)
				for i, v := range c.Data() {
					if v != want {
						t.Fatalf("k=%d alpha=%v: c[%d] = %v, want %v", k, alpha, i, v, want)
					}
				}
			}
		}
	})
}

// TestGemmWorkers checks that the result is bit-identical whatever the
// number of workers. Run it under -race for the pool's synchronisation.
func TestGemmWorkers(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	m, n, k := 150, 170, 600
	if testing.Short() {
		m, n = 70, 90
	}
	a, b := FromSlice(randSlice(r, m*k), m, k), FromSlice(randSlice(r, n*k), n, k)
	var first []float32
	for _, procs := range []int{1, 2, 3, 8} {
		old := runtime.GOMAXPROCS(procs)
		c := New(m, n)
		Gemm(false, true, 1, a, b, 0, c)
		runtime.GOMAXPROCS(old)
		if first == nil {
			first = c.Data()
			continue
		}
		for i, v := range c.Data() {
			if v != first[i] {
				t.Fatalf("GOMAXPROCS=%d: c[%d] = %v, differs from one worker's %v", procs, i, v, first[i])
			}
		}
	}
}

// TestGemmConcurrent runs products from several goroutines at once, which
// share the pool.
func TestGemmConcurrent(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	const m, n, k = 64, 96, 200
	a, b := FromSlice(randSlice(r, m*k), m, k), FromSlice(randSlice(r, k*n), k, n)
	want := New(m, n)
	MatMul(want, a, b)
	errc := make(chan error, 4)
	for range 4 {
		go func() {
			c := New(m, n)
			for range 10 {
				MatMul(c, a, b)
				for i, v := range c.Data() {
					if v != want.Data()[i] {
						errc <- fmt.Errorf("c[%d] = %v, want %v", i, v, want.Data()[i])
						return
					}
				}
			}
			errc <- nil
		}()
	}
	for range 4 {
		require.NoError(t, <-errc)
	}
}

func TestGemmShapeError(t *testing.T) {
	cases := []struct {
		name    string
		a, b, c *Dense
		tA, tB  bool
	}{
		{"inner", New(2, 3), New(4, 5), New(2, 5), false, false},
		{"rows", New(2, 3), New(3, 5), New(3, 5), false, false},
		{"cols", New(2, 3), New(3, 5), New(2, 4), false, false},
		{"transA", New(2, 3), New(3, 5), New(2, 5), true, false},
		{"transB", New(2, 3), New(3, 5), New(2, 5), false, true},
		{"rank", New(2, 3, 1), New(3, 5), New(2, 5), false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				var se *ShapeError
				if err, ok := recover().(error); !ok || !errors.As(err, &se) {
					t.Fatalf("recovered %v, want *ShapeError", err)
				}
			}()
			Gemm(tc.tA, tc.tB, 1, tc.a, tc.b, 0, tc.c)
		})
	}
}

func TestBatchedGemm(t *testing.T) {
	forEachTier(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(13, 14))
		for _, s := range [][4]int{{3, 5, 7, 9}, {4, 33, 17, 65}, {2, 150, 140, 130}, {1, 4, 4, 4}, {0, 3, 3, 3}} {
			nb, m, n, k := s[0], s[1], s[2], s[3]
			for _, tA := range []bool{false, true} {
				for _, tB := range []bool{false, true} {
					a, b, c := randSlice(r, nb*m*k), randSlice(r, nb*k*n), randSlice(r, nb*m*n)
					ash, bsh := []int{nb, m, k}, []int{nb, k, n}
					if tA {
						ash = []int{nb, k, m}
					}
					if tB {
						bsh = []int{nb, n, k}
					}
					c0 := append([]float32(nil), c...)
					C := FromSlice(c, nb, m, n)
					BatchedGemm(tA, tB, 2, FromSlice(a, ash...), FromSlice(b, bsh...), -1, C)
					for i := range nb {
						want := refGemm(tA, tB, m, n, k, 2, a[i*m*k:(i+1)*m*k], b[i*k*n:(i+1)*k*n], -1, c0[i*m*n:(i+1)*m*n])
						for e, w := range want {
							if got := C.Data()[i*m*n+e]; math.Abs(float64(got)-w) > 1e-4*(1+math.Abs(w))*float64(k) {
								t.Fatalf("batch %d (%v,%v) %v: c[%d] = %v, want %v", i, tA, tB, s, e, got, w)
							}
						}
					}
				}
			}
		}
	})
	defer func() {
		var se *ShapeError
		if err, ok := recover().(error); !ok || !errors.As(err, &se) {
			t.Fatalf("recovered %v, want *ShapeError", err)
		}
	}()
	BatchedMatMul(New(2, 3, 4), New(2, 3, 5), New(3, 5, 4))
}

func TestGemmAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	r := rand.New(rand.NewPCG(15, 16))
	a, b, c := FromSlice(randSlice(r, 200*300), 200, 300), FromSlice(randSlice(r, 300*250), 300, 250), New(200, 250)
	MatMul(c, a, b)
	if n := testing.AllocsPerRun(10, func() { MatMul(c, a, b) }); n != 0 {
		t.Errorf("MatMul allocates %v times per call, want 0", n)
	}
	x, y, z := New(8, 20, 30), New(8, 30, 10), New(8, 20, 10)
	BatchedMatMul(z, x, y)
	if n := testing.AllocsPerRun(10, func() { BatchedMatMul(z, x, y) }); n != 0 {
		t.Errorf("BatchedMatMul allocates %v times per call, want 0", n)
	}
}

// FuzzGemm checks random shapes, transposes and scalars against the
// float64 reference on every tier.
func FuzzGemm(f *testing.F) {
	f.Add(uint8(5), uint8(7), uint8(9), uint8(0), int8(1), int8(0), uint64(1))
	f.Add(uint8(13), uint8(40), uint8(33), uint8(3), int8(-2), int8(1), uint64(2))
	f.Add(uint8(1), uint8(64), uint8(1), uint8(1), int8(3), int8(-1), uint64(3))
	f.Fuzz(func(t *testing.T, m, n, k, trans uint8, alpha, beta int8, seed uint64) {
		r := rand.New(rand.NewPCG(seed, 1))
		checkGemm(t, r, trans&1 != 0, trans&2 != 0, int(m%80), int(n%80), int(k), float32(alpha)/2, float32(beta)/2)
	})
}

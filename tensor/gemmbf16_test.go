package tensor

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"testing"

	"github.com/posttrain/posttrain/tensor/internal/simd"
)

// roundSlice returns x rounded to bfloat16, as bits and as float32 values.
func roundSlice(x []float32) ([]uint16, []float32) {
	h := make([]uint16, len(x))
	ToBF16(h, x)
	f := make([]float32, len(x))
	FromBF16(f, h)
	return h, f
}

// bf16Op is the product a check runs.
type bf16Op int

const (
	opBF16  bf16Op = iota // GemmBF16: both operands bfloat16
	opMixed               // GemmMixed: float32 a, rounded to bfloat16
	opWiden               // GemmWiden: float32 a kept exact
)

var bf16Ops = []bf16Op{opBF16, opMixed, opWiden}

func (o bf16Op) String() string { return [...]string{"GemmBF16", "GemmMixed", "GemmWiden"}[o] }

// checkBF16 runs GemmBF16, GemmMixed or GemmWiden with each tier forced,
// operands placed at misaligned offsets, and compares every element with
// the float64 product of the bfloat16-rounded inputs (a unrounded for
// GemmWiden).
func checkBF16(t *testing.T, r *rand.Rand, op bf16Op, transA, transB bool, m, n, k, off int, alpha, beta float32) {
	t.Helper()
	checkBF16Tiers(t, r, false, op, transA, transB, m, n, k, off, alpha, beta)
}

// checkBF16One is checkBF16 on the kernel table as it stands.
func checkBF16One(t *testing.T, r *rand.Rand, op bf16Op, transA, transB bool, m, n, k, off int, alpha, beta float32) {
	t.Helper()
	checkBF16Tiers(t, r, true, op, transA, transB, m, n, k, off, alpha, beta)
}

func checkBF16Tiers(t *testing.T, r *rand.Rand, current bool, op bf16Op, transA, transB bool, m, n, k, off int, alpha, beta float32) {
	t.Helper()
	a32, b32 := randSlice(r, m*k), randSlice(r, k*n)
	a16, ar := roundSlice(a32)
	b16, br := roundSlice(b32)
	if op == opWiden {
		ar = a32
	}
	c := randSlice(r, m*n)
	if beta == 0 {
		for i := 0; i < len(c); i += 3 {
			c[i] = float32(math.NaN())
		}
	}
	want := refGemm(transA, transB, m, n, k, float64(alpha), ar, br, float64(beta), c)
	scale := absRef(transA, transB, m, n, k, float64(alpha), ar, br, float64(beta), c)
	ash, bsh := []int{m, k}, []int{k, n}
	if transA {
		ash = []int{k, m}
	}
	if transB {
		bsh = []int{n, k}
	}
	// Misaligned copies: every operand starts off elements into its slice.
	at16 := func(x []uint16) []uint16 { return append(make([]uint16, off), x...)[off:] }
	at32 := func(x []float32) []float32 { return append(make([]float32, off), x...)[off:] }
	tol := float64(k+2) * 6e-8
	tiers := simd.Available()
	if current {
		tiers = []simd.Tier{simd.Active()}
	}
	for _, tier := range tiers {
		prev := tier
		if !current { // else keep the table as the caller set it
			var err error
			if prev, err = simd.Use(tier); err != nil {
				t.Fatal(err)
			}
		}
		C := FromSlice(at32(c), m, n)
		B := FromSliceBF16(at16(b16), bsh...)
		switch op {
		case opBF16:
			GemmBF16(transA, transB, alpha, FromSliceBF16(at16(a16), ash...), B, beta, C)
		case opMixed:
			GemmMixed(transA, transB, alpha, FromSlice(at32(a32), ash...), B, beta, C)
		case opWiden:
			GemmWiden(transA, transB, alpha, FromSlice(at32(a32), ash...), B, beta, C)
		}
		if !current {
			simd.Use(prev)
		}
		for i, got := range C.Data() {
			if d := math.Abs(float64(got) - want[i]); !(d <= tol*scale[i]+1e-30) {
				t.Fatalf("%v: %s(%v,%v, m=%d n=%d k=%d off=%d, alpha=%v beta=%v): c[%d,%d] = %v, want %v (scale %v)",
					tier, op, transA, transB, m, n, k, off, alpha, beta, i/n, i%n, got, want[i], scale[i])
			}
		}
	}
}

// bf16Sizes straddle the tiles of every tier (4×8, 6×16, 8×12, 12×32).
var bf16Sizes = []int{0, 1, 2, 3, 5, 11, 12, 13, 31, 32, 33, 67}

func TestGemmBF16Shapes(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, op := range bf16Ops {
		for _, tA := range []bool{false, true} {
			for _, tB := range []bool{false, true} {
				for i, m := range bf16Sizes {
					for j, n := range bf16Sizes {
						k := bf16Sizes[(i+2*j)%len(bf16Sizes)]
						checkBF16(t, r, op, tA, tB, m, n, k, (i+j)%4, 1, 0)
					}
				}
			}
		}
	}
}

// TestGemmBF16Large crosses the K blocking (odd depths included), the
// parallel split, alpha and beta.
func TestGemmBF16Large(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	type shape struct {
		m, n, k     int
		alpha, beta float32
	}
	shapes := []shape{{130, 40, 600, 1, 0}, {64, 400, 515, 0.5, 1}, {37, 150, 1025, 1, -0.25}, {1, 700, 333, 2, 0}}
	// Under qemu or the race detector: smaller products, still across
	// the K blocks, and two of the four transposes.
	slow := testing.Short() || raceEnabled || os.Getenv("QEMU") != ""
	if slow {
		shapes = []shape{{130, 40, 600, 1, 0}, {37, 50, 1025, 1, -0.25}, {1, 300, 333, 2, 0}}
	}
	for _, s := range shapes {
		for c := range 12 {
			op, tA, tB := bf16Op(c/4), c&2 != 0, c&1 != 0
			if slow && tA == tB {
				continue
			}
			checkBF16(t, r, op, tA, tB, s.m, s.n, s.k, 1, s.alpha, s.beta)
		}
	}
}

// TestGemmBF16Workers checks that the result's bits do not depend on the
// number of workers.
func TestGemmBF16Workers(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	const m, n, k = 200, 160, 700
	a, b := FromSlice(randSlice(r, m*k), m, k).BF16(), FromSlice(randSlice(r, k*n), n, k).BF16()
	var first []float32
	for _, procs := range []int{1, 2, 5} {
		old := runtime.GOMAXPROCS(procs)
		c := New(m, n)
		GemmBF16(false, true, 1, a, b, 0, c)
		runtime.GOMAXPROCS(old)
		if first == nil {
			first = c.Data()
			continue
		}
		for i, v := range c.Data() {
			if math.Float32bits(v) != math.Float32bits(first[i]) {
				t.Fatalf("GOMAXPROCS=%d: c[%d] = %v, differs from one worker's %v", procs, i, v, first[i])
			}
		}
	}
}

func TestMatVecBF16(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	for _, s := range [][2]int{{0, 5}, {3, 0}, {1, 1}, {5, 17}, {17, 33}, {64, 576}, {576, 576}, {1537, 200}, {4096, 97}} {
		rows, cols := s[0], s[1]
		w16, wr := roundSlice(randSlice(r, rows*cols))
		x := randSlice(r, cols)
		W := FromSliceBF16(w16, rows, cols)
		for _, tier := range simd.Available() {
			prev, _ := simd.Use(tier)
			y := make([]float32, rows)
			for i := range y {
				y[i] = float32(math.NaN())
			}
			MatVecBF16(y, W, x)
			simd.Use(prev)
			for i, got := range y {
				var want, scale float64
				for j := range cols {
					p := float64(wr[i*cols+j]) * float64(x[j])
					want += p
					scale += math.Abs(p)
				}
				if d := math.Abs(float64(got) - want); !(d <= float64(cols+2)*6e-8*scale+1e-30) {
					t.Fatalf("%v: %dx%d: y[%d] = %v, want %v", tier, rows, cols, i, got, want)
				}
			}
		}
	}
}

func TestBF16Shapes(t *testing.T) {
	for _, f := range []func(){
		func() { MatVecBF16(make([]float32, 3), NewBF16(3, 4), make([]float32, 5)) },
		func() { MatVecBF16(make([]float32, 3), NewBF16(12), make([]float32, 4)) },
		func() { GemmBF16(false, false, 1, NewBF16(2, 3), NewBF16(4, 5), 0, New(2, 5)) },
		func() { GemmMixed(false, true, 1, New(2, 3), NewBF16(4, 5), 0, New(2, 4)) },
		func() { GemmWiden(false, true, 1, New(2, 3), NewBF16(4, 5), 0, New(2, 4)) },
		func() { GemmWiden(false, false, 1, New(2, 3), NewBF16(4, 5), 0, New(2, 5)) },
		func() { FromSliceBF16(make([]uint16, 5), 2, 3) },
	} {
		func() {
			defer func() {
				var se *ShapeError
				if err, _ := recover().(error); !errors.As(err, &se) {
					t.Fatalf("want a *ShapeError panic, got %v", err)
				}
			}()
			f()
		}()
	}
}

func TestBF16RoundTrip(t *testing.T) {
	x := FromSlice([]float32{1, -2.5, 3.14159, 1e-3, float32(math.Inf(1)), 65504}, 2, 3)
	b := x.BF16()
	if fmt.Sprint(b.Shape()) != "[2 3]" || b.Len() != 6 || b.Dims() != 2 || b.Dim(1) != 3 {
		t.Fatalf("shape %v", b.Shape())
	}
	// bfloat16 keeps 8 significant bits: the nearest values, by hand
	// (3.14159 = 402.1·2^-7, 1e-3 = 131.07·2^-17, 65504 = 255.9·2^8).
	want := []float32{1, -2.5, 3.140625, 131 * 0x1p-17, float32(math.Inf(1)), 65536}
	for i, v := range b.Dense().Data() {
		if v != want[i] {
			t.Fatalf("element %d: %v, want %v", i, v, want[i])
		}
	}
}

// f32TiersTensor are the tiers whose float32 kernels differ: avx512bf16
// shares avx512's, so float32 tests skip it.
func f32TiersTensor() []simd.Tier {
	var ts []simd.Tier
	for _, t := range simd.Available() {
		if t != simd.AVX512BF16 {
			ts = append(ts, t)
		}
	}
	return ts
}

// TestBF16Allocs checks that warm bfloat16 products allocate nothing, on
// every tier (the conversion buffers are recycled).
func TestBF16Allocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	r := rand.New(rand.NewPCG(17, 18))
	a, w := FromSlice(randSlice(r, 40*70), 40, 70), FromSlice(randSlice(r, 50*70), 50, 70).BF16()
	a16, c := a.BF16(), New(40, 50)
	x, y := randSlice(r, 70), make([]float32, 50)
	for _, tier := range simd.Available() {
		prev, _ := simd.Use(tier)
		for name, f := range map[string]func(){
			"GemmBF16":   func() { GemmBF16(false, true, 1, a16, w, 0, c) },
			"GemmMixed":  func() { GemmMixed(false, true, 1, a, w, 0, c) },
			"GemmWiden":  func() { GemmWiden(false, true, 1, a, w, 0, c) },
			"MatVecBF16": func() { MatVecBF16(y, w, x) },
		} {
			f()
			if n := testing.AllocsPerRun(10, f); n != 0 {
				t.Errorf("%v: %s allocates %v times per call, want 0", tier, name, n)
			}
		}
		simd.Use(prev)
	}
}

// amxModel is a Go model of the AMX kernel's contract (BF16Kernel with
// MR = NR = 32, KBlock = 16): it lets the packing for KBlock > 1 run on
// CPUs without AMX. It reads a and b exactly as TDPBF16PS reads the tiles
// the assembly loads: A row i of block qb at words (qb·32+i)·16 …, B pair
// row q at words q·32 ….
func amxModel(kp int, a, b []uint16, c []float32, ldc int, acc bool) {
	const MR, NR, KB = 32, 32, 16
	if kp%KB != 0 {
		panic("amxModel: kp is not a multiple of 16")
	}
	for i := range MR {
		for j := range NR {
			var s float32
			for q := range kp {
				wa := ((q/KB*MR+i)*KB + q%KB) * 2
				wb := (q*NR + j) * 2
				s += simd.WidenBF16(a[wa])*simd.WidenBF16(b[wb]) + simd.WidenBF16(a[wa+1])*simd.WidenBF16(b[wb+1])
			}
			if acc {
				c[i*ldc+j] += s
			} else {
				c[i*ldc+j] = s
			}
		}
	}
}

// TestGemmBF16Blocked runs GemmBF16 and GemmMixed with the model of the
// AMX kernel installed, over shapes that leave k short of a block, edges
// in both directions and both transposes, against the float64 reference.
func TestGemmBF16Blocked(t *testing.T) {
	saved := simd.K.BF16
	simd.K.BF16 = &simd.BF16Kernel{MR: 32, NR: 32, KBlock: 16, Run: amxModel}
	defer func() { simd.K.BF16 = saved }()
	r := rand.New(rand.NewPCG(19, 20))
	for _, s := range [][3]int{{1, 1, 1}, {32, 32, 32}, {33, 31, 17}, {70, 45, 600}, {5, 64, 1025}} {
		for c := range 8 {
			op, tA, tB := bf16Op(c/4), c&2 != 0, c&1 != 0
			checkBF16One(t, r, op, tA, tB, s[0], s[1], s[2], 1, 1, 0)
		}
	}
}

package distill

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/posttrain/posttrain/tensor"
)

func randDense(r *rand.Rand, scale float64, n, v int) *tensor.Dense {
	d := make([]float32, n*v)
	for i := range d {
		d[i] = float32(r.NormFloat64() * scale)
	}
	return tensor.FromSlice(d, n, v)
}

func randIDs(r *rand.Rand, n, v int) []int32 {
	ids := make([]int32, n)
	for i := range ids {
		ids[i] = int32(r.IntN(v))
	}
	return ids
}

// lossFunc is a loss of one logits tensor, with its gradient.
type lossFunc func(grad, z *tensor.Dense) (float64, error)

// sparseTeacher returns top-k ids and float32 log-probs of a random
// teacher distribution over v tokens, for n rows.
func sparseTeacher(r *rand.Rand, n, v, k int) TopK {
	top := TopK{IDs: make([]int32, n*k), LogProbs: make([]float32, n*k), K: k}
	t := randDense(r, 2, n, v)
	lp := make([]float32, v)
	idx, val := make([]int, k), make([]float32, k)
	for i := range n {
		tensor.LogSoftmax(lp, t.Row(i))
		tensor.TopKTo(idx, val, lp)
		for a := range k {
			top.IDs[i*k+a], top.LogProbs[i*k+a] = int32(idx[a]), val[a]
		}
	}
	return top
}

// allLosses returns every loss over fixed random side inputs for an
// [n, v] student.
func allLosses(r *rand.Rand, n, v int) map[string]lossFunc {
	labels, teacher := randIDs(r, n, v), randIDs(r, n, v)
	labels[0] = -100
	tl := randDense(r, 2, n, v)
	top := sparseTeacher(r, n, v, 3)
	m := map[string]lossFunc{
		"Convex": func(g, z *tensor.Dense) (float64, error) {
			return ConvexCombination(g, z, labels, teacher, DefaultTeacherWeight)
		},
		"CrossEntropy": func(g, z *tensor.Dense) (float64, error) { return CrossEntropy(g, z, labels) },
		"SoftTarget":   func(g, z *tensor.Dense) (float64, error) { return SoftTarget(g, z, tl, 2) },
		"ForwardKL":    func(g, z *tensor.Dense) (float64, error) { return ForwardKL(g, z, tl, 1.5) },
		"ReverseKL":    func(g, z *tensor.Dense) (float64, error) { return ReverseKL(g, z, tl, 0.8) },
	}
	for _, beta := range []float64{0, 0.2, 0.5, 1} {
		m[fmt.Sprintf("GJSD%v", beta)] = func(g, z *tensor.Dense) (float64, error) { return GeneralizedJSD(g, z, tl, beta, 1.2) }
	}
	for _, mode := range []Leftover{Drop, Bucket} {
		for _, alpha := range []float64{1, 0.6} {
			m[fmt.Sprintf("Sparse/%v/%v", mode, alpha)] = func(g, z *tensor.Dense) (float64, error) {
				return SparseKL(g, z, labels, top, mode, alpha)
			}
		}
	}
	return m
}

// TestFiniteDifference checks every gradient against central differences
// of the loss. The logits are float32, so the step is 1e-2 and the
// tolerance allows its O(h²) truncation error.
func TestFiniteDifference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const n, v, h = 3, 7, 1e-2
	for name, f := range allLosses(r, n, v) {
		z := randDense(r, 1.5, n, v)
		grad := tensor.New(n, v)
		if _, err := f(grad, z); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		d := z.Data()
		for i := range d {
			x := d[i]
			d[i] = x + h
			lp, _ := f(nil, z)
			d[i] = x - h
			lm, _ := f(nil, z)
			d[i] = x
			fd := (lp - lm) / (2 * h)
			if g := float64(grad.Data()[i]); math.Abs(g-fd) > 2e-4+1e-2*math.Abs(fd) {
				t.Errorf("%s: grad[%d] = %.6g, finite difference %.6g", name, i, g, fd)
			}
		}
	}
}

// TestAgreeingTeacherIsCrossEntropy: with ŷ = y the w = 0.9 loss and
// gradient equal cross-entropy's bit for bit.
func TestAgreeingTeacherIsCrossEntropy(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	z := randDense(r, 3, 9, 50)
	labels := randIDs(r, 9, 50)
	labels[4] = -1
	g1, g2 := tensor.New(9, 50), tensor.New(9, 50)
	l1, err1 := ConvexCombination(g1, z, labels, labels, 0.9)
	l2, err2 := CrossEntropy(g2, z, labels)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if l1 != l2 {
		t.Errorf("convex %v != cross-entropy %v", l1, l2)
	}
	for i, x := range g1.Data() {
		if x != g2.Data()[i] {
			t.Fatalf("grad[%d]: convex %v != cross-entropy %v", i, x, g2.Data()[i])
		}
	}
	// w = 0 ignores the teacher, which may then be nil.
	l3, err := ConvexCombination(nil, z, labels, randIDs(r, 9, 50), 0)
	if err != nil || l3 != l2 {
		t.Errorf("w = 0: %v (%v), want %v", l3, err, l2)
	}
}

// TestCrossEntropyUniform: equal logits give log V exactly known.
func TestCrossEntropyUniform(t *testing.T) {
	z := tensor.New(2, 1000)
	grad := tensor.New(2, 1000)
	l, err := CrossEntropy(grad, z, []int32{3, 999})
	if err != nil || math.Abs(l-math.Log(1000)) > 1e-6 {
		t.Fatalf("loss %v (%v), want log 1000", l, err)
	}
	if g := grad.Data()[3]; math.Abs(float64(g)-(0.001-1)/2) > 1e-7 {
		t.Errorf("grad at label %v, want %v", g, (0.001-1)/2)
	}
	if g := grad.Data()[4]; math.Abs(float64(g)-0.0005) > 1e-9 {
		t.Errorf("grad off label %v, want 0.0005", g)
	}
}

func TestAllIgnored(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	z := randDense(r, 1, 3, 5)
	grad := tensor.FromSlice([]float32{7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7}, 3, 5)
	l, err := ConvexCombination(grad, z, []int32{-100, -1, -100}, []int32{9, 9, 9}, 0.9)
	if err != nil || l != 0 {
		t.Fatalf("all ignored: %v, %v; want 0, nil", l, err)
	}
	for i, g := range grad.Data() {
		if g != 0 {
			t.Fatalf("grad[%d] = %v, want 0", i, g)
		}
	}
	l, err = ConvexCombination(tensor.New(0, 5), tensor.New(0, 5), nil, nil, 0.9)
	if err == nil {
		// teacherTop1 nil with w ≠ 0 is still an error, even with no rows.
		t.Errorf("empty batch with nil teacher and w = 0.9: no error (loss %v)", l)
	}
	if l, err = ConvexCombination(nil, tensor.New(0, 5), []int32{}, []int32{}, 0.9); err != nil || l != 0 {
		t.Errorf("empty batch: %v, %v; want 0, nil", l, err)
	}
	top := TopK{IDs: []int32{0, 1, 0, 1}, LogProbs: []float32{-1, -2, -1, -2}, K: 2}
	grad = tensor.FromSlice([]float32{7, 7, 7, 7}, 2, 2)
	if l, err = SparseKL(grad, tensor.New(2, 2), []int32{-1, -1}, top, Bucket, 0.5); err != nil || l != 0 || grad.Data()[0] != 0 {
		t.Errorf("sparse, all ignored: %v, %v, grad %v", l, err, grad.Data())
	}
}

// TestInPlace: grad may be the logits themselves.
func TestInPlace(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	const n, v = 6, 40
	for name, f := range allLosses(r, n, v) {
		z := randDense(r, 30, n, v) // wide logits so some probabilities underflow
		want := tensor.New(n, v)
		l1, err := f(want, z)
		if err != nil {
			t.Fatal(err)
		}
		l2, err := f(z, z)
		if err != nil {
			t.Fatal(err)
		}
		if l1 != l2 {
			t.Errorf("%s: in place loss %v, separate %v", name, l2, l1)
		}
		for i, x := range z.Data() {
			if x != want.Data()[i] {
				t.Errorf("%s: in place grad[%d] = %v, separate %v", name, i, x, want.Data()[i])
				break
			}
		}
	}
}

// TestDeterministic: results are bit-identical for any GOMAXPROCS.
func TestDeterministic(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	const n, v = 21, 6601 // chunks of 9 rows: 9, 9 and a ragged 3
	z := randDense(r, 4, n, v)
	losses := allLosses(r, n, v)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for name, f := range losses {
		var ref []float32
		var refLoss float64
		for _, p := range []int{1, 2, 5} {
			runtime.GOMAXPROCS(p)
			g := tensor.New(n, v)
			l, err := f(g, z)
			if err != nil {
				t.Fatal(err)
			}
			if ref == nil {
				ref, refLoss = g.Data(), l
				continue
			}
			if l != refLoss {
				t.Errorf("%s: GOMAXPROCS %d loss %v, GOMAXPROCS 1 %v", name, p, l, refLoss)
			}
			for i, x := range g.Data() {
				if x != ref[i] {
					t.Errorf("%s: GOMAXPROCS %d grad[%d] differs", name, p, i)
					break
				}
			}
		}
	}
}

// TestConcurrentCalls shares the worker pool between callers.
func TestConcurrentCalls(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	const n, v = 40, 1000
	z := randDense(r, 2, n, v)
	labels, teacher := randIDs(r, n, v), randIDs(r, n, v)
	want, err := ConvexCombination(nil, z, labels, teacher, 0.9)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			g := tensor.New(n, v)
			for range 5 {
				l, err := ConvexCombination(g, z, labels, teacher, 0.9)
				if err != nil || l != want {
					errs <- fmt.Errorf("concurrent call: %v, %v; want %v", l, err, want)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	r := rand.New(rand.NewPCG(13, 14))
	const n, v = 16, 5000 // two chunks, so the pool is used
	z, g := randDense(r, 2, n, v), tensor.New(n, v)
	for name, f := range allLosses(r, n, v) {
		// Warm up: each worker grows its scratch rows the first time it
		// draws a chunk, and which worker draws which chunk varies.
		for range 5 {
			f(g, z)
		}
		// The runtime itself may allocate now and then when goroutines
		// block (its sudog cache refills), so allow a few tries.
		var a float64
		for range 4 {
			if a = testing.AllocsPerRun(5, func() { f(g, z) }); a == 0 {
				break
			}
		}
		if a != 0 {
			t.Errorf("%s: %v allocations per call", name, a)
		}
	}
}

// TestErrors: every bad input is an error naming it, and grad is left
// untouched.
func TestErrors(t *testing.T) {
	const n, v = 3, 5
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	good := func() *tensor.Dense {
		return tensor.FromSlice([]float32{1, 2, 3, 4, 5, 0, 0, 0, 0, 0, -1, -2, -3, -4, -5}, n, v)
	}
	with := func(i int, x float32) *tensor.Dense { z := good(); z.Data()[i] = x; return z }
	labels, teacher := []int32{0, 1, 2}, []int32{4, 3, 2}
	top := TopK{IDs: []int32{0, 1, 2, 3, 4, 0}, LogProbs: []float32{-1, -2, -1, -2, -1, -2}, K: 2}
	topWith := func(f func(*TopK)) TopK {
		c := TopK{IDs: append([]int32(nil), top.IDs...), LogProbs: append([]float32(nil), top.LogProbs...), K: 2}
		f(&c)
		return c
	}
	cases := []struct {
		name, want string
		f          func(g *tensor.Dense) (float64, error)
	}{
		{"w>1", "teacher weight", func(g *tensor.Dense) (float64, error) { return ConvexCombination(g, good(), labels, teacher, 1.5) }},
		{"w<0", "teacher weight", func(g *tensor.Dense) (float64, error) { return ConvexCombination(g, good(), labels, teacher, -0.1) }},
		{"wNaN", "teacher weight", func(g *tensor.Dense) (float64, error) {
			return ConvexCombination(g, good(), labels, teacher, math.NaN())
		}},
		{"labels len", "2 labels", func(g *tensor.Dense) (float64, error) { return ConvexCombination(g, good(), labels[:2], teacher, 0.9) }},
		{"teacher len", "4 teacher", func(g *tensor.Dense) (float64, error) {
			return ConvexCombination(g, good(), labels, []int32{1, 1, 1, 1}, 0.9)
		}},
		{"teacher nil", "nil", func(g *tensor.Dense) (float64, error) { return ConvexCombination(g, good(), labels, nil, 0.9) }},
		{"label ≥ V", "labels[1] = 5", func(g *tensor.Dense) (float64, error) {
			return ConvexCombination(g, good(), []int32{0, 5, 1}, teacher, 0.9)
		}},
		{"teacher ≥ V", "teacherTop1[2] = 7", func(g *tensor.Dense) (float64, error) {
			return ConvexCombination(g, good(), labels, []int32{0, 1, 7}, 0.9)
		}},
		{"teacher < 0", "teacherTop1[0] = -1", func(g *tensor.Dense) (float64, error) {
			return ConvexCombination(g, good(), labels, []int32{-1, 1, 1}, 0.9)
		}},
		{"NaN", "row 1 column 2 is NaN", func(g *tensor.Dense) (float64, error) { return CrossEntropy(g, with(7, nan), labels) }},
		{"+Inf", "row 2 column 4 is +Inf", func(g *tensor.Dense) (float64, error) { return CrossEntropy(g, with(14, inf), labels) }},
		{"-Inf", "row 0 column 0 is -Inf", func(g *tensor.Dense) (float64, error) { return CrossEntropy(g, with(0, -inf), labels) }},
		{"1-D logits", "shape", func(g *tensor.Dense) (float64, error) {
			return CrossEntropy(g, tensor.New(15), labels)
		}},
		{"grad shape", "grad has shape", func(*tensor.Dense) (float64, error) { return CrossEntropy(tensor.New(3, 4), good(), labels) }},
		{"T=0", "temperature", func(g *tensor.Dense) (float64, error) { return SoftTarget(g, good(), good(), 0) }},
		{"T<0", "temperature", func(g *tensor.Dense) (float64, error) { return ForwardKL(g, good(), good(), -1) }},
		{"T=Inf", "temperature", func(g *tensor.Dense) (float64, error) { return ReverseKL(g, good(), good(), math.Inf(1)) }},
		{"T NaN", "temperature", func(g *tensor.Dense) (float64, error) { return SoftTarget(g, good(), good(), math.NaN()) }},
		{"T overflow", "overflow float32", func(*tensor.Dense) (float64, error) { return SoftTarget(nil, good(), good(), 1e-38) }},
		{"beta", "beta", func(g *tensor.Dense) (float64, error) { return GeneralizedJSD(g, good(), good(), 1.1, 1) }},
		{"teacher shape", "teacher has shape", func(g *tensor.Dense) (float64, error) { return SoftTarget(g, good(), tensor.New(3, 6), 1) }},
		{"teacher NaN", "teacher row 2 column 0 is NaN", func(g *tensor.Dense) (float64, error) { return GeneralizedJSD(g, good(), with(10, nan), 0.5, 1) }},
		{"student Inf", "student row 0 column 3", func(g *tensor.Dense) (float64, error) { return ForwardKL(g, with(3, -inf), good(), 1) }},
		{"alpha", "alpha", func(g *tensor.Dense) (float64, error) { return SparseKL(g, good(), labels, top, Drop, 2) }},
		{"mode", "leftover", func(g *tensor.Dense) (float64, error) { return SparseKL(g, good(), labels, top, Leftover(7), 1) }},
		{"K", "K = 0", func(g *tensor.Dense) (float64, error) { return SparseKL(g, good(), labels, TopK{}, Drop, 1) }},
		{"ids len", "want 6", func(g *tensor.Dense) (float64, error) {
			return SparseKL(g, good(), labels, TopK{IDs: top.IDs[:4], LogProbs: top.LogProbs, K: 2}, Drop, 1)
		}},
		{"sparse labels nil", "labels are nil", func(g *tensor.Dense) (float64, error) { return SparseKL(g, good(), nil, top, Drop, 0.5) }},
		{"sparse id", "row 1 id 1 = 9", func(g *tensor.Dense) (float64, error) {
			return SparseKL(g, good(), labels, topWith(func(c *TopK) { c.IDs[3] = 9 }), Bucket, 1)
		}},
		{"sparse dup", "row 2 repeats id 4", func(g *tensor.Dense) (float64, error) {
			return SparseKL(g, good(), labels, topWith(func(c *TopK) { c.IDs[5] = 4 }), Bucket, 1)
		}},
		{"sparse lp>0", "log-prob 0 = 0.5", func(g *tensor.Dense) (float64, error) {
			return SparseKL(g, good(), labels, topWith(func(c *TopK) { c.LogProbs[0] = 0.5 }), Drop, 1)
		}},
		{"sparse lp NaN", "log-prob 1 = NaN", func(g *tensor.Dense) (float64, error) {
			return SparseKL(g, good(), labels, topWith(func(c *TopK) { c.LogProbs[1] = nan }), Drop, 1)
		}},
		{"sparse sum>1", "sum to", func(g *tensor.Dense) (float64, error) {
			return SparseKL(g, good(), labels, topWith(func(c *TopK) { c.LogProbs[2], c.LogProbs[3] = -0.1, -0.2 }), Bucket, 1)
		}},
		{"sparse all zero", "all 0", func(g *tensor.Dense) (float64, error) {
			ninf := float32(math.Inf(-1))
			return SparseKL(g, good(), labels, topWith(func(c *TopK) { c.LogProbs[4], c.LogProbs[5] = ninf, ninf }), Drop, 1)
		}},
		{"sparse label", "labels[0] = 5", func(g *tensor.Dense) (float64, error) { return SparseKL(g, good(), []int32{5, 0, 0}, top, Drop, 0.5) }},
		{"sparse NaN", "logits row 1 column 1 is NaN", func(g *tensor.Dense) (float64, error) { return SparseKL(g, with(6, nan), labels, top, Drop, 1) }},
	}
	for _, c := range cases {
		g := tensor.New(n, v)
		for i := range g.Data() {
			g.Data()[i] = 42
		}
		l, err := c.f(g)
		if err == nil {
			t.Errorf("%s: no error (loss %v)", c.name, l)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q does not mention %q", c.name, err, c.want)
		}
		for _, x := range g.Data() {
			if x != 42 {
				t.Errorf("%s: grad was written on error", c.name)
				break
			}
		}
	}
}

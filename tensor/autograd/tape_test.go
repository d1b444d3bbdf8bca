package autograd

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/posttrain/posttrain/tensor"
)

func randParam(rng *rand.Rand, shape ...int) *Var {
	d := tensor.New(shape...)
	for i := range d.Data() {
		d.Data()[i] = float32(rng.NormFloat64())
	}
	return Param(d)
}

// TestComposite checks an attention-shaped graph, in which Reshape views
// share buffers and one Var feeds several ops, against finite differences.
func TestComposite(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const b, tt, h, dh = 2, 5, 2, 4
	x := randParam(rng, b*tt, h*dh)
	wq := randParam(rng, h*dh, h*dh)
	norm := randParam(rng, h*dh)
	cos, sin := RoPETables(0, tt, dh, 10000)
	f := func(tp *Tape) *Var {
		n := tp.RMSNorm(x, norm, 1e-6)
		q := tp.MatMulT(n, wq)
		heads := tp.Transpose(tp.Reshape(q, b, tt, h, dh), 1, 2)
		heads = tp.RoPE(heads, cos, sin)
		s := tp.BatchMatMul(heads, heads, true)
		p := tp.CausalSoftmax(s, 0.5)
		o := tp.BatchMatMul(p, heads, false)
		o = tp.Reshape(tp.Transpose(o, 1, 2), b*tt, h*dh)
		return tp.Add(tp.SiLU(o), x)
	}
	if err := GradCheckWith(f, []*Var{x, wq, norm}, GradCheckOptions{Tol: 3e-3, Seed: 7}); err != nil {
		t.Fatal(err)
	}
}

// TestLargeMatMul covers the row-split paths (more than one block of rows)
// against a float64 reference, and checks that the worker count does not
// change a single bit.
func TestLargeMatMul(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const m, k, n = 1100, 9, 7
	a, bt := randParam(rng, m, k), randParam(rng, n, k)
	seed := tensor.New(m, n)
	for i := range seed.Data() {
		seed.Data()[i] = float32(rng.NormFloat64())
	}
	run := func(workers int) (out, da, db []float32) {
		a.ZeroGrad()
		bt.ZeroGrad()
		tp := NewTape()
		tp.Workers = workers
		c := tp.MatMulT(a, bt)
		tp.Backward(c, seed)
		return slices.Clone(c.Value.Data()), slices.Clone(a.Grad.Data()), slices.Clone(bt.Grad.Data())
	}
	c1, da1, db1 := run(1)
	c3, da3, db3 := run(3)
	if !slices.Equal(c1, c3) || !slices.Equal(da1, da3) || !slices.Equal(db1, db3) {
		t.Fatal("results depend on the worker count")
	}
	ad, bd, sd := a.Value.Data(), bt.Value.Data(), seed.Data()
	for i := range m {
		for j := range n {
			var s float64
			for p := range k {
				s += float64(ad[i*k+p]) * float64(bd[j*k+p])
			}
			if math.Abs(s-float64(c1[i*n+j])) > 1e-4*max(1, math.Abs(s)) {
				t.Fatalf("c[%d,%d] = %v, want %v", i, j, c1[i*n+j], s)
			}
		}
	}
	for j := range n {
		for p := range k {
			var s float64
			for i := range m {
				s += float64(sd[i*n+j]) * float64(ad[i*k+p])
			}
			if math.Abs(s-float64(db1[j*k+p])) > 1e-4*max(1, math.Abs(s)) {
				t.Fatalf("db[%d,%d] = %v, want %v", j, p, db1[j*k+p], s)
			}
		}
	}
}

func TestResetReuse(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	x, w := randParam(rng, 4, 3), randParam(rng, 3)
	tp := NewTape()
	var first []float32
	for step := range 3 {
		tp.Reset()
		w.ZeroGrad()
		y := tp.Mean(tp.RMSNorm(x, w, 1e-6))
		tp.Backward(y, nil)
		if step == 0 {
			first = slices.Clone(w.Grad.Data())
		} else if !slices.Equal(first, w.Grad.Data()) {
			t.Fatalf("step %d: gradient %v, first %v", step, w.Grad.Data(), first)
		}
	}
	if tp.Len() != 2 {
		t.Fatalf("tape holds %d ops, want 2", tp.Len())
	}
}

func TestNoGrad(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	x := randParam(rng, 2, 3)
	tp := NewTape()
	tp.NoGrad = true
	y := tp.Sum(tp.SiLU(x))
	if y.RequiresGrad() || tp.Len() != 0 {
		t.Fatal("NoGrad tape recorded ops")
	}
	c := Const(tensor.New(2, 3))
	tp.NoGrad = false
	if tp.Sum(c).RequiresGrad() {
		t.Fatal("op on a constant requires grad")
	}
}

func TestBackwardSeedShape(t *testing.T) {
	x := Param(tensor.New(2, 3))
	tp := NewTape()
	y := tp.Scale(x, 2)
	for _, seed := range []*tensor.Dense{nil, tensor.New(5)} {
		func() {
			defer func() {
				if _, ok := recover().(*tensor.ShapeError); !ok {
					t.Errorf("seed %v: want a *tensor.ShapeError panic", seed)
				}
			}()
			tp.Backward(y, seed)
		}()
	}
}

func TestCrossEntropyErrors(t *testing.T) {
	logits := Param(tensor.FromSlice([]float32{1, 2, 3, 4, float32(math.NaN()), 6}, 2, 3))
	tp := NewTape()
	for _, tc := range []struct {
		name   string
		labels []int32
		want   string
	}{
		{"count", []int32{0}, "1 labels for 2 rows"},
		{"range", []int32{0, 3}, "labels[1] = 3"},
		{"NaN row", []int32{0, 1}, "row 1: logits hold NaN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tp.CrossEntropy(logits, tc.labels)
			assert.ErrorContains(t, err, tc.want)
			_, err = tp.LogProbs(logits, tc.labels)
			assert.ErrorContains(t, err, tc.want, "LogProbs")
		})
	}
	// log softmax([1 2 3])[2] = −0.4076; the NaN row is ignored.
	v, err := tp.CrossEntropy(logits, []int32{2, -1})
	require.NoError(t, err)
	assert.InDelta(t, 0.40760596444438, v.Value.Data()[0], 1e-6, "ignored NaN row")
}

func TestBackwardTwice(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	x, w := randParam(rng, 3, 4), randParam(rng, 4)
	tp := NewTape()
	y := tp.Sum(tp.SiLU(tp.Reshape(tp.RMSNorm(x, w, 1e-6), 12)))
	tp.Backward(y, nil)
	once := slices.Clone(x.Grad.Data())
	tp.Backward(y, nil)
	for i, g := range x.Grad.Data() {
		assert.InDelta(t, 2*float64(once[i]), float64(g), 1e-6*max(1, math.Abs(2*float64(once[i]))), "grad[%d] after two passes %v, want %v", i, g, 2*once[i])
	}
}

func TestLayerNormNoBias(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	x, w := randParam(rng, 3, 6), randParam(rng, 6)
	f := func(tp *Tape) *Var { return tp.GELU(tp.LayerNorm(x, w, nil, 1e-5)) }
	if err := GradCheckWith(f, []*Var{x, w}, GradCheckOptions{Tol: 2e-3, Seed: 3}); err != nil {
		t.Fatal(err)
	}
}

func TestShapePanics(t *testing.T) {
	p := func(shape ...int) *Var { return Param(tensor.New(shape...)) }
	cos, sin := RoPETables(0, 3, 4, 10000)
	for name, f := range map[string]func(tp *Tape){
		"matmul inner":   func(tp *Tape) { tp.MatMul(p(2, 3), p(4, 5)) },
		"matmul rank":    func(tp *Tape) { tp.MatMulT(p(2, 3, 1), p(4, 3)) },
		"bmm lead":       func(tp *Tape) { tp.BatchMatMul(p(2, 3, 4), p(3, 4, 5), false) },
		"bmm inner":      func(tp *Tape) { tp.BatchMatMul(p(2, 3, 4), p(2, 5, 4), false) },
		"add broadcast":  func(tp *Tape) { tp.Add(p(2, 3), p(2)) },
		"mul":            func(tp *Tape) { tp.Mul(p(2, 3), p(3, 2)) },
		"swiglu":         func(tp *Tape) { tp.SwiGLU(p(2, 3), p(3, 2)) },
		"rmsnorm":        func(tp *Tape) { tp.RMSNorm(p(2, 3), p(2), 1e-6) },
		"layernorm":      func(tp *Tape) { tp.LayerNorm(p(2, 3), p(3), p(2), 1e-6) },
		"reshape":        func(tp *Tape) { tp.Reshape(p(2, 3), 4, 2) },
		"transpose axis": func(tp *Tape) { tp.Transpose(p(2, 3), 0, 2) },
		"permute":        func(tp *Tape) { tp.Permute(p(2, 3, 4), 0, 0, 1) },
		"softmax":        func(tp *Tape) { tp.CausalSoftmax(p(2, 4, 3), 1) },
		"rope tables":    func(tp *Tape) { tp.RoPE(p(2, 4, 4), cos, sin) },
		"rope odd":       func(tp *Tape) { tp.RoPE(p(2, 3, 3), cos, sin) },
		"embedding id":   func(tp *Tape) { tp.Embedding(p(3, 2), []int32{0, 3}) },
	} {
		func() {
			defer func() {
				if _, ok := recover().(*tensor.ShapeError); !ok {
					t.Errorf("%s: want a *tensor.ShapeError panic", name)
				}
			}()
			f(NewTape())
		}()
	}
}

// TestLossShapePanics: logits of the wrong rank are misuse, a
// *tensor.ShapeError panic like every op's; labels stay data errors.
func TestLossShapePanics(t *testing.T) {
	tp := NewTape()
	logits := Param(tensor.New(2, 3, 4))
	for name, f := range map[string]func(){
		"CrossEntropy": func() { _, _ = tp.CrossEntropy(logits, []int32{0, 0}) },
		"LogProbs":     func() { _, _ = tp.LogProbs(logits, []int32{0, 0}) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				err, _ := recover().(error)
				var se *tensor.ShapeError
				require.ErrorAs(t, err, &se)
			}()
			f()
		})
	}
}

// TestArenaShared: passes that take buffers of different sizes in
// different orders share one set of buffers — the arena holds what the
// largest pass needs, not the largest size at every position — which,
// once settled, it reuses without allocating or dropping any.
func TestArenaShared(t *testing.T) {
	tp := NewTape()
	tp.NoGrad = true
	small, big := Const(tensor.New(8, 8)), Const(tensor.New(64, 8))
	x := Const(tensor.New(1, 8))
	pass := func(bigFirst bool) {
		tp.Reset()
		if bigFirst {
			tp.MatMul(tp.MatMulT(x, big), big) // [1,64] then [1,8]
		} else {
			tp.MatMulT(tp.MatMulT(x, small), big) // [1,8] then [1,64]
		}
	}
	total := func() (n int) {
		for _, b := range tp.bufs {
			n += cap(b)
		}
		return n
	}
	for range 4 {
		pass(false)
		pass(true)
	}
	if n := total(); n != 72 || len(tp.bufs) != 2 {
		t.Fatalf("arena holds %d buffers of %d floats in all, want 2 of 72", len(tp.bufs), n)
	}
}

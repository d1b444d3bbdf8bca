package autograd

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/posttrain/posttrain/tensor"
)

// TestMatMulTBF16 checks the frozen bfloat16 product against the float64
// product of a with the weights' widened values, across the row split
// (more than one block of rowBlock rows), and its gradient with respect
// to a against finite differences (on a float64 sum, so the exact
// activations pay off) and against MatMulT on the widened weights.
func TestMatMulTBF16(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const m, k, n = rowBlock + 37, 70, 45
	a := randParam(rng, m, k)
	w16 := randParam(rng, n, k).Value.BF16()
	w := w16.Dense()
	tp := NewTape()
	y := tp.MatMulTBF16(a, w16)
	ad, wd := a.Value.Data(), w.Data()
	for i := range m {
		for j := range n {
			var want, scale float64
			for p := range k {
				x := float64(ad[i*k+p]) * float64(wd[j*k+p])
				want, scale = want+x, scale+math.Abs(x)
			}
			if got := float64(y.Value.Data()[i*n+j]); math.Abs(got-want) > float64(k)*6e-8*scale {
				t.Fatalf("y[%d,%d] = %v, want %v", i, j, got, want)
			}
		}
	}
	// Against the float32 layer on the same values: the same gradient.
	g := randParam(rng, m, n).Value
	tp.Backward(y, g)
	got := a.Grad.Clone()
	a.ZeroGrad()
	tp2 := NewTape()
	tp2.Backward(tp2.MatMulT(a, Const(w)), g)
	for i, v := range a.Grad.Data() {
		if d := math.Abs(float64(got.Data()[i] - v)); d > 1e-5*max(1, math.Abs(float64(v))) {
			t.Fatalf("dA[%d] = %v, MatMulT gives %v", i, got.Data()[i], v)
		}
	}
	small := randParam(rng, 5, 9)
	ws := randParam(rng, 7, 9).Value.BF16()
	f := func(tp *Tape) *Var { return tp.SiLU(tp.MatMulTBF16(small, ws)) }
	if err := GradCheckWith(f, []*Var{small}, GradCheckOptions{Tol: 2e-3, Seed: 5}); err != nil {
		t.Fatal(err)
	}
	// No gradient is asked of a constant input: nothing is recorded.
	tp3 := NewTape()
	if tp3.MatMulTBF16(Const(small.Value), ws).RequiresGrad() || tp3.Len() != 0 {
		t.Fatal("a constant input recorded a node")
	}
	if (*Var)(nil).RequiresGrad() {
		t.Fatal("a nil Var requires a gradient")
	}
	// On a tier that multiplies bfloat16 the product is GemmMixed's.
	for _, tier := range tensor.Tiers() {
		if tier != "avx512bf16" && tier != "amx" {
			continue
		}
		prev, err := tensor.SetTier(tier)
		if err != nil {
			t.Fatal(err)
		}
		got := NewTape().MatMulTBF16(small, ws).Value
		want := tensor.New(5, 7)
		tensor.GemmMixed(false, true, 1, small.Value, ws, 0, want)
		tensor.SetTier(prev)
		if !slices.Equal(got.Data(), want.Data()) {
			t.Fatalf("%s: %v, GemmMixed gives %v", tier, got.Data(), want.Data())
		}
	}
	for name, f := range map[string]func(){
		"inner": func() { NewTape().MatMulTBF16(Param(tensor.New(2, 3)), tensor.NewBF16(4, 5)) },
		"rank":  func() { NewTape().MatMulTBF16(Param(tensor.New(2, 3, 1)), tensor.NewBF16(4, 3)) },
	} {
		func() {
			defer func() {
				if _, ok := recover().(*tensor.ShapeError); !ok {
					t.Errorf("%s: want a *tensor.ShapeError panic", name)
				}
			}()
			f()
		}()
	}
}

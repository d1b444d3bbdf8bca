package mirrordescent

import (
	"encoding/json"
	"math"
	"os"
	"testing"
)

// golden holds values written by testdata/gen_golden.py (numpy bisection,
// direct exponentiated gradient, torch autograd, explicit LOO sums).
type golden struct {
	Project []struct {
		X, Want []float64
	}
	Entropic []struct {
		X, Grad []float64
		Eta     float64
		Want    []float64
	}
	KL []struct {
		P, Q []float64
		Want float64
	}
	Tabular []struct {
		Logp, Adv []float64
		T         float64
		Want      []float64
	}
	Surrogate []struct {
		New, Old, Adv     []float64
		T, Loss, Gain, KL float64
		Grad              []float64
	}
	Token []struct {
		New, Old          []float32
		Lengths           []int
		Adv               []float64
		T, Loss, Gain, KL float64
		Grad              []float64
	}
	MDLOO []struct {
		K                        int
		Beta                     float64
		Scores, Old, Ref, Shaped []float64
		Adv                      []float64
	}
}

func loadGolden(t *testing.T) golden {
	t.Helper()
	b, err := os.ReadFile("testdata/golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

func near(a, b, tol float64) bool {
	return math.Abs(a-b) <= tol*(1+math.Abs(b))
}

func checkSlice(t *testing.T, what string, got, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: len %d, want %d", what, len(got), len(want))
	}
	for i := range got {
		if !near(got[i], want[i], tol) {
			t.Errorf("%s[%d] = %.15g, want %.15g", what, i, got[i], want[i])
		}
	}
}

func TestGoldenProjectSimplex(t *testing.T) {
	for ci, c := range loadGolden(t).Project {
		x := append([]float64(nil), c.X...)
		ProjectSimplex(x)
		checkSlice(t, "ProjectSimplex case "+itoa(ci), x, c.Want, 1e-12)
		x32 := make([]float32, len(c.X))
		for i, v := range c.X {
			x32[i] = float32(v)
		}
		ProjectSimplex32(x32)
		checkSlice(t, "ProjectSimplex32 case "+itoa(ci), to64(x32), c.Want, 1e-5)
	}
}

func TestGoldenEntropicStep(t *testing.T) {
	for ci, c := range loadGolden(t).Entropic {
		x := append([]float64(nil), c.X...)
		if err := EntropicStep(x, c.Grad, c.Eta); err != nil {
			t.Fatal(err)
		}
		checkSlice(t, "EntropicStep case "+itoa(ci), x, c.Want, 1e-13)
		x32, g32 := to32(c.X), to32(c.Grad)
		if err := EntropicStep32(x32, g32, c.Eta); err != nil {
			t.Fatal(err)
		}
		checkSlice(t, "EntropicStep32 case "+itoa(ci), to64(x32), c.Want, 1e-5)
	}
}

func TestGoldenKL(t *testing.T) {
	for ci, c := range loadGolden(t).KL {
		got, err := KL(c.P, c.Q)
		if err != nil {
			t.Fatal(err)
		}
		if !near(got, c.Want, 1e-13) {
			t.Errorf("KL case %d = %.15g, want %.15g", ci, got, c.Want)
		}
		d, _ := NegEntropy{}.Divergence(c.P, c.Q)
		if d != got {
			t.Errorf("NegEntropy.Divergence = %v, KL = %v", d, got)
		}
	}
}

func TestGoldenTabularMDPO(t *testing.T) {
	for ci, c := range loadGolden(t).Tabular {
		lp := append([]float64(nil), c.Logp...)
		if err := TabularMDPO(lp, c.Adv, c.T); err != nil {
			t.Fatal(err)
		}
		checkSlice(t, "TabularMDPO case "+itoa(ci), lp, c.Want, 1e-12)
		lp32 := to32(c.Logp)
		if err := TabularMDPO32(lp32, to32(c.Adv), c.T); err != nil {
			t.Fatal(err)
		}
		checkSlice(t, "TabularMDPO32 case "+itoa(ci), to64(lp32), c.Want, 1e-5)
	}
}

// The KL term is compared at 1e-9: the torch script evaluates
// ρ·log ρ − ρ + 1 directly, which cancels near ρ = 1, while the Go code
// uses expm1; loss and gradient do not suffer from it.
func TestGoldenSurrogate(t *testing.T) {
	for ci, c := range loadGolden(t).Surrogate {
		grad := make([]float64, len(c.New))
		r, err := Surrogate(grad, c.New, c.Old, c.Adv, c.T)
		if err != nil {
			t.Fatal(err)
		}
		if !near(r.Loss, c.Loss, 1e-12) || !near(r.Gain, c.Gain, 1e-12) || !near(r.KL, c.KL, 1e-9) {
			t.Errorf("case %d: loss %.15g gain %.15g KL %.15g, want %.15g %.15g %.15g", ci, r.Loss, r.Gain, r.KL, c.Loss, c.Gain, c.KL)
		}
		checkSlice(t, "Surrogate grad case "+itoa(ci), grad, c.Grad, 1e-12)
	}
}

func TestGoldenTokenSurrogate(t *testing.T) {
	for ci, c := range loadGolden(t).Token {
		grad := make([]float32, len(c.New))
		r, err := TokenSurrogate(grad, c.New, c.Old, c.Lengths, c.Adv, c.T)
		if err != nil {
			t.Fatal(err)
		}
		if !near(r.Loss, c.Loss, 1e-12) || !near(r.Gain, c.Gain, 1e-12) || !near(r.KL, c.KL, 1e-9) {
			t.Errorf("case %d: loss %.15g gain %.15g KL %.15g, want %.15g %.15g %.15g", ci, r.Loss, r.Gain, r.KL, c.Loss, c.Gain, c.KL)
		}
		checkSlice(t, "TokenSurrogate grad case "+itoa(ci), to64(grad), c.Grad, 1e-6)
	}
}

func TestGoldenMDLOOAdvantages(t *testing.T) {
	for ci, c := range loadGolden(t).MDLOO {
		o := DefaultMDLOO()
		o.K, o.Beta = c.K, c.Beta
		adv, shaped, err := o.Advantages(c.Scores, c.Old, c.Ref)
		if err != nil {
			t.Fatal(err)
		}
		checkSlice(t, "shaped case "+itoa(ci), shaped, c.Shaped, 1e-13)
		checkSlice(t, "adv case "+itoa(ci), adv, c.Adv, 1e-12)
	}
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}

func to32(x []float64) []float32 {
	y := make([]float32, len(x))
	for i, v := range x {
		y[i] = float32(v)
	}
	return y
}

func to64(x []float32) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = float64(v)
	}
	return y
}

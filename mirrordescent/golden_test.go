package mirrordescent

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// golden holds values written by testdata/gen_golden.py (numpy bisection,
// direct exponentiated gradient, torch autograd, explicit LOO sums).
type golden struct {
	Project []struct {
		Name    string
		X, Want []float64
	}
	Entropic []struct {
		Name    string
		X, Grad []float64
		Eta     float64
		Want    []float64
	}
	KL []struct {
		Name string
		P, Q []float64
		Want float64
	}
	Tabular []struct {
		Name      string
		Logp, Adv []float64
		T         float64
		Want      []float64
	}
	Surrogate []struct {
		Name              string
		New, Old, Adv     []float64
		T, Loss, Gain, KL float64
		Grad              []float64
	}
	Token []struct {
		Name              string
		New, Old          []float32
		Lengths           []int
		Adv               []float64
		T, Loss, Gain, KL float64
		Grad              []float64
	}
	MDLOO []struct {
		Name                     string
		K                        int
		Beta                     float64
		Scores, Old, Ref, Shaped []float64
		Adv                      []float64
	}
}

func loadGolden(t *testing.T) golden {
	t.Helper()
	b, err := os.ReadFile("testdata/golden.json")
	require.NoError(t, err)
	var g golden
	require.NoError(t, json.Unmarshal(b, &g))
	return g
}

// Tolerances are absolute: every golden value is below 50 in magnitude,
// where float64's spacing is 7e-15 and float32's 4e-6.

func TestGoldenProjectSimplex(t *testing.T) {
	for _, c := range loadGolden(t).Project {
		t.Run(c.Name, func(t *testing.T) {
			x := append([]float64(nil), c.X...)
			ProjectSimplex(x)
			assert.InDeltaSlice(t, c.Want, x, 1e-12, "ProjectSimplex")
			y := make([]float64, len(c.X))
			require.NoError(t, ProjectSimplexTo(y, c.X))
			assert.Equal(t, x, y, "ProjectSimplexTo")
			x32 := to32(c.X)
			ProjectSimplex32(x32)
			assert.InDeltaSlice(t, c.Want, to64(x32), 1e-5, "ProjectSimplex32")
			y32 := make([]float32, len(c.X))
			require.NoError(t, ProjectSimplex32To(y32, to32(c.X)))
			assert.Equal(t, x32, y32, "ProjectSimplex32To")
		})
	}
}

func TestGoldenEntropicStep(t *testing.T) {
	for _, c := range loadGolden(t).Entropic {
		t.Run(c.Name, func(t *testing.T) {
			x := append([]float64(nil), c.X...)
			require.NoError(t, EntropicStep(x, c.Grad, c.Eta))
			assert.InDeltaSlice(t, c.Want, x, 1e-13, "EntropicStep")
			x32, g32 := to32(c.X), to32(c.Grad)
			require.NoError(t, EntropicStep32(x32, g32, c.Eta))
			assert.InDeltaSlice(t, c.Want, to64(x32), 1e-5, "EntropicStep32")
		})
	}
}

func TestGoldenKLDivergence(t *testing.T) {
	for _, c := range loadGolden(t).KL {
		t.Run(c.Name, func(t *testing.T) {
			got, err := KLDivergence(c.P, c.Q)
			require.NoError(t, err)
			assert.InDelta(t, c.Want, got, 1e-13)
			d, err := NegEntropy{}.Divergence(c.P, c.Q)
			require.NoError(t, err)
			assert.Equal(t, got, d, "NegEntropy.Divergence")
			old, err := KL(c.P, c.Q)
			require.NoError(t, err)
			assert.Equal(t, got, old, "deprecated KL")
		})
	}
}

func TestGoldenTabularMDPO(t *testing.T) {
	for _, c := range loadGolden(t).Tabular {
		t.Run(c.Name, func(t *testing.T) {
			lp := append([]float64(nil), c.Logp...)
			require.NoError(t, TabularMDPO(lp, c.Adv, c.T))
			assert.InDeltaSlice(t, c.Want, lp, 1e-12, "TabularMDPO")
			lp32 := to32(c.Logp)
			require.NoError(t, TabularMDPO32(lp32, to32(c.Adv), c.T))
			assert.InDeltaSlice(t, c.Want, to64(lp32), 1e-5, "TabularMDPO32")
		})
	}
}

// The KL term is compared at 1e-9: the torch script evaluates
// ρ·log ρ − ρ + 1 directly, which cancels near ρ = 1, while the Go code
// uses expm1; loss and gradient do not suffer from it.
func TestGoldenSurrogate(t *testing.T) {
	for _, c := range loadGolden(t).Surrogate {
		t.Run(c.Name, func(t *testing.T) {
			grad := make([]float64, len(c.New))
			r, err := Surrogate(grad, c.New, c.Old, c.Adv, c.T)
			require.NoError(t, err)
			assert.InDelta(t, c.Loss, r.Loss, 1e-12, "loss")
			assert.InDelta(t, c.Gain, r.Gain, 1e-12, "gain")
			assert.InDelta(t, c.KL, r.KL, 1e-9, "KL")
			assert.InDeltaSlice(t, c.Grad, grad, 1e-12, "grad")
		})
	}
}

func TestGoldenTokenSurrogate(t *testing.T) {
	for _, c := range loadGolden(t).Token {
		t.Run(c.Name, func(t *testing.T) {
			grad := make([]float32, len(c.New))
			r, err := TokenSurrogate(grad, c.New, c.Old, c.Lengths, c.Adv, c.T)
			require.NoError(t, err)
			assert.InDelta(t, c.Loss, r.Loss, 1e-12, "loss")
			assert.InDelta(t, c.Gain, r.Gain, 1e-12, "gain")
			assert.InDelta(t, c.KL, r.KL, 1e-9, "KL")
			assert.InDeltaSlice(t, c.Grad, to64(grad), 1e-6, "grad")
		})
	}
}

func TestGoldenMDLOOAdvantages(t *testing.T) {
	for _, c := range loadGolden(t).MDLOO {
		t.Run(c.Name, func(t *testing.T) {
			o := DefaultMDLOO()
			o.K, o.Beta = c.K, c.Beta
			adv, shaped, err := o.Advantages(c.Scores, c.Old, c.Ref)
			require.NoError(t, err)
			assert.InDeltaSlice(t, c.Shaped, shaped, 1e-13, "shaped")
			assert.InDeltaSlice(t, c.Adv, adv, 1e-12, "adv")
		})
	}
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

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

// cube is L = Σ wᵢ·xᵢ³ at x = 0, whose central difference with step h is
// wᵢ·h² where the analytic gradient is 0: a check with a large step must
// fail, one with a small step must pass.
func cube() (func(t *Tape) *Var, *Var) {
	x := Param(tensor.New(8))
	return func(t *Tape) *Var { return t.Mul(t.Mul(x, x), x) }, x
}

// Eps and Tol reach the check as named: the swap that positional
// arguments allow silently (a step of 0.5 checked to 1e-3, where 1e-3
// checked to 0.5 was meant) fails, and the right way round passes.
func TestGradCheckWithSettings(t *testing.T) {
	f, x := cube()
	err := GradCheckWith(f, []*Var{x}, GradCheckOptions{Eps: 0.5, Tol: 1e-3, Seed: 2})
	require.Error(t, err, "step 0.5: truncation error 0.25·|w| must exceed 1e-3")
	assert.ErrorContains(t, err, "autograd: GradCheckWith: error")
	assert.ErrorContains(t, err, "input 0 element")
	assert.NoError(t, GradCheckWith(f, []*Var{x}, GradCheckOptions{Eps: 1e-3, Tol: 0.5, Seed: 2}))
	// The zero value: steps of 1e-2 (a truncation error of 1e-4·|w|)
	// checked to 1e-2.
	assert.NoError(t, GradCheckWith(f, []*Var{x}, GradCheckOptions{}))
	f2 := func(t *Tape) *Var { return t.Sum(t.Mul(x, x)) }
	assert.NoError(t, GradCheckWith(f2, []*Var{x}, GradCheckOptions{Tol: 1e-6}), "a quadratic's central difference is exact")
}

// GradCheck and GradCheckWith with the same settings compute the same
// gradients and the same verdict.
func TestGradCheckPositional(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	x, w := randParam(rng, 3, 6), randParam(rng, 6)
	f := func(tp *Tape) *Var { return tp.GELU(tp.LayerNorm(x, w, nil, 1e-5)) }
	require.NoError(t, GradCheck(f, []*Var{x, w}, 1e-2, 2e-3, 3))
	gx, gw := slices.Clone(x.Grad.Data()), slices.Clone(w.Grad.Data())
	require.NoError(t, GradCheckWith(f, []*Var{x, w}, GradCheckOptions{Eps: 1e-2, Tol: 2e-3, Seed: 3}))
	assert.Equal(t, gx, x.Grad.Data(), "same seed, same weights, same analytic gradient")
	assert.Equal(t, gw, w.Grad.Data())

	fc, xc := cube()
	assert.ErrorContains(t, GradCheck(fc, []*Var{xc}, 0.5, 1e-3, 2), "autograd: GradCheck: error")
}

// Bad settings are errors naming the setting, with the inputs' values and
// gradients untouched.
func TestGradCheckBadSettings(t *testing.T) {
	f, x := cube()
	x.Value.Data()[3] = 0.5
	x.Grad.Data()[5] = 7
	val, grad := slices.Clone(x.Value.Data()), slices.Clone(x.Grad.Data())
	for _, c := range []struct {
		name string
		err  error
		want string
	}{
		{"Eps negative", GradCheckWith(f, []*Var{x}, GradCheckOptions{Eps: -1e-2}), "GradCheckOptions.Eps = -0.01"},
		{"Eps NaN", GradCheckWith(f, []*Var{x}, GradCheckOptions{Eps: math.NaN()}), "GradCheckOptions.Eps = NaN"},
		{"Tol +Inf", GradCheckWith(f, []*Var{x}, GradCheckOptions{Tol: math.Inf(1)}), "GradCheckOptions.Tol = +Inf"},
		{"eps 0", GradCheck(f, []*Var{x}, 0, 1e-3, 1), "GradCheck: eps = 0, need finite and > 0"},
		{"tol negative", GradCheck(f, []*Var{x}, 1e-2, -1, 1), "GradCheck: tol = -1"},
		{"not a Param", GradCheckWith(f, []*Var{x, {Value: tensor.New(2)}}, GradCheckOptions{}), "inputs[1] is not made by Param"},
	} {
		t.Run(c.name, func(t *testing.T) {
			assert.ErrorContains(t, c.err, c.want)
			assert.Equal(t, val, x.Value.Data(), "values")
			assert.Equal(t, grad, x.Grad.Data(), "gradients")
		})
	}
}

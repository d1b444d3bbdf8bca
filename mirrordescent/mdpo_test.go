package mirrordescent

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSurrogateFiniteDifference checks dL/dnewLP of the sequence-level
// surrogate against central differences in float64, far from and near
// θ = θ_k.
func TestSurrogateFiniteDifference(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, spread := range []float64{0, 0.05, 1, 3} {
		for _, tk := range []float64{0.1, 1, 7} {
			const n = 9
			old, nw, adv := make([]float64, n), make([]float64, n), make([]float64, n)
			for i := range old {
				old[i] = -30 * rng.Float64()
				nw[i] = old[i] + spread*rng.NormFloat64()
				adv[i] = rng.NormFloat64()
			}
			grad := make([]float64, n)
			_, err := Surrogate(grad, nw, old, adv, tk)
			require.NoError(t, err)
			loss := func(x []float64) float64 {
				r, err := Surrogate(nil, x, old, adv, tk)
				require.NoError(t, err)
				return r.Loss
			}
			checkFD(t, "Surrogate", nw, grad, loss)
		}
	}
}

// TestTokenSurrogateFiniteDifference checks the token-level gradient in
// float64 (the generic implementation instantiated at float64) and that
// the float32 entry point agrees with it.
func TestTokenSurrogateFiniteDifference(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	lengths := []int{4, 0, 1, 7, 3}
	n := 15
	old, nw := make([]float64, n), make([]float64, n)
	for i := range old {
		old[i] = -3 * rng.Float64()
		nw[i] = old[i] + 0.5*rng.NormFloat64()
	}
	adv := []float64{0.5, -1, 2, -0.25, 0.1}
	const tk = 0.6
	grad := make([]float64, n)
	want, err := surrogate("test", grad, nw, old, lengths, adv, tk)
	require.NoError(t, err)
	checkFD(t, "token surrogate", nw, grad, func(x []float64) float64 {
		r, err := surrogate("test", nil, x, old, lengths, adv, tk)
		require.NoError(t, err)
		return r.Loss
	})
	g32 := make([]float32, n)
	// Round the inputs to float32 first so both see the same numbers.
	nw32, old32 := to32(nw), to32(old)
	want, _ = surrogate("test", grad, to64(nw32), to64(old32), lengths, adv, tk)
	got, err := TokenSurrogate(g32, nw32, old32, lengths, adv, tk)
	require.NoError(t, err)
	assert.Equal(t, want, got, "TokenSurrogate against the float64 core")
	assert.InDeltaSlice(t, grad, to64(g32), 1e-6, "float32 token grad")
}

// TestTokenEqualsSequenceForSingleTokens: with one token per sequence
// the two surrogates are the same function.
func TestTokenEqualsSequenceForSingleTokens(t *testing.T) {
	nw := []float64{-1, -2.5, -0.25}
	old := []float64{-1.5, -2, -0.5}
	adv := []float64{1, -0.5, -0.5}
	gs := make([]float64, 3)
	rs, err := Surrogate(gs, nw, old, adv, 0.5)
	require.NoError(t, err)
	gt := make([]float32, 3)
	rt, err := TokenSurrogate(gt, to32(nw), to32(old), []int{1, 1, 1}, adv, 0.5)
	require.NoError(t, err)
	assert.InDelta(t, rs.Loss, rt.Loss, 1e-15, "sequence loss against token loss")
	assert.InDeltaSlice(t, gs, to64(gt), 1e-7, "grads")
}

func checkFD(t *testing.T, what string, x, grad []float64, loss func([]float64) float64) {
	t.Helper()
	const h = 1e-6
	for i := range x {
		xp := slices.Clone(x)
		xm := slices.Clone(x)
		xp[i] += h
		xm[i] -= h
		fd := (loss(xp) - loss(xm)) / (2 * h)
		if math.Abs(fd-grad[i]) > 1e-6*(1+math.Abs(fd)) {
			t.Errorf("%s: grad[%d] = %.10g, finite difference %.10g", what, i, grad[i], fd)
		}
	}
}

// TestSurrogateStress: log-prob gaps of 1e3 are either finite and right
// (π_θ ≪ π_k: ρ = 0, the KL term is 1 per sample) or refused by name.
func TestSurrogateStress(t *testing.T) {
	old := []float64{-1e3, -5, -2e3}
	nw := []float64{-2e3, -5, -3e3}
	adv := []float64{1, 0, -1}
	grad := make([]float64, 3)
	r, err := Surrogate(grad, nw, old, adv, 0.5)
	require.NoError(t, err)
	// ρ = (0, 1, 0): gain 0, KL mean (1, 0, 1) = 2/3, loss 2/3 / 0.5.
	assert.InDelta(t, 4.0/3, r.Loss, 1e-15, "loss")
	assert.Zero(t, r.Gain, "gain")
	assert.Equal(t, 1e3, r.MaxLogRatio, "max log-ratio")
	assert.Equal(t, []float64{0, 0, 0}, grad)
	_, err = Surrogate(grad, []float64{-1, -5, -1}, []float64{-1001, -5, -1}, adv, 0.5)
	assert.ErrorContains(t, err, "newLP[0]", "log-ratio 1e3")
}

func TestSurrogateErrors(t *testing.T) {
	nan := math.NaN()
	ok3 := []float64{-1, -2, -3}
	cases := []struct {
		name         string
		nw, old, adv []float64
		tk           float64
		want         string
	}{
		{"len old", ok3, ok3[:2], ok3, 1, "len(oldLP)"},
		{"len adv", ok3, ok3, ok3[:1], 1, "len(adv)"},
		{"t zero", ok3, ok3, ok3, 0, "step size"},
		{"t NaN", ok3, ok3, ok3, nan, "step size"},
		{"empty", nil, nil, nil, 1, "empty"},
		{"NaN new", []float64{-1, nan, -3}, ok3, ok3, 1, "newLP[1]"},
		{"Inf old", ok3, []float64{-1, -2, math.Inf(-1)}, ok3, 1, "oldLP[2]"},
		{"NaN adv", ok3, ok3, []float64{nan, 0, 0}, 1, "adv[0]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			grad := []float64{7, 7, 7}[:len(c.nw)]
			_, err := Surrogate(grad, c.nw, c.old, c.adv, c.tk)
			assert.ErrorContains(t, err, c.want)
			assert.Equal(t, []float64{7, 7, 7}[:len(c.nw)], grad, "grad written on error")
		})
	}
	_, err := TokenSurrogate(nil, []float32{-1, -1}, []float32{-1, -1}, []int{1, 2}, []float64{0, 0}, 1)
	assert.ErrorContains(t, err, "lengths sum", "bad lengths")
	_, err = TokenSurrogate(nil, []float32{-1, float32(nan)}, []float32{-1, -1}, []int{1, 1}, []float64{0, 0}, 1)
	assert.ErrorContains(t, err, "token 0 of sequence 1", "NaN token")
}

func TestSimplexStepErrors(t *testing.T) {
	x := []float64{0.5, 0.5}
	for _, c := range []struct {
		name string
		x, g []float64
		eta  float64
		want string
	}{
		{"len", x, []float64{1}, 1, "len(grad)"},
		{"eta", x, []float64{1, 1}, -1, "step size"},
		{"neg x", []float64{-0.1, 1.1}, []float64{1, 1}, 1, "x[0]"},
		{"zero x", []float64{0, 0}, []float64{1, 1}, 1, "sums to"},
		{"NaN g", x, []float64{1, math.NaN()}, 1, "grad[1]"},
		{"empty", nil, nil, 1, "empty"},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, m := range []Mirror{NegEntropy{}, Euclidean{}} {
				in := slices.Clone(c.x)
				err := m.Step(in, c.g, c.eta)
				assert.ErrorContains(t, err, c.want, "%T", m)
				assert.Equal(t, c.x, in, "%T: x changed on error", m)
			}
			in := to32(c.x)
			assert.ErrorContains(t, EntropicStep32(in, to32(c.g), c.eta), c.want, "EntropicStep32")
		})
	}
}

// TestEntropicStepHugeGradients: gradients far beyond exp's range keep x
// on the simplex and give the limit (mass on the smallest gradient).
func TestEntropicStepHugeGradients(t *testing.T) {
	for _, g := range [][]float64{
		{1e300, -1e300, 0},
		{1e4, 1e4 + 1, 1e4 + 2},
		{-1e308, 1e308, -1e308},
	} {
		x := []float64{0.2, 0.3, 0.5}
		require.NoError(t, EntropicStep(x, g, 10))
		onSimplex(t, x)
		// In float32 these gradients are ±Inf (refused by name) or 1e4-sized.
		x32 := []float32{0.2, 0.3, 0.5}
		err := EntropicStep32(x32, to32(g), 10)
		if math.IsInf(float64(float32(g[0])), 0) {
			assert.ErrorContains(t, err, "grad[0]", "float32 gradient %v", float32(g[0]))
			continue
		}
		require.NoError(t, err)
		onSimplex32(t, x32)
	}
	x := []float64{0.2, 0.3, 0.5}
	_ = EntropicStep(x, []float64{-1e308, 1e308, -1e308}, 10)
	assert.InDeltaSlice(t, []float64{0.2 / 0.7, 0, 0.5 / 0.7}, x, 1e-15, "limit")
	x = []float64{0.25, 0.25, 0.5}
	_ = EntropicStep(x, []float64{1e4, 1e4 + 1, 1e4}, 1)
	z := 0.75 + 0.25/math.E
	assert.InDeltaSlice(t, []float64{0.25 / z, 0.25 / math.E / z, 0.5 / z}, x, 1e-14, "offset 1e4")
	x32 := []float32{0.25, 0.25, 0.5}
	_ = EntropicStep32(x32, []float32{1e6, 1e6 + 1, 1e6}, 1)
	assert.InDeltaSlice(t, []float64{0.25 / z, 0.25 / math.E / z, 0.5 / z}, to64(x32), 1e-6, "float32 offset 1e6")
}

func onSimplex32(t *testing.T, x []float32) {
	t.Helper()
	var s float64
	for i, v := range x {
		if !(v >= 0) {
			t.Fatalf("x[%d] = %v", i, v)
		}
		s += float64(v)
	}
	if math.Abs(s-1) > 1e-6 {
		t.Fatalf("x sums to %v", s)
	}
}

func onSimplex(t *testing.T, x []float64) {
	t.Helper()
	var s float64
	for i, v := range x {
		if !(v >= 0) {
			t.Fatalf("x[%d] = %v", i, v)
		}
		s += v
	}
	if math.Abs(s-1) > 1e-12 {
		t.Fatalf("x sums to %v", s)
	}
}

// TestProjectSimplexProperties: the result is on the simplex, it is the
// identity there, and it satisfies the optimality condition ⟨x − P(x),
// y − P(x)⟩ ≤ 0 for vertices y.
func TestProjectSimplexProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{1, 2, 3, 10, 100, 1000} {
		x := make([]float64, n)
		for i := range x {
			x[i] = 10 * rng.NormFloat64()
		}
		p := slices.Clone(x)
		ProjectSimplex(p)
		onSimplex(t, p)
		for j := range n {
			var ip float64
			for i := range x {
				y := 0.0
				if i == j {
					y = 1
				}
				ip += (x[i] - p[i]) * (y - p[i])
			}
			if ip > 1e-9 {
				t.Fatalf("n=%d: optimality violated at vertex %d: %v", n, j, ip)
			}
		}
		q := slices.Clone(p)
		ProjectSimplex(q)
		assert.InDeltaSlice(t, p, q, 1e-14, "idempotent")
	}
	x := []float64{1e308, -1e308, 1e308}
	ProjectSimplex(x)
	assert.Equal(t, []float64{0.5, 0, 0.5}, x, "extreme")
	x = []float64{1, math.NaN()}
	ProjectSimplex(x)
	assert.True(t, math.IsNaN(x[0]) && math.IsNaN(x[1]), "NaN input gave %v, want all NaN", x)
	ProjectSimplex(nil)
}

// TestVocabAgreesWithFloat64: on a 50k-entry "vocabulary" the float32
// variants match the float64 ones.
func TestVocabAgreesWithFloat64(t *testing.T) {
	const v = 50000
	rng := rand.New(rand.NewPCG(8, 9))
	x, g := make([]float64, v), make([]float64, v)
	for i := range x {
		x[i] = math.Exp(3 * rng.NormFloat64())
		g[i] = 2 * rng.NormFloat64()
	}
	x[17] = 0
	normalize(x)
	x32, g32 := to32(x), to32(g)
	x = to64(x32) // same starting point
	normalize(x)
	require.NoError(t, EntropicStep(x, g, 0.7))
	require.NoError(t, EntropicStep32(x32, g32, 0.7))
	if x32[17] != 0 {
		t.Errorf("zero entry became %v", x32[17])
	}
	var l1 float64
	for i := range x {
		l1 += math.Abs(x[i] - float64(x32[i]))
	}
	if l1 > 1e-5 {
		t.Errorf("EntropicStep32 differs from EntropicStep by %v in ℓ1", l1)
	}

	lp := make([]float64, v)
	for i := range lp {
		lp[i] = -10 * rng.Float64()
	}
	lp32 := to32(lp)
	lp = to64(lp32)
	require.NoError(t, TabularMDPO(lp, g, 0.5))
	require.NoError(t, TabularMDPO32(lp32, g32, 0.5))
	for i := range lp {
		if math.Abs(lp[i]-float64(lp32[i])) > 1e-4 {
			t.Fatalf("TabularMDPO32[%d] = %v, float64 %v", i, lp32[i], lp[i])
		}
	}

	p := make([]float64, v)
	for i := range p {
		p[i] = 0.001 * rng.NormFloat64()
	}
	p32 := to32(p)
	p = to64(p32)
	ProjectSimplex(p)
	ProjectSimplex32(p32)
	for i := range p {
		if math.Abs(p[i]-float64(p32[i])) > 1e-7 {
			t.Fatalf("ProjectSimplex32[%d] = %v, float64 %v", i, p32[i], p[i])
		}
	}
}

func TestTabularMDPOErrors(t *testing.T) {
	for _, c := range []struct {
		name      string
		logp, adv []float64
		tk        float64
		want      string
	}{
		{"len", []float64{0, 0}, []float64{1}, 1, "len(adv)"},
		{"NaN", []float64{0, math.NaN()}, []float64{1, 1}, 1, "logp[1]"},
		{"all -Inf", []float64{math.Inf(-1)}, []float64{1}, 1, "every logp"},
		{"adv", []float64{0, 0}, []float64{1, math.Inf(1)}, 1, "adv[1]"},
		{"t", []float64{0, 0}, []float64{1, 1}, math.Inf(1), "step size"},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := slices.Clone(c.logp)
			err := TabularMDPO(in, c.adv, c.tk)
			assert.ErrorContains(t, err, c.want)
			assert.True(t, bitsEqual(in, c.logp), "logp changed on error: %v", in)
			in32 := to32(c.logp)
			assert.ErrorContains(t, TabularMDPO32(in32, to32(c.adv), c.tk), c.want, "TabularMDPO32")
			assert.True(t, bitsEqual(in32, to32(c.logp)), "TabularMDPO32 changed logp on error: %v", in32)
		})
	}
	// Impossible actions stay impossible; large advantages do not overflow.
	lp := []float64{math.Inf(-1), 0, 0}
	require.NoError(t, TabularMDPO(lp, []float64{1e300, 1e300, -1e300}, 10))
	if !math.IsInf(lp[0], -1) || lp[1] != 0 || lp[2] > -1e300 {
		t.Errorf("impossible action / huge advantages: logp = %v, want [-Inf 0 ≤-1e300]", lp)
	}
}

// bitsEqual reports whether a and b hold the same values, a NaN matching
// a NaN (slices.Equal says NaN ≠ NaN).
func bitsEqual[F float32 | float64](a, b []F) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] && (a[i] == a[i] || b[i] == b[i]) {
			return false
		}
	}
	return true
}

func TestSchedules(t *testing.T) {
	l := Linear(4)
	for k, want := range map[int]float64{0: 1, 1: 1, 2: 0.75, 3: 0.5, 4: 0.25, 9: 0.25} {
		if got := l(k); got != want {
			t.Errorf("Linear(4)(%d) = %v, want %v", k, got, want)
		}
	}
	if got := InvSqrt(2)(4); got != 1 {
		t.Errorf("InvSqrt(2)(4) = %v", got)
	}
	if got := Constant(0.3)(100); got != 0.3 {
		t.Errorf("Constant(0.3)(100) = %v", got)
	}
}

func TestMirrorPotentials(t *testing.T) {
	// Bregman divergence from the potential: D(y,x) = ψ(y) − ψ(x) − ⟨∇ψ(x), y − x⟩.
	y := []float64{0.1, 0.6, 0.3}
	x := []float64{0.3, 0.3, 0.4}
	for _, c := range []struct {
		m    Mirror
		grad func(float64) float64
	}{
		{NegEntropy{}, func(v float64) float64 { return math.Log(v) + 1 }},
		{Euclidean{}, func(v float64) float64 { return v }},
	} {
		py, _ := c.m.Potential(y)
		px, _ := c.m.Potential(x)
		want := py - px
		for i := range x {
			want -= c.grad(x[i]) * (y[i] - x[i])
		}
		got, err := c.m.Divergence(y, x)
		require.NoError(t, err)
		assert.InDelta(t, want, got, 1e-14, "%T: divergence against the one from the potential", c.m)
	}
	_, err := KLDivergence([]float64{1}, []float64{1, 0})
	assert.ErrorContains(t, err, "len(q)", "length mismatch")
	d, err := KLDivergence([]float64{0.5, 0.5}, []float64{1, 0})
	require.NoError(t, err)
	assert.True(t, math.IsInf(d, 1), "KLDivergence with q = 0 < p: %v, want +Inf", d)
}

func TestMDPOCancelAndErrors(t *testing.T) {
	pol := &softmaxPolicy{theta: []float64{0, 0}, actions: []int{0, 1}, lr: 1}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := MDPO(ctx, pol, []float64{-0.7, -0.7}, []float64{1, -1}, 1, 3); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err = %v", err)
	}
	if _, err := MDPO(t.Context(), pol, []float64{-0.7, -0.7}, []float64{1, -1}, 1, 0); err == nil {
		t.Error("m = 0: no error")
	}
}

// TestProjectSimplexTo: the checked forms name bad input and leave dst
// untouched; the result equals the in-place form's, aliasing allowed.
func TestProjectSimplexTo(t *testing.T) {
	for _, c := range []struct {
		name    string
		dst, x  []float64
		wantErr string
	}{
		{"len", make([]float64, 2), []float64{1, 2, 3}, "len(dst) = 2 but len(x) = 3"},
		{"empty", nil, nil, "empty x"},
		{"NaN", make([]float64, 3), []float64{1, math.NaN(), 3}, "x[1] = NaN"},
		{"Inf", make([]float64, 3), []float64{1, 2, math.Inf(-1)}, "x[2] = -Inf"},
	} {
		t.Run(c.name, func(t *testing.T) {
			for i := range c.dst {
				c.dst[i] = 7
			}
			assert.ErrorContains(t, ProjectSimplexTo(c.dst, c.x), c.wantErr)
			for _, v := range c.dst {
				require.Equal(t, 7.0, v, "dst written on error")
			}
			d32 := to32(c.dst)
			assert.ErrorContains(t, ProjectSimplex32To(d32, to32(c.x)), c.wantErr, "float32")
			for _, v := range d32 {
				require.Equal(t, float32(7), v, "float32 dst written on error")
			}
		})
	}
	x := []float64{0.6, 0.8, -0.2}
	want := slices.Clone(x)
	ProjectSimplex(want)
	require.NoError(t, ProjectSimplexTo(x, x))
	assert.Equal(t, want, x, "aliased dst")
}

// TestEuclideanStepOverflow: x − η·g overflowing is an error, not a NaN
// fill from the projection.
func TestEuclideanStepOverflow(t *testing.T) {
	x := []float64{0.5, 0.5}
	err := Euclidean{}.Step(x, []float64{-1e308, 0}, 1e10)
	assert.ErrorContains(t, err, "overflows")
	assert.Equal(t, []float64{0.5, 0.5}, x)
}

// ctxPolicy records the context each call of the Policy receives.
type ctxPolicy struct {
	softmaxPolicy
	seen []context.Context
}

func (p *ctxPolicy) LogProbs(ctx context.Context, dst []float64) error {
	p.seen = append(p.seen, ctx)
	return p.softmaxPolicy.LogProbs(ctx, dst)
}

func (p *ctxPolicy) Step(ctx context.Context, grad []float64) error {
	p.seen = append(p.seen, ctx)
	if len(p.seen) == 4 { // the second Step: cancel mid-run, as a model's forward pass would notice
		return fmt.Errorf("forward pass: %w", context.Canceled)
	}
	return p.softmaxPolicy.Step(ctx, grad)
}

// TestMDPOPassesContext: MDPO hands its context to the model's calls and
// an error they return on cancellation stays visible to errors.Is.
func TestMDPOPassesContext(t *testing.T) {
	type key struct{}
	ctx := context.WithValue(t.Context(), key{}, "run")
	pol := &ctxPolicy{softmaxPolicy: softmaxPolicy{theta: []float64{0, 0}, actions: []int{0, 1}, lr: 1}}
	res, err := MDPO(ctx, pol, []float64{-0.7, -0.7}, []float64{1, -1}, 1, 3)
	require.ErrorIs(t, err, context.Canceled)
	assert.Len(t, res, 1, "results of the steps taken")
	require.Len(t, pol.seen, 4)
	for i, c := range pol.seen {
		assert.Equal(t, "run", c.Value(key{}), "call %d got another context", i)
	}
}

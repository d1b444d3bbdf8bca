package prefopt

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestGRPOGroups(t *testing.T) {
	r := []float64{1, 2, 3, 5, 5, 5}
	adv, err := GRPO(r, 3, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Group 1: mean 2, unbiased std 1 → [−1, 0, 1]; group 2 equal → 0.
	want := []float64{-1, 0, 1, 0, 0, 0}
	for i := range want {
		if adv[i] != want[i] {
			t.Errorf("adv[%d] = %v, want %v", i, adv[i], want[i])
		}
	}
	for _, c := range []struct {
		r   []float64
		k   int
		eps float64
	}{{r, 1, 0}, {r, 4, 0}, {r, 3, -1}, {[]float64{1, math.NaN()}, 2, 0}} {
		if _, err := GRPO(c.r, c.k, c.eps); err == nil {
			t.Errorf("GRPO(%v, %d, %v): no error", c.r, c.k, c.eps)
		}
	}
}

// Log-ratio gaps of 1e3: finite where the surrogate is finite.
func TestPPOClipStress(t *testing.T) {
	r, err := PPOClip([]float64{-1, -1001, -1, -5}, []float64{-1001, -1, -1001, -5}, []float64{2, 3, 0, -1}, 0.2)
	if err != nil {
		t.Fatal(err)
	}
	// Entry 0: ρ = +Inf, A = 2: clipped at 1.2·2. Entry 1: ρ = e^−1000 = 0,
	// A = 3: unclipped 0. Entry 2: A = 0. Entry 3: ρ = 1, A = −1.
	if want := (-2.4 - 0 + 0 + 1) / 4; math.Abs(r.Loss-want) > 1e-15 {
		t.Errorf("loss %v, want %v", r.Loss, want)
	}
	for i, w := range []float64{0, 0, 0, 0.25} {
		if r.Grad[i] != w {
			t.Errorf("grad[%d] = %v, want %v", i, r.Grad[i], w)
		}
	}
}

// The definition of the clipped surrogate, branch by branch.
func TestPPOClipBranches(t *testing.T) {
	const eps = 0.2
	for _, c := range []struct {
		d, a     float64 // log-ratio, advantage
		clipped  bool
		loss, dg float64 // per-entry loss and gradient
	}{
		{0, 1, false, -1, -1},
		{math.Log(1.5), 1, true, -1.2, 0},     // A>0, ρ above 1+ε: clipped
		{math.Log(0.5), 1, false, -0.5, -0.5}, // A>0, ρ below 1−ε: unclipped is the min
		{math.Log(0.5), -1, true, 0.8, 0},     // A<0, ρ below 1−ε: clipped
		{math.Log(1.5), -1, false, 1.5, 1.5},  // A<0, ρ above 1+ε: unclipped
		{math.Log(1.1), 2, false, -2.2, -2.2}, // inside
		{math.Log(1.1), 0, false, 0, 0},       // zero advantage
	} {
		r, err := PPOClip([]float64{c.d - 3}, []float64{-3}, []float64{c.a}, eps)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(r.Loss-c.loss) > 1e-12 || math.Abs(r.Grad[0]-c.dg) > 1e-12 || (r.ClipFrac == 1) != c.clipped {
			t.Errorf("ρ=%v A=%v: loss %v grad %v clipfrac %v, want %v %v %v", math.Exp(c.d), c.a, r.Loss, r.Grad[0], r.ClipFrac, c.loss, c.dg, c.clipped)
		}
	}
}

func TestOnlineFiniteDifferences(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	n := 8
	lp, old, ref, adv, rew, base := make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
	for i := range n {
		lp[i] = -5 * rng.Float64()
		old[i] = lp[i] + 0.6*(rng.Float64()-0.5)
		ref[i] = lp[i] + 2*(rng.Float64()-0.5)
		adv[i] = 2 * rng.NormFloat64()
		rew[i] = rng.NormFloat64()
		base[i] = rng.NormFloat64()
	}
	fns := map[string]func() (PolicyResult, error){
		"PPOClip":   func() (PolicyResult, error) { return PPOClip(lp, old, adv, 0.2) },
		"k1":        func() (PolicyResult, error) { return KL(K1, lp, ref) },
		"k2":        func() (PolicyResult, error) { return KL(K2, lp, ref) },
		"k3":        func() (PolicyResult, error) { return KL(K3, lp, ref) },
		"Reinforce": func() (PolicyResult, error) { return Reinforce(lp, rew, base) },
		"Reinforce mean": func() (PolicyResult, error) {
			return Reinforce(lp, rew, nil)
		},
	}
	for name, f := range fns {
		res, err := f()
		if err != nil {
			t.Fatal(err)
		}
		for i := range lp {
			const h = 1e-6
			x0 := lp[i]
			lp[i] = x0 + h
			up, _ := f()
			lp[i] = x0 - h
			dn, _ := f()
			lp[i] = x0
			fd := (up.Loss - dn.Loss) / (2 * h)
			if math.Abs(fd-res.Grad[i]) > 1e-7 {
				t.Errorf("%s: grad[%d] = %v, finite difference %v", name, i, res.Grad[i], fd)
			}
		}
	}
}

// k1 and k3 are unbiased for KL(π‖π_ref) when tokens are drawn from π; k3
// and k2 are never negative.
func TestKLEstimatorsUnbiased(t *testing.T) {
	p := []float64{0.5, 0.3, 0.15, 0.05}
	q := []float64{0.25, 0.25, 0.25, 0.25}
	var exact float64
	for i := range p {
		exact += p[i] * math.Log(p[i]/q[i])
	}
	for _, e := range []KLEstimator{K1, K3} {
		var mean float64
		for i := range p {
			kl, _ := e.Estimate(math.Log(p[i]), math.Log(q[i]))
			mean += p[i] * kl
		}
		if math.Abs(mean-exact) > 1e-15 {
			t.Errorf("%v: E[estimate] = %v, KL = %v", e, mean, exact)
		}
	}
	for _, e := range []KLEstimator{K2, K3} {
		for _, d := range []float64{-5, -1e-9, 0, 1e-9, 3} {
			if kl, _ := e.Estimate(0, d); kl < 0 {
				t.Errorf("%v(δ=%v) = %v < 0", e, d, kl)
			}
		}
	}
}

func TestShapeRewardsAndExpand(t *testing.T) {
	got, err := ShapeRewards([]float64{1, 2}, []float64{-3, -4}, []float64{-5, -4}, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != 0 || got[1] != 2 {
		t.Errorf("ShapeRewards = %v, want [0 2]", got)
	}
	e, err := Expand([]float64{1, 2, 3}, []int{2, 0, 3})
	if err != nil {
		t.Fatal(err)
	}
	if want := []float64{1, 1, 3, 3, 3}; len(e) != len(want) || e[0] != 1 || e[1] != 1 || e[2] != 3 || e[4] != 3 {
		t.Errorf("Expand = %v, want %v", e, want)
	}
}

func TestOnlineErrors(t *testing.T) {
	one, two := []float64{-1}, []float64{-1, -2}
	nan := []float64{math.NaN()}
	for _, c := range []struct {
		name string
		err  error
		want string
	}{
		{"ppo empty", errOf(PPOClip(nil, nil, nil, 0.2)), "empty"},
		{"ppo eps", errOf(PPOClip(one, one, one, 0)), "eps"},
		{"ppo eps 1", errOf(PPOClip(one, one, one, 1)), "eps"},
		{"ppo ragged", errOf(PPOClip(two, one, two, 0.2)), "oldLogp"},
		{"ppo NaN", errOf(PPOClip(one, one, nan, 0.2)), "adv[0]"},
		{"ppo overflow", errOf(PPOClip([]float64{-1}, []float64{-1001}, []float64{-1}, 0.2)), "overflows"},
		{"kl estimator", errOf(KL(0, one, one)), "estimator"},
		{"kl ragged", errOf(KL(K3, two, one)), "refLogp"},
		{"kl Inf", errOf(KL(K3, []float64{math.Inf(-1)}, one)), "logp[0]"},
		{"kl overflow", errOf(KL(K3, []float64{-1000}, []float64{0})), "overflow"},
		{"reinforce ragged", errOf(Reinforce(two, one, nil)), "rewards"},
		{"reinforce baseline", errOf(Reinforce(one, one, two)), "baseline"},
		{"reinforce empty", errOf(Reinforce(nil, nil, nil)), "empty"},
		{"shape beta", errOf(ShapeRewards(one, one, one, -1)), "beta"},
		{"shape ragged", errOf(ShapeRewards(one, two, one, 1)), "oldLogp"},
		{"shape NaN", errOf(ShapeRewards(nan, one, one, 1)), "r[0]"},
		{"expand", errOf(Expand(one, []int{-1})), "negative"},
		{"loo", errOf(LeaveOneOut(two, 1)), "k = 1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			assert.ErrorContains(t, c.err, c.want)
		})
	}
}

// A group of equal rewards gets advantages of exactly 0 from every
// advantage estimator, though its computed mean can miss the rewards in the
// last bit (0.7+0.7+0.7 = 2.0999999999999996, /3 = 0.6999999999999998), which
// GRPO's 1/(std+eps) would turn into ±1e−12 and LeaveOneOut into ±3e−16.
func TestFlatGroupsExactZero(t *testing.T) {
	if m := groupMean([]float64{0.7, 0.7, 0.7}); m == 0.7 {
		t.Fatalf("mean of three 0.7 is exactly 0.7: the case no longer tests anything")
	}
	rewards := []float64{
		0.7, 0.7, 0.7,
		1, 0, 1,
		0.1, 0.1, 0.1,
		1.0 / 3, 1.0 / 3, 1.0 / 3,
		-1e308, -1e308, -1e308, // GRPO's path near float64's range
		math.Copysign(0, -1), 0, 0, // −0 equals 0
	}
	flatAt := []int{0, 2, 3, 4, 5}
	check := func(name string, adv []float64, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, g := range flatAt {
			for i := 3 * g; i < 3*g+3; i++ {
				if adv[i] != 0 {
					t.Errorf("%s: group %d (%v): adv[%d] = %v, want exactly 0", name, g, rewards[3*g], i, adv[i])
				}
			}
		}
		if !(adv[3] > 0 && adv[4] < 0 && adv[5] > 0) {
			t.Errorf("%s: the unequal group's advantages %v", name, adv[3:6])
		}
	}
	for _, eps := range []float64{0, 1e-4, 1} {
		adv, err := GRPO(rewards, 3, eps)
		check(fmt.Sprintf("GRPO(eps = %v)", eps), adv, err)
	}
	adv, err := LeaveOneOut(rewards, 3)
	check("LeaveOneOut", adv, err)
}

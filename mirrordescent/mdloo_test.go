package mirrordescent

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// bandit is a one-prompt bandit with n responses: true rewards r, a
// reference policy, and a reward model that reports r plus Gaussian
// noise (so the true reward is not what the learner sees).
type bandit struct {
	r, refLP []float64
	noise    float64
}

func newBandit(rng *rand.Rand, n int, noise float64) *bandit {
	b := &bandit{r: make([]float64, n), refLP: make([]float64, n), noise: noise}
	for i := range b.r {
		b.r[i] = rng.Float64()
		b.refLP[i] = rng.NormFloat64()
	}
	lse := math.Inf(-1)
	for _, v := range b.refLP {
		lse = logAdd(lse, v)
	}
	for i := range b.refLP {
		b.refLP[i] -= lse
	}
	return b
}

func sample(rng *rand.Rand, lp []float64) int {
	u := rng.Float64()
	for i, l := range lp {
		u -= math.Exp(l)
		if u <= 0 {
			return i
		}
	}
	return len(lp) - 1
}

// runMDLOO trains a tabular softmax policy (started at π_ref) on the
// bandit with MDLOO options o for iters iterations of prompts prompts
// each, and returns the expected true reward before each iteration and
// after the last.
func runMDLOO(t *testing.T, seed uint64, o MDLOO, prompts, iters int, lr float64) []float64 {
	rng := rand.New(rand.NewPCG(seed, 99))
	b := newBandit(rng, 16, 0.1)
	pol := &softmaxPolicy{theta: append([]float64(nil), b.refLP...), lr: lr}
	return trainMDLOO(t, rng, b, pol, o, prompts, iters)
}

// trainMDLOO runs iters MDLOO iterations of the policy on the bandit and
// returns the expected true reward before each and after the last.
func trainMDLOO(t *testing.T, rng *rand.Rand, b *bandit, pol *softmaxPolicy, o MDLOO, prompts, iters int) []float64 {
	n := prompts * o.K
	scores, oldLP, refLP := make([]float64, n), make([]float64, n), make([]float64, n)
	curve := []float64{expect(expLog(pol.logProbs()), b.r)}
	for k := 1; k <= iters; k++ {
		lp := pol.logProbs()
		pol.actions = pol.actions[:0]
		for i := range n {
			a := sample(rng, lp)
			pol.actions = append(pol.actions, a)
			scores[i] = b.r[a] + b.noise*rng.NormFloat64()
			oldLP[i] = lp[a]
			refLP[i] = b.refLP[a]
		}
		_, err := o.Update(t.Context(), k, pol, scores, oldLP, refLP)
		require.NoError(t, err)
		curve = append(curve, expect(expLog(pol.logProbs()), b.r))
	}
	return curve
}

// TestMDLOOImprovesEveryIteration: MDLOO with its default K, β, t_k and
// m raises the expected true reward at every one of 25 iterations on a
// 16-armed bandit with a noisy reward model (64 prompts × K responses
// per iteration), for 20 seeds, and ends
// well above where it started. The inner optimizer (plain gradient
// descent on the logits, rate 1) is the test's, not an MDLOO option.
func TestMDLOOImprovesEveryIteration(t *testing.T) {
	o := DefaultMDLOO()
	least := math.Inf(1)
	for seed := range uint64(20) {
		curve := runMDLOO(t, seed, o, 64, 25, 1)
		for k := 1; k < len(curve); k++ {
			least = min(least, curve[k]-curve[k-1])
			if curve[k] <= curve[k-1] {
				t.Errorf("seed %d: expected reward fell at iteration %d: %.5f → %.5f", seed, k, curve[k-1], curve[k])
			}
		}
		if gain := curve[len(curve)-1] - curve[0]; gain < 0.05 {
			t.Errorf("seed %d: expected reward rose only %.3f over 25 iterations", seed, gain)
		}
		t.Logf("seed %d: expected reward %.3f → %.3f", seed, curve[0], curve[len(curve)-1])
	}
	t.Logf("smallest one-iteration gain: %.3g", least)
}

func TestMDLOOErrors(t *testing.T) {
	ok := []float64{1, 2, 3, 4}
	for _, c := range []struct {
		name             string
		mod              func(*MDLOO)
		scores, old, ref []float64
		want             string
	}{
		{"K", func(o *MDLOO) { o.K = 1 }, ok, ok, ok, "K = 1"},
		{"beta", func(o *MDLOO) { o.Beta = -1 }, ok, ok, ok, "Beta"},
		{"schedule", func(o *MDLOO) { o.Schedule = nil }, ok, ok, ok, "Schedule"},
		{"steps", func(o *MDLOO) { o.Steps = 0 }, ok, ok, ok, "Steps"},
		{"groups", func(o *MDLOO) { o.K = 3 }, ok, ok, ok, "groups of 3"},
		{"len", func(*MDLOO) {}, ok, ok[:3], ok, "len(oldLP)"},
		{"nil ref", func(*MDLOO) {}, ok, ok, nil, "nil refLP"},
		{"NaN score", func(*MDLOO) {}, []float64{1, 2, 3, math.NaN()}, ok, ok, "scores[3] (prompt 0, response 3)"},
		{"Inf ref", func(*MDLOO) {}, ok, ok, []float64{1, math.Inf(1), 3, 4}, "refLP[1]"},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := DefaultMDLOO()
			c.mod(&o)
			_, _, err := o.Advantages(c.scores, c.old, c.ref)
			assert.ErrorContains(t, err, c.want)
		})
	}
	o := DefaultMDLOO()
	o.Beta = 0
	_, _, err := o.Advantages(ok, ok, nil)
	assert.NoError(t, err, "β = 0 with nil refLP")
	o = DefaultMDLOO()
	o.Schedule = Constant(0)
	pol := &softmaxPolicy{theta: []float64{0, 0, 0, 0}, actions: []int{0, 1, 2, 3}, lr: 1}
	_, err = o.Update(t.Context(), 1, pol, ok, []float64{-1.4, -1.4, -1.4, -1.4}, ok)
	assert.ErrorContains(t, err, "Schedule(1)", "t = 0")
}

// A prompt whose shaped rewards are all equal (scores of 0.7 with no KL
// term, or scores and KL shaping that cancel) teaches nothing: its
// advantages are exactly 0, not the mean's last-bit error.
func TestMDLOOFlatGroupExactZero(t *testing.T) {
	scores := []float64{0.7, 0.7, 0.7, 1, 0, 1}
	adv, _, err := MDLOO{K: 3, Beta: 0, Schedule: Constant(1), Steps: 1}.Advantages(scores, make([]float64, 6), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range adv[:3] {
		if a != 0 {
			t.Errorf("adv[%d] = %v, want exactly 0", i, a)
		}
	}
	if !(adv[3] > 0 && adv[4] < 0 && adv[5] > 0) {
		t.Errorf("the unequal prompt's advantages %v", adv[3:])
	}
	// β·(old − ref) = 0.5·(−1 − (−1.5)) = 0.25 from every score 0.95.
	o := MDLOO{K: 3, Beta: 0.5, Schedule: Constant(1), Steps: 1}
	adv, shaped, err := o.Advantages([]float64{0.95, 0.95, 0.95}, []float64{-1, -1, -1}, []float64{-1.5, -1.5, -1.5})
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range adv {
		if a != 0 || shaped[i] != 0.7 {
			t.Errorf("adv[%d] = %v (shaped %v), want exactly 0 (0.7)", i, a, shaped[i])
		}
	}
}

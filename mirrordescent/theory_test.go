package mirrordescent

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestEGRegret plays exponentiated gradient against random linear losses
// in [0,1]^n and checks the regret against the best fixed action stays
// under Hedge's bound √(T·ln n / 2) for η = √(8·ln n / T) (Cesa-Bianchi
// and Lugosi 2006, Thm 2.2). The losses favour one action, so playing
// uniformly would exceed the bound many times over: the test can fail.
func TestEGRegret(t *testing.T) {
	const n, T = 20, 4000
	for seed := range uint64(5) {
		rng := rand.New(rand.NewPCG(seed, 1))
		bias := make([]float64, n)
		for i := range bias {
			bias[i] = 0.3 + 0.4*rng.Float64()
		}
		bias[rng.IntN(n)] = 0.2
		eta := math.Sqrt(8 * math.Log(n) / T)
		x := uniform(n)
		cum := make([]float64, n)
		var learner, uniformLoss float64
		g := make([]float64, n)
		for range T {
			for i := range g {
				g[i] = min(max(bias[i]+0.3*(rng.Float64()-0.5), 0), 1)
				learner += x[i] * g[i]
				uniformLoss += g[i] / n
				cum[i] += g[i]
			}
			require.NoError(t, EntropicStep(x, g, eta))
		}
		best := math.Inf(1)
		for _, c := range cum {
			best = min(best, c)
		}
		regret, bound := learner-best, math.Sqrt(T*math.Log(n)/2)
		if regret > bound {
			t.Errorf("seed %d: regret %.2f exceeds √(T ln n / 2) = %.2f", seed, regret, bound)
		}
		if uniformLoss-best < 3*bound {
			t.Fatalf("seed %d: uniform play's regret %.2f is not far above the bound %.2f: the test is too easy", seed, uniformLoss-best, bound)
		}
		t.Logf("seed %d: regret %.2f, bound %.2f, uniform %.2f", seed, regret, bound, uniformLoss-best)
	}
}

// TestEGZeroSumGame runs two mirror-descent players against each other
// on a zero-sum matrix game (x minimizes xᵀAy, y maximizes) and checks
// the average strategies' duality gap max_j (Aᵀx̄)_j − min_i (Aȳ)_i,
// which bounds their distance from a Nash equilibrium, falls below 0.01.
func TestEGZeroSumGame(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	const m, n = 5, 4
	a := make([][]float64, m)
	for i := range a {
		a[i] = make([]float64, n)
		for j := range a[i] {
			a[i][j] = rng.Float64()*2 - 1
		}
	}
	for _, mir := range []Mirror{NegEntropy{}, Euclidean{}} {
		x, y := uniform(m), uniform(n)
		xbar, ybar := make([]float64, m), make([]float64, n)
		gx, gy := make([]float64, m), make([]float64, n)
		const T = 20000
		sched := InvSqrt(1)
		for k := 1; k <= T; k++ {
			for i := range gx {
				gx[i] = 0
				for j := range gy {
					gx[i] += a[i][j] * y[j]
				}
			}
			for j := range gy {
				gy[j] = 0
				for i := range gx {
					gy[j] -= a[i][j] * x[i]
				}
			}
			require.NoError(t, mir.Step(x, gx, sched(k)))
			require.NoError(t, mir.Step(y, gy, sched(k)))
			for i := range x {
				xbar[i] += x[i] / T
			}
			for j := range y {
				ybar[j] += y[j] / T
			}
		}
		gap := dualityGap(a, xbar, ybar)
		if gap >= 0.01 {
			t.Errorf("%T: duality gap %.4g after %d rounds, want < 0.01", mir, gap, T)
		}
		if g0 := dualityGap(a, uniform(m), uniform(n)); g0 < 0.1 {
			t.Fatalf("uniform play already has gap %.3g: the game is too easy", g0)
		}
		t.Logf("%T: duality gap %.3g", mir, gap)
	}
}

func dualityGap(a [][]float64, x, y []float64) float64 {
	hi := math.Inf(-1)
	for j := range y {
		var v float64
		for i := range x {
			v += a[i][j] * x[i]
		}
		hi = max(hi, v)
	}
	lo := math.Inf(1)
	for i := range x {
		var v float64
		for j := range y {
			v += a[i][j] * y[j]
		}
		lo = min(lo, v)
	}
	return hi - lo
}

// TestKLRegularizedOptimum iterates the exact MDLOO update on a bandit —
// TabularMDPO on the KL-shaped reward r − β·log(π/π_ref) — and checks it
// reaches π* ∝ π_ref·exp(r/β), the maximizer of E_π r − β·KL(π‖π_ref)
// (the DPO paper's bandit optimum), and that the expected reward rises
// at every iteration. It also checks EntropicStep on the gradient of the
// same objective reaches the same point.
func TestKLRegularizedOptimum(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const n, beta = 12, 0.2
	ref := make([]float64, n)
	r := make([]float64, n)
	for i := range ref {
		ref[i] = rng.Float64() + 0.1
		r[i] = rng.Float64()
	}
	normalize(ref)
	want := make([]float64, n)
	for i := range want {
		want[i] = ref[i] * math.Exp(r[i]/beta)
	}
	normalize(want)

	logp := make([]float64, n)
	for i := range logp {
		logp[i] = math.Log(ref[i])
	}
	adv := make([]float64, n)
	prev := expect(expLog(logp), r)
	for k := 1; k <= 400; k++ {
		for i := range adv {
			adv[i] = r[i] - beta*(logp[i]-math.Log(ref[i]))
		}
		require.NoError(t, TabularMDPO(logp, adv, 1))
		cur := expect(expLog(logp), r)
		if cur < prev-1e-15 {
			t.Fatalf("iteration %d: expected reward fell %.12g → %.12g", k, prev, cur)
		}
		prev = cur
	}
	got := expLog(logp)
	if kl, _ := KL(want, got); kl > 1e-12 {
		t.Errorf("TabularMDPO: KL(π*‖π) = %.3g after 400 iterations", kl)
	}

	x := append([]float64(nil), ref...)
	g := make([]float64, n)
	for range 400 {
		for i := range g {
			g[i] = -(r[i] - beta*math.Log(x[i]/ref[i]))
		}
		require.NoError(t, EntropicStep(x, g, 1))
	}
	if kl, _ := KL(want, x); kl > 1e-12 {
		t.Errorf("EntropicStep: KL(π*‖π) = %.3g after 400 iterations", kl)
	}
}

// TestParametricMDPOReachesClosedForm minimizes the sequence-level
// surrogate over softmax logits by gradient descent on a batch whose
// empirical distribution is π_k exactly, so the surrogate is the exact
// MDPO objective, and checks the result is the closed form
// π_k·exp(t·A)/Z: the parametric and tabular updates agree.
func TestParametricMDPOReachesClosedForm(t *testing.T) {
	pk := []float64{0.5, 0.25, 0.125, 0.125}
	batch := []int{0, 0, 0, 0, 1, 1, 2, 3} // frequencies = π_k
	aOf := []float64{0.3, -0.2, 1.0, -0.7}
	const tk = 0.8
	want := make([]float64, len(pk))
	for i := range want {
		want[i] = math.Log(pk[i])
	}
	require.NoError(t, TabularMDPO(want, aOf, tk))
	theta := make([]float64, len(pk))
	for i := range theta {
		theta[i] = math.Log(pk[i])
	}
	pol := &softmaxPolicy{theta: theta, actions: batch, lr: 2}
	old := make([]float64, len(batch))
	adv := make([]float64, len(batch))
	require.NoError(t, pol.LogProbs(context.Background(), old))
	for i, a := range batch {
		adv[i] = aOf[a]
	}
	res, err := MDPO(t.Context(), pol, old, adv, tk, 3000)
	require.NoError(t, err)
	got := pol.logProbs()
	assert.InDeltaSlice(t, want, got, 1e-6, "log π after 3000 inner steps")
	if res[0].KL != 0 || res[0].MeanRatio != 1 {
		t.Errorf("first inner step at θ_k: KL %v, mean ratio %v, want 0 and 1", res[0].KL, res[0].MeanRatio)
	}
}

// softmaxPolicy is a tabular softmax policy over actions, seen through a
// batch of sampled actions, trained by plain gradient descent.
type softmaxPolicy struct {
	theta   []float64
	actions []int
	lr      float64
}

func (p *softmaxPolicy) logProbs() []float64 {
	lse := math.Inf(-1)
	for _, v := range p.theta {
		lse = logAdd(lse, v)
	}
	out := make([]float64, len(p.theta))
	for i, v := range p.theta {
		out[i] = v - lse
	}
	return out
}

func (p *softmaxPolicy) LogProbs(_ context.Context, dst []float64) error {
	lp := p.logProbs()
	for i, a := range p.actions {
		dst[i] = lp[a]
	}
	return nil
}

// Step applies θ ← θ − lr·Σ_i grad_i·(e_{a_i} − π), the chain rule
// through log π(a) = θ_a − logΣexp θ.
func (p *softmaxPolicy) Step(_ context.Context, grad []float64) error {
	lp := p.logProbs()
	var total float64
	d := make([]float64, len(p.theta))
	for i, a := range p.actions {
		d[a] += grad[i]
		total += grad[i]
	}
	for j := range p.theta {
		p.theta[j] -= p.lr * (d[j] - total*math.Exp(lp[j]))
	}
	return nil
}

func logAdd(a, b float64) float64 {
	if a < b {
		a, b = b, a
	}
	if math.IsInf(b, -1) {
		return a
	}
	return a + math.Log1p(math.Exp(b-a))
}

func uniform(n int) []float64 {
	x := make([]float64, n)
	for i := range x {
		x[i] = 1 / float64(n)
	}
	return x
}

func normalize(x []float64) {
	var s float64
	for _, v := range x {
		s += v
	}
	for i := range x {
		x[i] /= s
	}
}

func expLog(lp []float64) []float64 {
	p := make([]float64, len(lp))
	for i, v := range lp {
		p[i] = math.Exp(v)
	}
	return p
}

func expect(p, r []float64) float64 {
	var s float64
	for i := range p {
		s += p[i] * r[i]
	}
	return s
}

// TestEGRegretSwitching: the bound holds for any loss sequence, here one
// whose best action changes halfway and whose losses are adversarially
// arranged against the learner's current favourite.
func TestEGRegretSwitching(t *testing.T) {
	const n, T = 8, 3000
	eta := math.Sqrt(8 * math.Log(n) / T)
	x := uniform(n)
	cum := make([]float64, n)
	g := make([]float64, n)
	var learner float64
	for s := range T {
		fav := 0
		for i := range x {
			if x[i] > x[fav] {
				fav = i
			}
		}
		for i := range g {
			g[i] = 0.5
			if (s < T/2 && i == 0) || (s >= T/2 && i == 1) {
				g[i] = 0.3
			}
		}
		g[fav] = 1 // punish whatever the learner likes most
		for i := range g {
			learner += x[i] * g[i]
			cum[i] += g[i]
		}
		require.NoError(t, EntropicStep(x, g, eta))
	}
	best := math.Inf(1)
	for _, c := range cum {
		best = min(best, c)
	}
	if regret, bound := learner-best, math.Sqrt(T*math.Log(n)/2); regret > bound {
		t.Errorf("regret %.2f exceeds √(T ln n / 2) = %.2f", regret, bound)
	} else {
		t.Logf("regret %.2f, bound %.2f", regret, bound)
	}
}

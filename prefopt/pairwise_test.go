package prefopt

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
)

// torchtune's DPO tests (docs/ALGORITHMS.md): h = [0, 10, 20].
func TestTorchtuneValues(t *testing.T) {
	b := torchtuneBatch()
	per := func(o Objective) []float64 {
		// Per-pair losses: run the objective on one pair at a time.
		out := make([]float64, len(b.PolicyChosen))
		for i := range out {
			one := Batch{
				PolicyChosen: b.PolicyChosen[i : i+1], PolicyRejected: b.PolicyRejected[i : i+1],
				RefChosen: b.RefChosen[i : i+1], RefRejected: b.RefRejected[i : i+1],
				ChosenLen: b.ChosenLen[i : i+1], RejectedLen: b.RejectedLen[i : i+1],
			}
			r, err := o.Loss(one)
			if err != nil {
				t.Fatal(err)
			}
			out[i] = r.Loss
		}
		return out
	}
	for _, c := range []struct {
		name string
		o    Objective
		want []float64
		tol  float64
	}{
		{"DPO", DPO{Beta: 0.1}, []float64{0.693147, 0.313262, 0.126928}, 1e-6},
		{"IPO summed", IPO{Tau: 0.1, SumLogProbs: true}, []float64{25, 25, 225}, 1e-9},
		{"Hinge", Hinge{Beta: 0.1}, []float64{1, 0, 0}, 1e-9},
	} {
		t.Run(c.name, func(t *testing.T) {
			assert.InDeltaSlice(t, c.want, per(c.o), c.tol, "per-pair losses")
		})
	}
}

func randBatch(rng *rand.Rand, n int) Batch {
	b := Batch{
		PolicyChosen: make([]float64, n), PolicyRejected: make([]float64, n),
		RefChosen: make([]float64, n), RefRejected: make([]float64, n),
		ChosenLen: make([]int, n), RejectedLen: make([]int, n),
	}
	for i := range n {
		b.PolicyChosen[i] = -30 * rng.Float64()
		b.PolicyRejected[i] = -30 * rng.Float64()
		b.RefChosen[i] = -30 * rng.Float64()
		b.RefRejected[i] = -30 * rng.Float64()
		b.ChosenLen[i] = 1 + rng.IntN(20)
		b.RejectedLen[i] = 1 + rng.IntN(20)
	}
	return b
}

func objectives() map[string]Objective {
	return map[string]Objective{
		"DPO":           DPO{Beta: 0.1},
		"cDPO":          DPO{Beta: 0.3, LabelSmoothing: 0.2},
		"RobustDPO":     RobustDPO{Beta: 0.2, LabelSmoothing: 0.1},
		"IPO":           IPO{Tau: 0.1},
		"IPO summed":    IPO{Tau: 0.5, SumLogProbs: true},
		"Hinge":         Hinge{Beta: 0.05},
		"SimPO":         SimPO{Beta: 2, Gamma: 0.5},
		"DPO+NLL":       WithNLL{Objective: DPO{Beta: 0.1}, Alpha: Llama31Alpha},
		"SimPO+NLL":     WithNLL{Objective: SimPO{Beta: 2.5, Gamma: 1}, Alpha: 1},
		"RobustDPO+NLL": WithNLL{Objective: RobustDPO{Beta: 0.2, LabelSmoothing: 0.3}, Alpha: 0.5},
	}
}

// Central differences in float64 against every analytic gradient.
func TestPairwiseFiniteDifferences(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for name, o := range objectives() {
		fdCheck(t, name, o, randBatch(rng, 7))
	}
}

// Log-prob gaps of hundreds with β = 10: exact, finite losses and
// gradients where naive log(sigmoid) gives −Inf.
func TestPairwiseStress(t *testing.T) {
	b := Batch{
		PolicyChosen: []float64{-1, -900}, PolicyRejected: []float64{-800, -2},
		RefChosen: []float64{-1, -900}, RefRejected: []float64{-1, -3},
		ChosenLen: []int{1, 1}, RejectedLen: []int{1, 1},
	}
	// h = [799, −1]: pair 0 perfectly separated, pair 1 wrong by one nat.
	r, err := DPO{Beta: 10}.Loss(b)
	if err != nil {
		t.Fatal(err)
	}
	// Pair 0: −logσ(7990) = e^−7990 ≈ 0; pair 1: −logσ(−10) = 10 + log1p(e^−10).
	want := (10 + math.Log1p(math.Exp(-10))) / 2
	if math.Abs(r.Loss-want) > 1e-14 {
		t.Errorf("loss %v, want %v", r.Loss, want)
	}
	if r.GradChosen[0] != 0 || r.GradRejected[0] != 0 {
		t.Errorf("separated pair has gradient (%v, %v), want exactly 0", r.GradChosen[0], r.GradRejected[0])
	}
	// Pair 1: β·σ(10)/n with sign −.
	if g := -10 * sigmoid(10) / 2; math.Abs(r.GradChosen[1]-g) > 1e-14 {
		t.Errorf("grad chosen[1] = %v, want %v", r.GradChosen[1], g)
	}
	// Reversed: loss ≈ βh, exactly (7990 + tiny)/2 for pair 0.
	b.PolicyChosen, b.PolicyRejected = b.PolicyRejected, b.PolicyChosen
	b.RefChosen, b.RefRejected = b.RefRejected, b.RefChosen
	r, err = DPO{Beta: 10, LabelSmoothing: 0.1}.Loss(b)
	if err != nil {
		t.Fatal(err)
	}
	if !finite(r.Loss) || r.Loss < 7990*0.9/2 {
		t.Errorf("reversed stress loss %v", r.Loss)
	}
	for _, x := range logSigmoidCases {
		if got := logSigmoid(x.x); math.Abs(got-x.want) > 1e-15*math.Max(1, math.Abs(x.want)) {
			t.Errorf("logSigmoid(%v) = %v, want %v", x.x, got, x.want)
		}
	}
}

var logSigmoidCases = []struct{ x, want float64 }{
	{0, -math.Ln2},
	{-1e4, -1e4},
	{1e4, 0},
	{-800, -800},
	{40, -math.Exp(-40)},
}

func TestPairwiseErrors(t *testing.T) {
	good := torchtuneBatch()
	ragged := torchtuneBatch()
	ragged.RefRejected = ragged.RefRejected[:2]
	noRef := torchtuneBatch()
	noRef.RefChosen = nil
	nan := torchtuneBatch()
	nan.PolicyRejected = []float64{-1, math.NaN(), -2}
	inf := torchtuneBatch()
	inf.RefChosen = []float64{-1, -2, math.Inf(-1)}
	zeroLen := torchtuneBatch()
	zeroLen.RejectedLen = []int{3, 0, 1}
	noLen := torchtuneBatch()
	noLen.ChosenLen = nil
	raggedUnused := torchtuneBatch()
	raggedUnused.RejectedLen = []int{1}
	for _, c := range []struct {
		name string
		o    Objective
		b    Batch
		want string
	}{
		{"empty", DPO{Beta: 0.1}, Batch{}, "empty"},
		{"ragged", DPO{Beta: 0.1}, ragged, "RefRejected"},
		{"no ref", DPO{Beta: 0.1}, noRef, "reference"},
		{"no ref hinge", Hinge{Beta: 0.1}, noRef, "reference"},
		{"no ref ipo", IPO{Tau: 1}, noRef, "reference"},
		{"NaN", DPO{Beta: 0.1}, nan, "PolicyRejected[1]"},
		{"Inf", RobustDPO{Beta: 0.1}, inf, "RefChosen[2]"},
		{"beta 0", DPO{}, good, "Beta"},
		{"beta <0", Hinge{Beta: -1}, good, "Beta"},
		{"beta NaN", SimPO{Beta: math.NaN()}, good, "Beta"},
		{"tau 0", IPO{}, good, "Tau"},
		{"eps 0.5", DPO{Beta: 0.1, LabelSmoothing: 0.5}, good, "LabelSmoothing"},
		{"eps <0", RobustDPO{Beta: 0.1, LabelSmoothing: -0.1}, good, "LabelSmoothing"},
		{"gamma Inf", SimPO{Beta: 1, Gamma: math.Inf(1)}, good, "Gamma"},
		{"zero len ipo", IPO{Tau: 1}, zeroLen, "RejectedLen[1]"},
		{"zero len simpo", SimPO{Beta: 1}, zeroLen, "RejectedLen[1]"},
		{"no len simpo", SimPO{Beta: 1}, noLen, "ChosenLen"},
		{"no len nll", WithNLL{Objective: DPO{Beta: 0.1}, Alpha: 0.2}, noLen, "ChosenLen"},
		{"ragged unused field", DPO{Beta: 0.1}, raggedUnused, "RejectedLen"},
		{"ragged unused ref", SimPO{Beta: 1}, Batch{PolicyChosen: []float64{-1}, PolicyRejected: []float64{-1},
			RefChosen: []float64{-1, -2}, ChosenLen: []int{1}, RejectedLen: []int{1}}, "RefChosen"},
		{"nil objective", WithNLL{Alpha: 0.2}, good, "nil"},
		{"alpha <0", WithNLL{Objective: DPO{Beta: 0.1}, Alpha: -1}, good, "Alpha"},
		{"overflow", IPO{Tau: 1, SumLogProbs: true}, Batch{
			PolicyChosen: []float64{1e300}, PolicyRejected: []float64{-1e300},
			RefChosen: []float64{0}, RefRejected: []float64{0}}, "overflow"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := c.o.Loss(c.b)
			assert.ErrorContains(t, err, c.want)
		})
	}
	// Reference-free SimPO needs no reference.
	if _, err := (SimPO{Beta: 2, Gamma: 1}).Loss(noRef); err != nil {
		t.Errorf("SimPO without reference: %v", err)
	}
	// IPO summed needs no lengths.
	if _, err := (IPO{Tau: 1, SumLogProbs: true}).Loss(noLen); err != nil {
		t.Errorf("summed IPO without lengths: %v", err)
	}
}

// cDPO with ε and the robust loss are both convex combinations of the
// two log-sigmoids; at ε = 0 both are plain DPO.
func TestSmoothingZeroIsDPO(t *testing.T) {
	b := randBatch(rand.New(rand.NewPCG(3, 4)), 5)
	want, _ := DPO{Beta: 0.2}.Loss(b)
	got, _ := RobustDPO{Beta: 0.2}.Loss(b)
	if math.Abs(got.Loss-want.Loss) > 1e-15 {
		t.Errorf("RobustDPO(ε=0) = %v, DPO = %v", got.Loss, want.Loss)
	}
}

// The DPO bandit result (Rafailov et al. 2023, §4): with Bradley–Terry
// preferences from a reward r over K responses, the DPO loss over all
// ordered pairs with soft labels σ(r_i − r_j) is minimized by
// π*(y) ∝ π_ref(y)·exp(r(y)/β). A tabular softmax policy trained by
// gradient descent with DPO's gradients (cDPO's label smoothing carries
// the soft label: ε = 1 − P(i ≻ j) on the pair written as (i, j) with
// P(i ≻ j) ≥ ½) must converge to it.
func TestDPOBanditConverges(t *testing.T) {
	const (
		K    = 5
		beta = 0.5
	)
	r := []float64{1, 0.2, -0.5, 0.8, -1.3}
	ref := []float64{0.1, 0.3, 0.2, 0.25, 0.15}
	logRef := make([]float64, K)
	for i := range ref {
		logRef[i] = math.Log(ref[i])
	}
	// Pairs (i, j) ordered so that i is preferred with probability ≥ ½;
	// ε = 1 − that probability. Ties would need ε = ½, which DPO rejects.
	type pair struct {
		i, j int
		eps  float64
	}
	var pairs []pair
	for i := range K {
		for j := i + 1; j < K; j++ {
			a, c := i, j
			if r[c] > r[a] {
				a, c = c, a
			}
			pairs = append(pairs, pair{a, c, 1 - sigmoid(r[a]-r[c])})
		}
	}
	theta := make([]float64, K) // logits of π_θ, starting uniform
	logp := make([]float64, K)
	for range 4000 {
		logSoftmax64(logp, theta)
		grad := make([]float64, K) // dL/dlogπ(y)
		for _, p := range pairs {
			res, err := DPO{Beta: beta, LabelSmoothing: p.eps}.Loss(Batch{
				PolicyChosen: logp[p.i : p.i+1], PolicyRejected: logp[p.j : p.j+1],
				RefChosen: logRef[p.i : p.i+1], RefRejected: logRef[p.j : p.j+1],
			})
			if err != nil {
				t.Fatal(err)
			}
			grad[p.i] += res.GradChosen[0]
			grad[p.j] += res.GradRejected[0]
		}
		// Chain through the softmax: dL/dθ_k = g_k − π_k·Σ g.
		var gs float64
		for _, g := range grad {
			gs += g
		}
		for k := range theta {
			theta[k] -= 2 * (grad[k] - math.Exp(logp[k])*gs)
		}
	}
	logSoftmax64(logp, theta)
	want := make([]float64, K)
	for k := range want {
		want[k] = logRef[k] + r[k]/beta
	}
	logSoftmax64(want, want)
	for k := range K {
		if got, w := math.Exp(logp[k]), math.Exp(want[k]); math.Abs(got-w) > 1e-6 {
			t.Errorf("π(%d) = %.8f, want π_ref·exp(r/β)/Z = %.8f", k, got, w)
		}
	}
}

func logSoftmax64(dst, x []float64) {
	m := math.Inf(-1)
	for _, v := range x {
		m = max(m, v)
	}
	var s float64
	for _, v := range x {
		s += math.Exp(v - m)
	}
	ls := m + math.Log(s)
	for i, v := range x {
		dst[i] = v - ls
	}
}

package prefopt

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// objGolden mirrors testdata/objectives.json, written by
// testdata/gen_objectives.py (torch autograd on TRL's formulas).
type objGolden struct {
	Batches map[string]struct {
		PC, PR, RC, RR []float64
		LC, LR         []int
	}
	Pairwise []objPair
	ORPO     []objPair   `json:"orpo"`
	CPO      []objPair   `json:"cpo"`
	GRPO     grpoGolden  `json:"grpo"`
	KTO      []ktoGolden `json:"kto"`
}

type objKind struct {
	Name                  string
	Beta, Eps, Tau, Gamma float64
	Alpha, Lam            float64
	Tag                   string
	Terms                 []objKind
	Weights               []float64
}

type objPair struct {
	Batch            string
	Kind             objKind
	Loss             float64
	GradChosen       []float64 `json:"grad_chosen"`
	GradRejected     []float64 `json:"grad_rejected"`
	RewardsChosen    float64   `json:"rewards_chosen"`
	RewardsRejected  float64   `json:"rewards_rejected"`
	Margin, Accuracy float64
	Shift            float64
	LogPChosen       float64 `json:"logp_chosen"`
	LogPRejected     float64 `json:"logp_rejected"`
	NLL              float64 `json:"nll"`
	LogOddsRatio     float64 `json:"log_odds_ratio"`
	LogOddsChosen    float64 `json:"log_odds_chosen"`
}

func loadObjGolden(t *testing.T) *objGolden {
	t.Helper()
	b, err := os.ReadFile("testdata/objectives.json")
	if err != nil {
		t.Fatal(err)
	}
	g := new(objGolden)
	if err := json.Unmarshal(b, g); err != nil {
		t.Fatal(err)
	}
	return g
}

// checkErr reports an error that is nil or does not mention want.
func checkErr(t *testing.T, name string, err error, want string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error", name)
	} else if !strings.Contains(err.Error(), want) {
		t.Errorf("%s: error %q does not mention %q", name, err, want)
	}
}

func (g *objGolden) batch(t *testing.T, name string) Batch {
	t.Helper()
	gb, ok := g.Batches[name]
	if !ok {
		t.Fatalf("no batch %q", name)
	}
	return Batch{gb.PC, gb.PR, gb.RC, gb.RR, gb.LC, gb.LR}
}

// lossTypeObjective maps a TRL loss_type to its Objective; state holds the
// BCOPair of each kind across batches, as TRL's trainer keeps its
// RunningMoments.
func lossTypeObjective(t *testing.T, k objKind, state map[string]*BCOPair) Objective {
	t.Helper()
	switch k.Name {
	case "sigmoid":
		return DPO{Beta: k.Beta}
	case "exo_pair":
		return EXO{Beta: k.Beta, Epsilon: k.Eps}
	case "nca_pair":
		return NCA{Beta: k.Beta}
	case "bco_pair":
		key := k.Tag + "/" + jsonString(k.Beta)
		if state[key] == nil {
			state[key] = &BCOPair{Beta: k.Beta}
		}
		return state[key]
	case "sppo_hard":
		return SPPOHard{Beta: k.Beta}
	case "aot":
		return AOT{Beta: k.Beta, LabelSmoothing: k.Eps}
	case "aot_unpaired":
		return AOT{Beta: k.Beta, LabelSmoothing: k.Eps, Unpaired: true}
	case "apo_zero":
		return APOZero{Beta: k.Beta}
	case "apo_down":
		return APODown{Beta: k.Beta}
	case "discopop":
		return DiscoPOP{Beta: k.Beta, Tau: k.Tau}
	case "sft":
		return SFT{}
	case "mix":
		var m Mix
		for i, term := range k.Terms {
			m = append(m, Weighted{lossTypeObjective(t, term, state), k.Weights[i]})
		}
		return m
	}
	t.Fatalf("unknown loss type %q", k.Name)
	return nil
}

func jsonString(x float64) string { b, _ := json.Marshal(x); return string(b) }

func checkPair(t *testing.T, name string, r Result, c objPair, tol float64) {
	t.Helper()
	assert.InDelta(t, c.Loss, r.Loss, tol*(1+math.Abs(c.Loss)), "%s: loss %v, want %v", name, r.Loss, c.Loss)
	for i := range c.GradChosen {
		assert.InDelta(t, c.GradChosen[i], r.GradChosen[i], tol*(1+math.Abs(c.GradChosen[i])), "pair %d dL/dchosen", i)
		assert.InDelta(t, c.GradRejected[i], r.GradRejected[i], tol*(1+math.Abs(c.GradRejected[i])), "pair %d dL/drejected", i)
	}
}

// checkStats compares Stats with TRL's logged values; rewards false skips
// the rewards and accuracy (SFT has none).
func checkStats(t *testing.T, name string, s Stats, c objPair, rewards bool, tol float64) {
	t.Helper()
	for _, f := range []struct {
		name      string
		got, want float64
		reward    bool
	}{
		{"rewards/chosen", s.RewardsChosen, c.RewardsChosen, true},
		{"rewards/rejected", s.RewardsRejected, c.RewardsRejected, true},
		{"rewards/margins", s.Margin, c.Margin, true},
		{"rewards/accuracies", s.Accuracy, c.Accuracy, true},
		{"logps/chosen", s.LogPChosen, c.LogPChosen, false},
		{"logps/rejected", s.LogPRejected, c.LogPRejected, false},
		{"nll_loss", s.NLL, c.NLL, false},
		{"log_odds_ratio", s.LogOddsRatio, c.LogOddsRatio, false},
		{"log_odds_chosen", s.LogOddsChosen, c.LogOddsChosen, false},
	} {
		if f.reward && !rewards {
			continue
		}
		assert.InDelta(t, f.want, f.got, tol*(1+math.Abs(f.want)), "%s: %s = %v, want %v", name, f.name, f.got, f.want)
	}
}

func TestGoldenLossTypes(t *testing.T) {
	g := loadObjGolden(t)
	state := map[string]*BCOPair{}
	for _, c := range g.Pairwise {
		o := lossTypeObjective(t, c.Kind, state)
		name := c.Batch + "/" + c.Kind.Name + " β=" + jsonString(c.Kind.Beta)
		t.Run(name, func(t *testing.T) {
			r, err := o.Loss(g.batch(t, c.Batch))
			require.NoError(t, err)
			checkPair(t, name, r, c, 1e-12)
			checkStats(t, name, r.Stats, c, c.Kind.Name != "sft", 1e-12)
			if c.Kind.Name == "bco_pair" {
				got := o.(*BCOPair).Shift.Mean
				assert.InDelta(t, c.Shift, got, 1e-12*(1+math.Abs(c.Shift)), "%s: running shift %v, want %v", name, got, c.Shift)
			}
		})
	}
}

func lossTypeObjectives() map[string]Objective {
	return map[string]Objective{
		"EXO":          EXO{Beta: 0.3, Epsilon: 0.01},
		"NCA":          NCA{Beta: 0.2},
		"BCOPair":      &BCOPair{Beta: 0.2, Shift: RewardShift{Mean: 0.3, Count: 1 << 40}},
		"SPPOHard":     SPPOHard{Beta: 0.5},
		"AOT":          AOT{Beta: 0.2, LabelSmoothing: 0.1},
		"AOT unpaired": AOT{Beta: 0.2, Unpaired: true},
		"APOZero":      APOZero{Beta: 0.1},
		"APODown":      APODown{Beta: 0.1},
		"DiscoPOP":     DiscoPOP{Beta: 0.1, Tau: DefaultDiscoPOPTau},
		"DiscoPOP τ=2": DiscoPOP{Beta: 0.05, Tau: 2},
		"SFT":          SFT{},
		"MPO":          Mix{{DPO{Beta: 0.1}, 0.8}, {NCA{Beta: 0.1}, 0.2}, {SFT{}, 1}},
	}
}

// Central differences against every analytic gradient. BCOPair's shift
// moves with the batch, but by 2⁻⁴⁰ of the batch mean at this count, far
// below the tolerance: the test sees δ as the constant TRL treats it as.
func TestLossTypesFiniteDifferences(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for name, o := range lossTypeObjectives() {
		b := randBatch(rng, 6)
		// Scale the log-probs down so sigmoids are not saturated and the
		// test has something to check.
		for _, v := range [][]float64{b.PolicyChosen, b.PolicyRejected, b.RefChosen, b.RefRejected} {
			for i := range v {
				v[i] /= 3
			}
		}
		fdCheck(t, name, o, b)
	}
}

func fdCheck(t *testing.T, name string, o Objective, b Batch) {
	t.Helper()
	r, err := o.Loss(b)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	const h = 1e-5
	for _, side := range []struct {
		x    []float64
		grad []float64
		name string
	}{{b.PolicyChosen, r.GradChosen, "chosen"}, {b.PolicyRejected, r.GradRejected, "rejected"}} {
		for i := range side.x {
			x0 := side.x[i]
			side.x[i] = x0 + h
			up, err1 := o.Loss(b)
			side.x[i] = x0 - h
			dn, err2 := o.Loss(b)
			side.x[i] = x0
			if err1 != nil || err2 != nil {
				t.Fatal(err1, err2)
			}
			fd := (up.Loss - dn.Loss) / (2 * h)
			if math.Abs(fd-side.grad[i]) > 1e-7*(1+math.Abs(fd)) {
				t.Errorf("%s: d/d%s[%d] = %v, finite difference %v", name, side.name, i, side.grad[i], fd)
			}
		}
	}
}

func TestLossTypesErrors(t *testing.T) {
	good := torchtuneBatch()
	noRef := torchtuneBatch()
	noRef.RefRejected = nil
	nan := torchtuneBatch()
	nan.PolicyChosen = []float64{-1, math.NaN(), -2}
	noLen := torchtuneBatch()
	noLen.ChosenLen = nil
	for _, c := range []struct {
		name string
		o    Objective
		b    Batch
		want string
	}{
		{"exo eps 0", EXO{Beta: 0.1}, good, "Epsilon"},
		{"exo beta", EXO{Epsilon: 0.1}, good, "Beta"},
		{"nca no ref", NCA{Beta: 0.1}, noRef, "reference"},
		{"bco NaN", &BCOPair{Beta: 0.1}, nan, "PolicyChosen[1]"},
		{"bco bad shift", &BCOPair{Beta: 0.1, Shift: RewardShift{Mean: math.Inf(1)}}, good, "Shift"},
		{"sppo beta", SPPOHard{Beta: -1}, good, "Beta"},
		{"aot eps", AOT{Beta: 1, LabelSmoothing: 0.5}, good, "LabelSmoothing"},
		{"aot empty", AOT{Beta: 1}, Batch{}, "empty"},
		{"apo no ref", APOZero{Beta: 1}, noRef, "reference"},
		{"apo beta", APODown{}, good, "Beta"},
		{"discopop tau", DiscoPOP{Beta: 1}, good, "Tau"},
		{"discopop overflow", DiscoPOP{Beta: 10, Tau: 2}, Batch{PolicyChosen: []float64{-900}, PolicyRejected: []float64{-1},
			RefChosen: []float64{-1}, RefRejected: []float64{-1}}, "overflow"},
		{"sft no len", SFT{}, noLen, "ChosenLen"},
		{"mix empty", Mix{}, good, "no terms"},
		{"mix nil", Mix{{nil, 1}}, good, "term 0: nil"},
		{"mix weight", Mix{{DPO{Beta: 0.1}, 1}, {SFT{}, -1}}, good, "term 1: Weight"},
		{"mix inner", Mix{{DPO{Beta: 0.1}, 1}, {SFT{}, 1}}, noLen, "term 1: prefopt: SFT: needs token counts"},
	} {
		_, err := c.o.Loss(c.b)
		checkErr(t, c.name, err, c.want)
	}
	// A failed call leaves the running shift alone.
	o := &BCOPair{Beta: 0.1, Shift: RewardShift{Mean: 0.5, Count: 3}}
	if _, err := o.Loss(nan); err == nil || o.Shift != (RewardShift{Mean: 0.5, Count: 3}) {
		t.Errorf("failed BCOPair call: err %v, shift %+v", err, o.Shift)
	}
}

// EXO's minimizer: dℓ/dz = σ(z)σ(−z)(z − logit(1−ε)) vanishes at
// z = log((1−ε)/ε), where the loss is the KL of a distribution to
// itself, 0.
func TestEXOFixedPoint(t *testing.T) {
	const beta, eps = 0.5, 0.05
	z := math.Log((1 - eps) / eps)
	b := Batch{PolicyChosen: []float64{z / beta}, PolicyRejected: []float64{0}, RefChosen: []float64{0}, RefRejected: []float64{0}}
	r, err := EXO{Beta: beta, Epsilon: eps}.Loss(b)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(r.Loss) > 1e-15 || math.Abs(r.GradChosen[0]) > 1e-15 {
		t.Errorf("at z = logit(1−ε): loss %v grad %v, want 0, 0", r.Loss, r.GradChosen[0])
	}
}

// APO's anchoring at the reference (π = π_ref, ρ = 0), where σ′(0) = ¼:
// APO-zero pushes the chosen log-prob up and the rejected down with equal
// force β/4; APO-down leaves the chosen alone to first order (its two
// terms cancel) and pushes the rejected down.
func TestAPOAtReference(t *testing.T) {
	const beta = 0.3
	b := Batch{PolicyChosen: []float64{-4}, PolicyRejected: []float64{-7}, RefChosen: []float64{-4}, RefRejected: []float64{-7}}
	z, _ := APOZero{Beta: beta}.Loss(b)
	d, _ := APODown{Beta: beta}.Loss(b)
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"zero loss", z.Loss, 1}, {"zero chosen", z.GradChosen[0], -beta / 4}, {"zero rejected", z.GradRejected[0], beta / 4},
		{"down loss", d.Loss, 1}, {"down chosen", d.GradChosen[0], 0}, {"down rejected", d.GradRejected[0], beta / 4},
	} {
		if math.Abs(c.got-c.want) > 1e-15 {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

// Bandit fixed points. A tabular softmax policy over K arms with a
// uniform reference, one preference a ≻ b, trained by gradient descent
// through each objective's gradient: SPPO-hard must land exactly on
// ρ_a = 1/(2β), ρ_b = −1/(2β) (reachable, since the third arm takes up
// the slack), and summed IPO on ρ_a − ρ_b = 1/(2τ).
func TestBanditFixedPoints(t *testing.T) {
	const K = 3
	logRef := math.Log(1.0 / K)
	run := func(o Objective) []float64 {
		theta := make([]float64, K)
		logp := make([]float64, K)
		for range 20000 {
			logSoftmax64(logp, theta)
			r, err := o.Loss(Batch{PolicyChosen: logp[0:1], PolicyRejected: logp[1:2],
				RefChosen: []float64{logRef}, RefRejected: []float64{logRef}})
			if err != nil {
				t.Fatal(err)
			}
			grad := []float64{r.GradChosen[0], r.GradRejected[0], 0}
			gs := grad[0] + grad[1]
			for k := range theta {
				theta[k] -= 0.05 * (grad[k] - math.Exp(logp[k])*gs)
			}
		}
		logSoftmax64(logp, theta)
		return []float64{logp[0] - logRef, logp[1] - logRef}
	}
	const beta = 2.0
	rho := run(SPPOHard{Beta: beta})
	if math.Abs(rho[0]-1/(2*beta)) > 1e-9 || math.Abs(rho[1]+1/(2*beta)) > 1e-9 {
		t.Errorf("SPPO-hard bandit: ρ = %v, want ±%v", rho, 1/(2*beta))
	}
	const tau = 0.8
	rho = run(IPO{Tau: tau, SumLogProbs: true})
	if math.Abs(rho[0]-rho[1]-1/(2*tau)) > 1e-9 {
		t.Errorf("IPO bandit: ρ_a − ρ_b = %v, want %v", rho[0]-rho[1], 1/(2*tau))
	}
	// APO-zero has no interior fixed point: it drives the chosen arm's
	// probability up and the rejected one's down, the anchored direction.
	rho = run(APOZero{Beta: 1})
	if !(rho[0] > 0 && rho[1] < -2) {
		t.Errorf("APO-zero bandit: ρ = %v, want chosen up, rejected down", rho)
	}
}

// Mix of one term with weight 1 is that term, and TRL's list of loss
// types is additive.
func TestMixIsSum(t *testing.T) {
	b := randBatch(rand.New(rand.NewPCG(7, 8)), 5)
	one, _ := Mix{{NCA{Beta: 0.2}, 1}}.Loss(b)
	want, _ := NCA{Beta: 0.2}.Loss(b)
	if one.Loss != want.Loss || one.Stats != want.Stats {
		t.Errorf("Mix of one: %+v, want %+v", one, want)
	}
	two, _ := Mix{{NCA{Beta: 0.2}, 0.5}, {SPPOHard{Beta: 1}, 2}}.Loss(b)
	s, _ := SPPOHard{Beta: 1}.Loss(b)
	if math.Abs(two.Loss-(0.5*want.Loss+2*s.Loss)) > 1e-12 {
		t.Errorf("Mix loss %v, want %v", two.Loss, 0.5*want.Loss+2*s.Loss)
	}
}

package prefopt

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestGoldenORPOCPO(t *testing.T) {
	g := loadObjGolden(t)
	if len(g.ORPO) == 0 || len(g.CPO) == 0 {
		t.Fatal("no ORPO or CPO goldens")
	}
	for _, set := range []struct {
		name  string
		cases []objPair
	}{{"ORPO", g.ORPO}, {"CPO", g.CPO}} {
		for _, c := range set.cases {
			var o Objective
			k := c.Kind
			if set.name == "ORPO" {
				o = ORPO{Beta: k.Beta}
			} else {
				o = CPO{Beta: k.Beta, LabelSmoothing: k.Eps, Alpha: k.Alpha, SimPO: k.Name == "simpo", Gamma: k.Gamma}
			}
			name := set.name + " " + c.Batch + "/" + k.Name + " β=" + jsonString(k.Beta)
			t.Run(name, func(t *testing.T) {
				r, err := o.Loss(g.batch(t, c.Batch))
				require.NoError(t, err)
				checkPair(t, name, r, c, 1e-11)
				checkStats(t, name, r.Stats, c, true, 1e-11)
			})
		}
	}
}

func TestORPOCPOFiniteDifferences(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for name, o := range map[string]Objective{
		"ORPO":        ORPO{Beta: 0.5},
		"CPO":         CPO{Beta: 0.1, LabelSmoothing: 0.1, Alpha: 1},
		"CPO-SimPO":   CPO{Beta: 2, Alpha: 0.3, SimPO: true, Gamma: 0.5},
		"CPO no NLL":  CPO{Beta: 0.2},
		"ORPO in Mix": Mix{{ORPO{Beta: 0.2}, 1}, {SFT{}, 0.5}},
	} {
		b := randBatch(rng, 6)
		for i := range b.PolicyChosen {
			// ORPO needs log-probs < 0; randBatch's are in (−30, 0].
			b.PolicyChosen[i] -= 0.01
			b.PolicyRejected[i] -= 0.01
		}
		fdCheck(t, name, o, b)
	}
	// Near-certain responses: a = −1e−6 per token, where log(1 − e^a) is
	// −13.8 and the gradient 1e6 times the log-odds slope. Relative
	// finite differences at a step small enough for the curvature.
	b := Batch{PolicyChosen: []float64{-2e-6, -0.3}, PolicyRejected: []float64{-0.7, -4e-9},
		ChosenLen: []int{2, 1}, RejectedLen: []int{1, 4}}
	o := ORPO{Beta: 0.1}
	r, err := o.Loss(b)
	if err != nil {
		t.Fatal(err)
	}
	for i, x := range [][]float64{b.PolicyChosen, b.PolicyRejected} {
		grad := [][]float64{r.GradChosen, r.GradRejected}[i]
		for j := range x {
			x0 := x[j]
			h := math.Abs(x0) * 1e-4
			x[j] = x0 + h
			up, _ := o.Loss(b)
			x[j] = x0 - h
			dn, _ := o.Loss(b)
			x[j] = x0
			fd := (up.Loss - dn.Loss) / (2 * h)
			if math.Abs(fd-grad[j]) > 1e-6*math.Abs(fd)+1e-10 {
				t.Errorf("near-certain ORPO: side %d pair %d grad %v, finite difference %v", i, j, grad[j], fd)
			}
		}
	}
}

// ORPO's odds ratio is symmetric: swapping chosen and rejected negates
// log OR; CPO-SimPO with α = 0 is SimPO.
func TestORPOCPOIdentities(t *testing.T) {
	b := randBatch(rand.New(rand.NewPCG(13, 14)), 5)
	for i := range b.PolicyChosen {
		b.PolicyChosen[i] -= 0.01
		b.PolicyRejected[i] -= 0.01
	}
	r, _ := ORPO{Beta: 1}.Loss(b)
	sw := Batch{PolicyChosen: b.PolicyRejected, PolicyRejected: b.PolicyChosen, ChosenLen: b.RejectedLen, RejectedLen: b.ChosenLen}
	s, _ := ORPO{Beta: 1}.Loss(sw)
	if math.Abs(r.Stats.LogOddsChosen+s.Stats.LogOddsChosen) > 1e-12 {
		t.Errorf("log OR %v, swapped %v", r.Stats.LogOddsChosen, s.Stats.LogOddsChosen)
	}
	c, _ := CPO{Beta: 2.5, SimPO: true, Gamma: 1}.Loss(b)
	want, _ := SimPO{Beta: 2.5, Gamma: 1}.Loss(b)
	if math.Abs(c.Loss-want.Loss) > 1e-14 {
		t.Errorf("CPO-SimPO(α=0) = %v, SimPO = %v", c.Loss, want.Loss)
	}
	for i := range c.GradChosen {
		if math.Abs(c.GradChosen[i]-want.GradChosen[i]) > 1e-15 || math.Abs(c.GradRejected[i]-want.GradRejected[i]) > 1e-15 {
			t.Errorf("CPO-SimPO grad %d differs from SimPO", i)
		}
	}
}

func TestORPOCPOErrors(t *testing.T) {
	good := torchtuneBatch()
	zero := torchtuneBatch()
	zero.PolicyRejected = []float64{-1, 0, -2}
	noLen := torchtuneBatch()
	noLen.RejectedLen = nil
	emptyCompletion := torchtuneBatch()
	emptyCompletion.RejectedLen = []int{3, 0, 1}
	for _, c := range []struct {
		name string
		o    Objective
		b    Batch
		want string
	}{
		{"orpo beta", ORPO{}, good, "Beta"},
		{"orpo certain", ORPO{Beta: 0.1}, zero, "PolicyRejected[1] = 0"},
		{"orpo no len", ORPO{Beta: 0.1}, noLen, "RejectedLen"},
		{"orpo empty", ORPO{Beta: 0.1}, Batch{}, "empty"},
		{"cpo eps", CPO{Beta: 0.1, LabelSmoothing: 0.6}, good, "LabelSmoothing"},
		{"cpo alpha", CPO{Beta: 0.1, Alpha: math.NaN()}, good, "Alpha"},
		{"cpo gamma without simpo", CPO{Beta: 0.1, Gamma: 1}, good, "Gamma"},
		{"cpo simpo no len", CPO{Beta: 0.1, SimPO: true}, noLen, "RejectedLen"},
		{"orpo empty completion", ORPO{Beta: 0.1}, emptyCompletion, "RejectedLen[1] = 0"},
		{"cpo simpo empty completion", CPO{Beta: 0.1, SimPO: true}, emptyCompletion, "RejectedLen[1] = 0"},
		{"sft empty completions", SFT{}, Batch{PolicyChosen: []float64{0}, PolicyRejected: []float64{-1}, ChosenLen: []int{0}}, "ChosenLen[0] = 0"},
	} {
		_, err := c.o.Loss(c.b)
		checkErr(t, c.name, err, c.want)
	}
	// Summed CPO without NLL needs no lengths at all.
	if _, err := (CPO{Beta: 0.1}).Loss(Batch{PolicyChosen: []float64{-1}, PolicyRejected: []float64{-2}}); err != nil {
		t.Errorf("CPO without lengths: %v", err)
	}
}

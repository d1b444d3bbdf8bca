package prefopt

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/posttrain/posttrain/tensor"
)

// golden mirrors testdata/golden.json, written by testdata/gen_golden.py
// (torch autograd, TRL's loss formulas).
type golden struct {
	Batches map[string]struct {
		PC, PR, RC, RR []float64
		LC, LR         []int
	}
	Pairwise []struct {
		Batch string
		Kind  struct {
			Name                       string
			Beta, Eps, Tau, Gamma, NLL float64
			Sum                        bool
		}
		PerPair          []float64 `json:"per_pair"`
		Loss             float64
		GradChosen       []float64 `json:"grad_chosen"`
		GradRejected     []float64 `json:"grad_rejected"`
		RewardsChosen    float64   `json:"rewards_chosen"`
		RewardsRejected  float64   `json:"rewards_rejected"`
		Margin, Accuracy float64
		LogPChosen       float64 `json:"logp_chosen"`
		LogPRejected     float64 `json:"logp_rejected"`
		NLLValue         float64 `json:"nll"`
	}
	Reward struct {
		Chosen, Rejected, Margin []float64
		Levels                   []string
		BT                       rmGolden `json:"bt"`
		BTMargin                 rmGolden `json:"bt_margin"`
		Soft                     rmGolden `json:"soft"`
		Grading                  struct {
			Logits []float64
			Shape  []int
			Labels []int32
			Lam    float64
			Loss   float64
			Grad   []float64
		}
	}
	Online struct {
		Rewards, Logp, Adv, Baseline, Shaped []float64
		OldLogp                              []float64 `json:"old_logp"`
		RefLogp                              []float64 `json:"ref_logp"`
		ShapedBeta                           float64   `json:"shaped_beta"`
		GRPOk3                               []float64 `json:"grpo_k3"`
		GRPOk4                               []float64 `json:"grpo_k4"`
		PPO02                                ppoGolden `json:"ppo_eps0.2"`
		PPO01                                ppoGolden `json:"ppo_eps0.1"`
		K1, K2, K3                           lossGrad
		ReinforceMean                        lossGrad `json:"reinforce_mean"`
		ReinforceBase                        lossGrad `json:"reinforce_base"`
	}
	Tokens struct {
		Small, Stress tokenGolden
		Sequence      struct {
			Width     int
			PromptLen []int `json:"prompt_len"`
			Len       []int
			TokenLogp []float64 `json:"token_logp"`
			Sum, Mean []float64
		}
	}
}

type rmGolden struct {
	Loss         float64
	GradChosen   []float64 `json:"grad_chosen"`
	GradRejected []float64 `json:"grad_rejected"`
}

type ppoGolden struct {
	Loss, Clipfrac float64
	ApproxKL       float64 `json:"approx_kl"`
	Grad           []float64
}

type lossGrad struct {
	Loss float64
	Grad []float64
}

type tokenGolden struct {
	Shape  []int
	Logits []float64
	Labels []int32 `json:"targets"`
	Logp   []float64
	Dlogp  []float64
	Grad   []float64
}

func loadGolden(t *testing.T) *golden {
	t.Helper()
	b, err := os.ReadFile("testdata/golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return &g
}

func torchtuneBatch() Batch {
	return Batch{
		PolicyChosen:   []float64{-0.5, -10, -1},
		PolicyRejected: []float64{-0.1, -30, -21},
		RefChosen:      []float64{-0.5, -10.1, -0.1},
		RefRejected:    []float64{-0.1, -20.1, -0.1},
		ChosenLen:      []int{1, 4, 2},
		RejectedLen:    []int{3, 5, 7},
	}
}

// Goldens are compared with assert.InDelta at tol·(1 + |want|): relative
// for values above 1, absolute below.

func TestGoldenPairwise(t *testing.T) {
	g := loadGolden(t)
	for _, c := range g.Pairwise {
		k := c.Kind
		t.Run(fmt.Sprintf("%s/%s %+v", c.Batch, k.Name, k), func(t *testing.T) {
			var o Objective
			switch k.Name {
			case "dpo":
				o = DPO{Beta: k.Beta, LabelSmoothing: k.Eps}
			case "robust":
				o = RobustDPO{Beta: k.Beta, LabelSmoothing: k.Eps}
			case "ipo":
				o = IPO{Tau: k.Tau, SumLogProbs: k.Sum}
			case "hinge":
				o = Hinge{Beta: k.Beta}
			case "simpo":
				o = SimPO{Beta: k.Beta, Gamma: k.Gamma}
			default:
				t.Fatalf("unknown kind %q", k.Name)
			}
			if k.NLL > 0 {
				o = WithNLL{Objective: o, Alpha: k.NLL}
			}
			gb, ok := g.Batches[c.Batch]
			if !ok {
				t.Fatalf("no batch %q", c.Batch)
			}
			b := Batch{gb.PC, gb.PR, gb.RC, gb.RR, gb.LC, gb.LR}
			r, err := o.Loss(b)
			require.NoError(t, err)
			const tol = 1e-12
			assert.InDelta(t, c.Loss, r.Loss, tol*(1+math.Abs(c.Loss)), "loss")
			for i := range c.GradChosen {
				assert.InDelta(t, c.GradChosen[i], r.GradChosen[i], tol*(1+math.Abs(c.GradChosen[i])), "pair %d dL/dchosen", i)
				assert.InDelta(t, c.GradRejected[i], r.GradRejected[i], tol*(1+math.Abs(c.GradRejected[i])), "pair %d dL/drejected", i)
			}
			s := r.Stats
			for _, f := range []struct {
				name      string
				got, want float64
			}{
				{"rewards/chosen", s.RewardsChosen, c.RewardsChosen},
				{"rewards/rejected", s.RewardsRejected, c.RewardsRejected},
				{"rewards/margins", s.Margin, c.Margin},
				{"rewards/accuracies", s.Accuracy, c.Accuracy},
				{"logps/chosen", s.LogPChosen, c.LogPChosen},
				{"logps/rejected", s.LogPRejected, c.LogPRejected},
				{"nll_loss", s.NLL, c.NLLValue},
			} {
				assert.InDelta(t, f.want, f.got, 1e-12*(1+math.Abs(f.want)), "%s", f.name)
			}
		})
	}
}

func TestGoldenReward(t *testing.T) {
	g := loadGolden(t).Reward
	levels := make([]Level, len(g.Levels))
	for i, s := range g.Levels {
		if err := levels[i].UnmarshalText([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name string
		f    func() (Result, error)
		want rmGolden
	}{
		{"BradleyTerry", func() (Result, error) { return BradleyTerry(g.Chosen, g.Rejected, nil) }, g.BT},
		{"BradleyTerry margin", func() (Result, error) { return BradleyTerry(g.Chosen, g.Rejected, g.Margin) }, g.BTMargin},
		{"SoftRanking", func() (Result, error) { return SoftRanking(g.Chosen, g.Rejected, levels) }, g.Soft},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, err := c.f()
			require.NoError(t, err)
			want := c.want
			assert.InDelta(t, want.Loss, r.Loss, 1e-12*(1+math.Abs(want.Loss)), "loss")
			for i := range want.GradChosen {
				assert.InDelta(t, want.GradChosen[i], r.GradChosen[i], 1e-12*(1+math.Abs(want.GradChosen[i])), "pair %d dL/dchosen", i)
				assert.InDelta(t, want.GradRejected[i], r.GradRejected[i], 1e-12*(1+math.Abs(want.GradRejected[i])), "pair %d dL/drejected", i)
			}
		})
	}

	t.Run("Grading", func(t *testing.T) {
		gr := g.Grading
		logits := tensor.New(gr.Shape...)
		for i, x := range gr.Logits {
			logits.Data()[i] = float32(x)
		}
		grad := tensor.New(gr.Shape...)
		loss, err := Grading(grad, logits, gr.Labels, gr.Lam)
		if err != nil {
			t.Fatal(err)
		}
		assert.InDelta(t, gr.Loss, loss, 1e-6*(1+math.Abs(gr.Loss)), "Grading: loss %v, want %v", loss, gr.Loss)
		for i, w := range gr.Grad {
			if math.Abs(float64(grad.Data()[i])-w) > 1e-6 {
				t.Errorf("Grading: grad[%d] = %v, want %v", i, grad.Data()[i], w)
			}
		}
	})
}

func TestGoldenOnline(t *testing.T) {
	g := loadGolden(t).Online
	// Every value is compared to 1e-12 relative (with 1 added to the
	// scale): float64 arithmetic in a different order from NumPy's.
	near := func(t *testing.T, name string, got, want []float64, tol float64) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %d values, want %d", name, len(got), len(want))
		}
		for i := range want {
			assert.InDelta(t, want[i], got[i], tol*(1+math.Abs(want[i])), "%s[%d] = %v, want %v", name, i, got[i], want[i])
		}
	}
	for _, c := range []struct {
		k    int
		want []float64
	}{{3, g.GRPOk3}, {4, g.GRPOk4}} {
		t.Run(fmt.Sprintf("GRPO/k=%d", c.k), func(t *testing.T) {
			adv, err := GRPO(g.Rewards, c.k, 1e-4)
			require.NoError(t, err)
			near(t, "adv", adv, c.want, 1e-12)
		})
	}
	for _, c := range []struct {
		eps  float64
		want ppoGolden
	}{{0.2, g.PPO02}, {0.1, g.PPO01}} {
		t.Run(fmt.Sprintf("PPOClip/eps=%v", c.eps), func(t *testing.T) {
			r, err := PPOClip(g.Logp, g.OldLogp, g.Adv, c.eps)
			require.NoError(t, err)
			near(t, "loss, clipfrac, approx KL", []float64{r.Loss, r.ClipFrac, r.ApproxKL}, []float64{c.want.Loss, c.want.Clipfrac, c.want.ApproxKL}, 1e-12)
			near(t, "grad", r.Grad, c.want.Grad, 1e-12)
		})
	}
	for _, c := range []struct {
		est  KLEstimator
		want lossGrad
	}{{K1, g.K1}, {K2, g.K2}, {K3, g.K3}} {
		t.Run("KL/"+c.est.String(), func(t *testing.T) {
			r, err := KL(c.est, g.Logp, g.RefLogp)
			require.NoError(t, err)
			near(t, "loss", []float64{r.Loss}, []float64{c.want.Loss}, 1e-12)
			near(t, "grad", r.Grad, c.want.Grad, 1e-12)
		})
	}
	for _, c := range []struct {
		name string
		base []float64
		want lossGrad
	}{{"mean baseline", nil, g.ReinforceMean}, {"given baseline", g.Baseline, g.ReinforceBase}} {
		t.Run("Reinforce/"+c.name, func(t *testing.T) {
			r, err := Reinforce(g.Logp, g.Adv, c.base)
			require.NoError(t, err)
			near(t, "loss", []float64{r.Loss}, []float64{c.want.Loss}, 1e-12)
			near(t, "grad", r.Grad, c.want.Grad, 1e-12)
		})
	}
	t.Run("ShapeRewards", func(t *testing.T) {
		shaped, err := ShapeRewards(g.Adv, g.OldLogp, g.RefLogp, g.ShapedBeta)
		require.NoError(t, err)
		near(t, "shaped", shaped, g.Shaped, 1e-12)
	})
}

func TestGoldenTokens(t *testing.T) {
	g := loadGolden(t).Tokens
	for _, tc := range []struct {
		name string
		c    tokenGolden
	}{{"small", g.Small}, {"stress", g.Stress}} {
		name, c := tc.name, tc.c
		t.Run(name, func(t *testing.T) {
			logits := tensor.New(c.Shape...)
			for i, x := range c.Logits {
				logits.Data()[i] = float32(x)
			}
			lp := make([]float32, c.Shape[0])
			if err := TokenLogProbs(lp, logits, c.Labels); err != nil {
				t.Fatal(err)
			}
			// float32 log-probs: within a few ulp of the logit scale.
			scale := float64(tensor.Max(logits.Data()))
			tol := 1e-6 * math.Max(1, math.Abs(scale))
			for i, w := range c.Logp {
				if math.Abs(float64(lp[i])-w) > tol {
					t.Errorf("%s: logp[%d] = %v, want %v", name, i, lp[i], w)
				}
			}
			dl := make([]float32, len(c.Dlogp))
			for i, x := range c.Dlogp {
				dl[i] = float32(x)
			}
			grad := tensor.New(c.Shape...)
			if err := TokenLogProbsBackward(grad, logits, c.Labels, dl); err != nil {
				t.Fatal(err)
			}
			for i, w := range c.Grad {
				if math.Abs(float64(grad.Data()[i])-w) > 1e-6 {
					t.Errorf("%s: grad[%d] = %v, want %v", name, i, grad.Data()[i], w)
				}
			}
		})
	}
	s := g.Sequence
	l := Layout{Width: s.Width, PromptLen: s.PromptLen, Len: s.Len}
	tok := make([]float32, len(s.TokenLogp))
	for i, x := range s.TokenLogp {
		tok[i] = float32(x)
	}
	for _, avg := range []bool{false, true} {
		t.Run(fmt.Sprintf("SequenceLogProbs/average=%v", avg), func(t *testing.T) {
			want := s.Sum
			if avg {
				want = s.Mean
			}
			got := make([]float64, len(l.Len))
			if err := SequenceLogProbs(got, tok, l, avg); err != nil {
				t.Fatal(err)
			}
			for b := range want {
				assert.InDelta(t, want[b], got[b], 1e-12*(1+math.Abs(want[b])), "SequenceLogProbs(average=%v)[%d] = %v, want %v", avg, b, got[b], want[b])
			}
		})
	}
}

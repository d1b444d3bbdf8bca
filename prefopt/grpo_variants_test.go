package prefopt

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type grpoGolden struct {
	K             int
	Lens          []int
	RewardFuncs   [][]float64 `json:"reward_funcs"`
	RewardWeights []float64   `json:"reward_weights"`
	Rewards       []float64
	Adv           map[string][]float64
	Logp          []float64
	OldLogp       []float64 `json:"old_logp"`
	RefLogp       []float64 `json:"ref_logp"`
	Cases         []struct {
		Kind struct {
			LossType string `json:"loss_type"`
			Level    string
			EpsLow   float64 `json:"eps_low"`
			EpsHigh  float64 `json:"eps_high"`
			Beta     float64
			Scale    string
			Delta    float64
			MaxLen   int `json:"max_len"`
			NumItems int `json:"num_items"`
		}
		Loss, KL   float64
		Grad       []float64
		ClipLow    float64 `json:"clip_low"`
		ClipHigh   float64 `json:"clip_high"`
		ClipRegion float64 `json:"clip_region"`
	}
}

func parseLossType(t *testing.T, s string) GRPOLossType {
	t.Helper()
	for lt := LossGRPO; lt <= LossCISPO; lt++ {
		if lt.String() == s {
			return lt
		}
	}
	t.Fatalf("unknown loss type %q", s)
	return 0
}

func TestGoldenGRPOVariants(t *testing.T) {
	g := loadObjGolden(t).GRPO
	if len(g.Cases) == 0 {
		t.Fatal("no GRPO goldens")
	}
	rewards, err := WeightedRewards(g.RewardFuncs, g.RewardWeights)
	if err != nil {
		t.Fatal(err)
	}
	for i := range rewards {
		assert.InDelta(t, g.Rewards[i], rewards[i], 1e-14*(1+math.Abs(g.Rewards[i])), "WeightedRewards[%d] = %v, want %v", i, rewards[i], g.Rewards[i])
	}
	adv := map[string][]float64{}
	for _, s := range []RewardScale{ScaleGroup, ScaleBatch, ScaleNone} {
		a, err := GroupAdvantages(rewards, g.K, s)
		if err != nil {
			t.Fatal(err)
		}
		want := g.Adv[s.String()]
		for i := range want {
			assert.InDelta(t, want[i], a[i], 1e-12*(1+math.Abs(want[i])), "GroupAdvantages(%v)[%d] = %v, want %v", s, i, a[i], want[i])
		}
		adv[s.String()] = a
	}
	dec, err := DecoupledAdvantages(g.RewardFuncs, g.RewardWeights, g.K)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range g.Adv["decoupled"] {
		assert.InDelta(t, want, dec[i], 1e-12*(1+math.Abs(want)), "DecoupledAdvantages[%d] = %v, want %v", i, dec[i], want)
	}
	for _, c := range g.Cases {
		k := c.Kind
		o := GRPOLoss{Type: parseLossType(t, k.LossType), EpsLow: k.EpsLow, EpsHigh: k.EpsHigh, Beta: k.Beta,
			Delta: k.Delta, MaxCompletionLen: k.MaxLen, NumItems: k.NumItems}
		if k.Level == "sequence" {
			o.Level = SequenceLevel
		}
		r := Rollout{Logp: g.Logp, OldLogp: g.OldLogp, RefLogp: g.RefLogp, Len: g.Lens, Adv: adv[k.Scale]}
		name := k.LossType + "/" + k.Level
		t.Run(name, func(t *testing.T) {
			res, err := o.Loss(r)
			require.NoError(t, err)
			assert.InDelta(t, c.Loss, res.Loss, 1e-12*(1+math.Abs(c.Loss)), "%s %+v: loss %v, want %v", name, k, res.Loss, c.Loss)
			for i := range c.Grad {
				assert.InDelta(t, c.Grad[i], res.Grad[i], 1e-12*(1+math.Abs(c.Grad[i])), "%s %+v: grad[%d] = %v, want %v", name, k, i, res.Grad[i], c.Grad[i])
			}
			for _, f := range []struct {
				name      string
				got, want float64
			}{
				{"kl", res.KL, c.KL}, {"clip_ratio/low_mean", res.ClipLow, c.ClipLow},
				{"clip_ratio/high_mean", res.ClipHigh, c.ClipHigh}, {"clip_ratio/region_mean", res.ClipRegion, c.ClipRegion},
			} {
				if f.name == "kl" && k.Beta == 0 {
					continue // TRL logs kl only with a KL penalty
				}
				if f.name == "clip_ratio/region_mean" && o.Type == LossCISPO {
					f.want = c.ClipHigh // TRL logs only cispo_clip_ratio
				}
				assert.InDelta(t, f.want, f.got, 1e-12*(1+math.Abs(f.want)), "%s %+v: %s = %v, want %v", name, k, f.name, f.got, f.want)
			}
		})
	}
}

func randRollout(rng *rand.Rand, b int) Rollout {
	r := Rollout{Len: make([]int, b), Adv: make([]float64, b)}
	for i := range b {
		r.Len[i] = 1 + rng.IntN(5)
		r.Adv[i] = 2*rng.Float64() - 1
		for range r.Len[i] {
			lp := -3 * rng.Float64()
			r.Logp = append(r.Logp, lp)
			r.OldLogp = append(r.OldLogp, lp+0.6*rng.Float64()-0.3)
			r.RefLogp = append(r.RefLogp, lp+rng.Float64()-0.5)
		}
	}
	return r
}

func TestGRPOVariantsFiniteDifferences(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	// CISPO's ratio is a stop-gradient, which finite differences cannot
	// see: its gradient is checked against torch and TestCISPOOnPolicy.
	for lt := LossGRPO; lt <= LossDAPO; lt++ {
		for _, level := range []ImportanceLevel{TokenLevel, SequenceLevel} {
			o := GRPOLoss{Type: lt, Level: level, EpsLow: 0.1, EpsHigh: 0.15, Beta: 0.07, MaxCompletionLen: 8, NumItems: 50}
			r := randRollout(rng, 6)
			res, err := o.Loss(r)
			if err != nil {
				t.Fatal(err)
			}
			const h = 1e-6
			for i := range r.Logp {
				x0 := r.Logp[i]
				r.Logp[i] = x0 + h
				up, err1 := o.Loss(r)
				r.Logp[i] = x0 - h
				dn, err2 := o.Loss(r)
				r.Logp[i] = x0
				if err1 != nil || err2 != nil {
					t.Fatal(err1, err2)
				}
				fd := (up.Loss - dn.Loss) / (2 * h)
				if math.Abs(fd-res.Grad[i]) > 1e-7*(1+math.Abs(fd)) {
					t.Errorf("%v/%d: grad[%d] = %v, finite difference %v", lt, level, i, res.Grad[i], fd)
				}
			}
		}
	}
}

// CISPO's gradient is REINFORCE weighted by the detached clipped ratio:
// on-policy (old = new, ratio 1 ≤ ε_high) it is exactly −A·w per token.
func TestCISPOOnPolicy(t *testing.T) {
	r := Rollout{Logp: []float64{-1, -2, -0.5}, Len: []int{2, 1}, Adv: []float64{0.5, -2}}
	res, err := GRPOLoss{Type: LossCISPO, EpsHigh: 5}.Loss(r)
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{-0.5 / 3, -0.5 / 3, 2.0 / 3}
	for i := range want {
		if math.Abs(res.Grad[i]-want[i]) > 1e-15 {
			t.Errorf("grad[%d] = %v, want %v", i, res.Grad[i], want[i])
		}
	}
	if wl := -(0.5*(-1-2) - 2*(-0.5)) / 3; math.Abs(res.Loss-wl) > 1e-15 {
		t.Errorf("loss %v, want %v", res.Loss, wl)
	}
}

// GSPO's sequence ratio is the token ratio when every completion has one
// token: the two levels agree exactly, for every loss type.
func TestGSPOOneTokenIsGRPO(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 24))
	r := randRollout(rng, 8)
	var lp, old, ref []float64
	for i := range r.Len {
		r.Len[i] = 1
		lp = append(lp, -3*rng.Float64())
		old = append(old, lp[i]+0.8*rng.Float64()-0.4)
		ref = append(ref, lp[i]+rng.Float64()-0.5)
	}
	r.Logp, r.OldLogp, r.RefLogp = lp, old, ref
	for lt := LossGRPO; lt <= LossCISPO; lt++ {
		o := GRPOLoss{Type: lt, EpsLow: 0.2, EpsHigh: 0.25, Beta: 0.05, MaxCompletionLen: 3}
		if lt == LossCISPO {
			o.EpsHigh = 1.1
		}
		tok, err := o.Loss(r)
		if err != nil {
			t.Fatal(err)
		}
		o.Level = SequenceLevel
		seq, err := o.Loss(r)
		if err != nil {
			t.Fatal(err)
		}
		if tok.Loss != seq.Loss || tok.ClipRegion != seq.ClipRegion || tok.ClipHigh != seq.ClipHigh {
			t.Errorf("%v: token %+v, sequence %+v", lt, tok, seq)
		}
		for i := range tok.Grad {
			if tok.Grad[i] != seq.Grad[i] {
				t.Errorf("%v: grad[%d] token %v, sequence %v", lt, i, tok.Grad[i], seq.Grad[i])
			}
		}
	}
	// With a single sequence and no clipping, GRPO, BNPO and DAPO agree.
	one := Rollout{Logp: []float64{-1, -2, -3}, Len: []int{3}, Adv: []float64{1}}
	var losses []float64
	for _, lt := range []GRPOLossType{LossGRPO, LossBNPO, LossDAPO} {
		res, err := GRPOLoss{Type: lt, EpsLow: 0.2}.Loss(one)
		if err != nil {
			t.Fatal(err)
		}
		losses = append(losses, res.Loss)
	}
	if losses[0] != -1 || losses[1] != -1 || losses[2] != -1 {
		t.Errorf("one on-policy sequence, A = 1: losses %v, want −1 each", losses)
	}
}

// All-equal group rewards: zero advantages, exactly, at every scale, and
// so no policy gradient; DynamicSampling drops the group.
func TestFlatGroups(t *testing.T) {
	rewards := []float64{0.7, 0.7, 0.7, 1, 0, 1, 0.1, 0.1, 0.1}
	for _, s := range []RewardScale{ScaleGroup, ScaleBatch, ScaleNone} {
		adv, err := GroupAdvantages(rewards, 3, s)
		if err != nil {
			t.Fatal(err)
		}
		for _, i := range []int{0, 1, 2, 6, 7, 8} {
			if adv[i] != 0 {
				t.Errorf("%v: adv[%d] = %v, want exactly 0", s, i, adv[i])
			}
		}
		if adv[4] >= 0 || adv[3] <= 0 {
			t.Errorf("%v: middle group %v", s, adv[3:6])
		}
	}
	keep, err := DynamicSampling(rewards, 3)
	if err != nil || len(keep) != 1 || keep[0] != 1 {
		t.Errorf("DynamicSampling = %v, %v; want [1]", keep, err)
	}
	r := Rollout{Logp: []float64{-1, -2, -3}, OldLogp: []float64{-1.5, -2, -2}, Len: []int{1, 2}, Adv: []float64{0, 0}}
	res, err := GRPOLoss{Type: LossDAPO, EpsLow: 0.2, EpsHigh: 0.28}.Loss(r)
	if err != nil {
		t.Fatal(err)
	}
	for i, g := range res.Grad {
		if g != 0 {
			t.Errorf("flat group: grad[%d] = %v, want 0", i, g)
		}
	}
}

// Ratios of e^±1000: finite where the surrogate is finite (TRL's torch
// gives NaN gradients here, ∞·0 in the exp backward).
func TestGRPOVariantsStress(t *testing.T) {
	r := Rollout{Logp: []float64{-1, -1001, -1}, OldLogp: []float64{-1001, -1, -1}, Len: []int{1, 1, 1}, Adv: []float64{2, 3, -1}}
	res, err := GRPOLoss{Type: LossBNPO, EpsLow: 0.2}.Loss(r)
	if err != nil {
		t.Fatal(err)
	}
	// Token 0: ratio ∞, A = 2: clipped at 1.2·2. Token 1: ratio 0, A = 3:
	// unclipped 0. Token 2: ratio 1, A = −1.
	if want := (-2.4 - 0 + 1) / 3; math.Abs(res.Loss-want) > 1e-15 {
		t.Errorf("loss %v, want %v", res.Loss, want)
	}
	for i, w := range []float64{0, 0, 1.0 / 3} {
		if res.Grad[i] != w {
			t.Errorf("grad[%d] = %v, want %v", i, res.Grad[i], w)
		}
	}
	r.Adv[0] = -2
	if _, err := (GRPOLoss{Type: LossBNPO, EpsLow: 0.2}).Loss(r); err == nil || !strings.Contains(err.Error(), "overflows") {
		t.Errorf("overflowing ratio with A < 0: %v", err)
	}
	// GSPO over a long sequence: the ratio is a mean, so a 1000-nat gap on
	// one token of 1000 is a ratio of e.
	long := Rollout{Len: []int{1000}, Adv: []float64{1}}
	for range 1000 {
		long.Logp = append(long.Logp, -1)
		long.OldLogp = append(long.OldLogp, -1)
	}
	long.OldLogp[0] = -1001
	res, err = GRPOLoss{Type: LossGRPO, Level: SequenceLevel, EpsLow: 0.2, EpsHigh: 2}.Loss(long)
	if err != nil {
		t.Fatal(err)
	}
	if want := -math.E; math.Abs(res.Loss-want) > 1e-12 {
		t.Errorf("GSPO long sequence: loss %v, want %v", res.Loss, want)
	}
}

func TestGRPOVariantsErrors(t *testing.T) {
	good := Rollout{Logp: []float64{-1, -2, -3}, Len: []int{1, 2}, Adv: []float64{1, -1}}
	for _, c := range []struct {
		name string
		o    GRPOLoss
		r    Rollout
		want string
	}{
		{"type", GRPOLoss{EpsLow: 0.2}, good, "unknown loss type"},
		{"level", GRPOLoss{Type: LossGRPO, Level: 7, EpsLow: 0.2}, good, "importance level"},
		{"eps", GRPOLoss{Type: LossGRPO}, good, "EpsLow"},
		{"eps high", GRPOLoss{Type: LossGRPO, EpsLow: 0.2, EpsHigh: -1}, good, "EpsHigh"},
		{"cispo cap", GRPOLoss{Type: LossCISPO}, good, "EpsHigh"},
		{"delta", GRPOLoss{Type: LossGRPO, EpsLow: 0.2, Delta: 0.5}, good, "Delta"},
		{"beta", GRPOLoss{Type: LossGRPO, EpsLow: 0.2, Beta: -1}, good, "Beta"},
		{"no ref", GRPOLoss{Type: LossGRPO, EpsLow: 0.2, Beta: 0.1}, good, "RefLogp"},
		{"empty", GRPOLoss{Type: LossGRPO, EpsLow: 0.2}, Rollout{}, "empty batch"},
		{"empty completion", GRPOLoss{Type: LossGRPO, EpsLow: 0.2}, Rollout{Logp: []float64{-1}, Len: []int{1, 0}, Adv: []float64{1, 1}}, "Len[1] = 0: empty completion"},
		{"ragged", GRPOLoss{Type: LossGRPO, EpsLow: 0.2}, Rollout{Logp: []float64{-1}, Len: []int{2}, Adv: []float64{1}}, "Logp has 1 entries, want 2"},
		{"adv", GRPOLoss{Type: LossGRPO, EpsLow: 0.2}, Rollout{Logp: []float64{-1}, Len: []int{1}, Adv: []float64{math.NaN()}}, "Adv[0]"},
		{"dr len", GRPOLoss{Type: LossDrGRPO, EpsLow: 0.2, MaxCompletionLen: 1}, good, "MaxCompletionLen"},
		{"num items", GRPOLoss{Type: LossDAPO, EpsLow: 0.2, NumItems: 2}, good, "NumItems"},
	} {
		_, err := c.o.Loss(c.r)
		checkErr(t, c.name, err, c.want)
	}
	if _, err := GroupAdvantages([]float64{1, 2, 3}, 2, ScaleBatch); err == nil {
		t.Error("GroupAdvantages: ragged groups accepted")
	}
	if _, err := GroupAdvantages([]float64{1, 2}, 2, 9); err == nil {
		t.Error("GroupAdvantages: unknown scale accepted")
	}
	if _, err := WeightedRewards([][]float64{{1, 2}, {1}}, nil); err == nil {
		t.Error("WeightedRewards: ragged accepted")
	}
	if _, err := WeightedRewards([][]float64{{1, 2}}, []float64{1, 2}); err == nil {
		t.Error("WeightedRewards: extra weight accepted")
	}
	if _, err := GroupAdvantages([]float64{1e300, -1e300}, 2, ScaleNone); err == nil || !strings.Contains(err.Error(), "rewards[0]") {
		t.Errorf("GroupAdvantages: huge rewards: %v", err)
	}
	if _, err := WeightedRewards([][]float64{{1e308}, {1e308}}, nil); err == nil || !strings.Contains(err.Error(), "overflows") {
		t.Errorf("WeightedRewards: overflow: %v", err)
	}
	if _, err := DecoupledAdvantages([][]float64{{1, 2}, {1, 2, 3}}, nil, 2); err == nil || !strings.Contains(err.Error(), "reward function 1") {
		t.Errorf("DecoupledAdvantages: ragged function: %v", err)
	}
	if adv, err := DecoupledAdvantages([][]float64{{1, 1, 2, 2}, {0, 0, 5, 5}}, nil, 2); err != nil || adv[0] != 0 || adv[3] != 0 {
		t.Errorf("DecoupledAdvantages: flat groups: %v, %v", adv, err)
	}
	if _, err := DynamicSampling([]float64{1, 2, 3}, 2); err == nil {
		t.Error("DynamicSampling: ragged accepted")
	}
}

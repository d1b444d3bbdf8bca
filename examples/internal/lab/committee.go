package lab

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/posttrain/posttrain/itec"
	"github.com/posttrain/posttrain/mirrordescent"
	"github.com/posttrain/posttrain/prefopt"
	"github.com/posttrain/posttrain/recipe"
	"github.com/posttrain/posttrain/tensor/nn"
)

// CommitteeConfig sets the byte-level recipe.Committee of the examples:
// the trainers' settings, the oracle's held-out evaluation, and progress
// bars.
type CommitteeConfig struct {
	Dir  string    // member and reward-model checkpoints
	Body *nn.Model // every refreshed reward model starts from a copy
	Len  int       // bytes per sampled response

	TuneSteps     int     // rejection-sampling (SFT), DPO and IPO steps per member
	SFTLR, PrefLR float64 // their learning rates (constant)
	RLIters       int     // MDLOO iterations per member
	RLPrompts     int     // prompts per iteration
	RLLR          float64
	RewardSteps   int
	RewardLR      float64 // peak; warmup over a tenth of the steps, cosine to a tenth

	EvalPrompts []string // held-out prompts of the oracle's evaluation
	EvalSamples int
	Seed        uint64
	Bars        io.Writer // progress bars of training (nil: none)
}

// NewCommittee returns the Committee of c over bytes: members
// sample with ByteSampling; rejection sampling fine-tunes with recipe.SFT,
// DPO (β = 0.1) and IPO (τ = 1) with recipe.Preference, online RL with
// recipe.Online and MDLOO; reward models are a copy of Body with a score
// head on the mean of the response's hidden states, trained with AFM's
// soft-label loss; a member's evaluation is the oracle's mean reward on
// the held-out prompts, with the same seeds for every member.
func NewCommittee(c CommitteeConfig, testPairs []prefopt.Pair) *Committee {
	tune := func(lr float64) recipe.Config {
		return recipe.Config{Steps: c.TuneSteps, Batch: 16, LR: lr, MinLR: lr, ClipNorm: 1}
	}
	md := mirrordescent.DefaultMDLOO()
	rl := RLConfig{MDLOO: md, Iters: c.RLIters, Prompts: c.RLPrompts, Len: c.Len, LR: c.RLLR}
	var bar Bar
	var run string
	return &Committee{TestPairs: testPairs, Committee: &recipe.Committee{
		Dir: c.Dir, Tokenizer: recipe.Bytes{}, Sampling: ByteSampling(c.Len), RewardBody: c.Body,
		SFT: tune(c.SFTLR), Pref: tune(c.PrefLR),
		Reward: recipe.Config{Steps: c.RewardSteps, Batch: 16, LR: c.RewardLR, MinLR: c.RewardLR / 10, Warmup: max(1, c.RewardSteps/10),
			ClipNorm: 1, WeightDecay: 0.01},
		DPO: prefopt.DPO{Beta: 0.1}, IPO: prefopt.IPO{Tau: 1},
		RewardLoss: recipe.SoftRanking, RewardPool: recipe.MeanCompletion,
		Online: *rl.Online(nil, nil, nil),
		Eval: func(ctx context.Context, g itec.Generator) (float64, error) {
			return OracleReward(ctx, g, c.EvalPrompts, c.EvalSamples, c.Seed^0xe7a1)
		},
		Callback: func(r string, _ recipe.Record) {
			if c.Bars == nil {
				return
			}
			if r != run {
				bar.Finish()
				total := c.TuneSteps
				switch {
				case strings.HasSuffix(r, "reward model"):
					total = c.RewardSteps
				case strings.HasSuffix(r, string(itec.OnlineRL)):
					total = c.RLIters
				}
				bar, run = NewBar(c.Bars, total, "  "+r), r
			}
			bar.Add(1)
		},
		Seed: c.Seed,
	}}
}

// Committee is a recipe.Committee that records the accuracy of every
// reward model it refreshes on held-out pairs.
type Committee struct {
	*recipe.Committee
	// TestPairs, if set, are held-out labeled pairs on which every
	// refreshed reward model's accuracy is recorded in RewardAcc.
	TestPairs []prefopt.Pair
	// RewardAcc is, per refresh, the reward model's Accuracy on
	// TestPairs (all pairs, and those labeled above negligibly better).
	RewardAcc [][2]float64
}

// Refresh implements itec.RewardTrainer: recipe.Committee's, then the
// new reward model's accuracy.
func (c *Committee) Refresh(ctx context.Context, round int, pairs []prefopt.Pair) (itec.Scorer, string, error) {
	s, ref, err := c.Committee.Refresh(ctx, round, pairs)
	if err != nil || len(c.TestPairs) == 0 {
		return s, ref, err
	}
	rm, ok := c.RewardModel(ref)
	if !ok {
		return nil, "", fmt.Errorf("lab: no reward model %s", ref)
	}
	all, dec, err := Accuracy(rm, c.TestPairs)
	if err != nil {
		return nil, "", err
	}
	c.RewardAcc = append(c.RewardAcc, [2]float64{all, dec})
	return s, ref, nil
}

package lab

import (
	"context"
	"fmt"

	"github.com/posttrain/posttrain/prefopt"
	"github.com/posttrain/posttrain/recipe"
	"github.com/posttrain/posttrain/tensor"
	"github.com/posttrain/posttrain/tensor/autograd"
	"github.com/posttrain/posttrain/tensor/nn"
)

// NewRewardModel starts a byte-level reward model from a copy of body:
// its final hidden states mean-pooled over the response, times a zero
// head.
func NewRewardModel(body *nn.TinyLM) *recipe.RewardModel {
	return &recipe.RewardModel{Body: body.Clone(), Head: autograd.Param(tensor.New(1, body.Config.DModel)), Pool: recipe.MeanCompletion}
}

// ScorePairs scores responses[i] to prompts[i] with r, in batches.
func ScorePairs(r *recipe.RewardModel, prompts, responses []string) ([]float64, error) {
	const per = 64
	out := make([]float64, 0, len(prompts))
	var tok nn.ByteTokenizer
	for i := 0; i < len(prompts); i += per {
		j := min(i+per, len(prompts))
		ps, rs := make([][]int32, j-i), make([][]int32, j-i)
		for k := i; k < j; k++ {
			ps[k-i], rs[k-i] = tok.Encode(prompts[k]), tok.Encode(responses[k])
		}
		s, err := recipe.NewSeqs(ps, rs, 0)
		if err != nil {
			return nil, err
		}
		sc, err := r.Scores(s)
		if err != nil {
			return nil, err
		}
		out = append(out, sc...)
	}
	return out, nil
}

// RewardConfig sets reward-model training.
type RewardConfig struct {
	Steps, Batch int
	LR           float64
	Seed         uint64
	// BradleyTerry trains with the hard-label Bradley–Terry loss instead of
	// AFM's soft-label ranking loss (a control).
	BradleyTerry bool
}

// TrainReward trains r on pairs with AFM's soft-label ranking loss
// (prefopt.SoftRanking) through recipe.Reward — warmup over a tenth of
// the steps, cosine to a tenth of LR — and returns the loss per step.
func TrainReward(ctx context.Context, r *recipe.RewardModel, pairs []prefopt.Pair, cfg RewardConfig, bar Bar) ([]float64, error) {
	if len(pairs) == 0 {
		return nil, fmt.Errorf("lab: no preference pairs to train a reward model on")
	}
	tp, err := recipe.TextPairs(recipe.Bytes{}, pairs)
	if err != nil {
		return nil, err
	}
	loss := recipe.SoftRanking
	if cfg.BradleyTerry {
		loss = recipe.BradleyTerry
	}
	rc := recipe.Config{Steps: cfg.Steps, Batch: cfg.Batch, LR: cfg.LR, MinLR: cfg.LR / 10, Warmup: max(1, cfg.Steps/10),
		ClipNorm: 1, WeightDecay: 0.01, Seed: cfg.Seed, Callback: func(recipe.Record) { bar.Add(1) }}
	h, err := (&recipe.Reward{Model: r, Loss: loss, Config: rc}).Train(ctx, tp, nil)
	return curve(h, "loss"), err
}

// Accuracy is the fraction of pairs whose chosen response r scores
// higher, over all pairs and over the pairs labeled above negligibly
// better (whose labels carry the task's signal, not a near tie).
func Accuracy(r *recipe.RewardModel, pairs []prefopt.Pair) (all, decided float64, err error) {
	ps := make([]string, 0, 2*len(pairs))
	rs := make([]string, 0, 2*len(pairs))
	for _, p := range pairs {
		ps = append(ps, p.Prompt, p.Prompt)
		rs = append(rs, p.Chosen, p.Rejected)
	}
	sc, err := ScorePairs(r, ps, rs)
	if err != nil {
		return 0, 0, err
	}
	var n, nd, ok, okd int
	for i, p := range pairs {
		win := sc[2*i] > sc[2*i+1]
		n++
		if win {
			ok++
		}
		if p.Level != prefopt.NegligiblyBetter {
			nd++
			if win {
				okd++
			}
		}
	}
	return float64(ok) / float64(max(n, 1)), float64(okd) / float64(max(nd, 1)), nil
}

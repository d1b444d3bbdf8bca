package lab

import (
	"context"
	"fmt"

	"github.com/posttrain/posttrain/prefopt"
	"github.com/posttrain/posttrain/recipe"
	"github.com/posttrain/posttrain/tensor/nn"
)

// TuneConfig sets a fine-tuning run on pairs or demonstrations.
type TuneConfig struct {
	Steps, Batch int
	LR           float64
	Seed         uint64
}

// config is c as a recipe.Config: a constant learning rate, no weight
// decay, the gradient norm clipped to 1, a bar tick per step.
func (c TuneConfig) config(bar Bar) recipe.Config {
	return recipe.Config{Steps: c.Steps, Batch: c.Batch, LR: c.LR, MinLR: c.LR, ClipNorm: 1, Seed: c.Seed,
		Callback: func(recipe.Record) { bar.Add(1) }}
}

// curve returns metric name of every training step of h.
func curve(h recipe.History, name string) []float64 {
	var out []float64
	for _, r := range h {
		if v, ok := r.Metrics[name]; ok {
			out = append(out, v)
		}
	}
	return out
}

// TrainPairs tunes policy on preference pairs with obj (DPO, IPO, SimPO,
// …), against ref's log-probs (ref may be nil for reference-free
// objectives), through recipe.Preference, and returns the loss and the
// implicit-reward accuracy per step.
func TrainPairs(ctx context.Context, policy, ref *nn.TinyLM, pairs []prefopt.Pair, obj prefopt.Objective, cfg TuneConfig, bar Bar) (loss, acc []float64, err error) {
	if len(pairs) == 0 {
		return nil, nil, fmt.Errorf("lab: no preference pairs")
	}
	tp, err := recipe.TextPairs(recipe.Bytes{}, pairs)
	if err != nil {
		return nil, nil, err
	}
	p := &recipe.Preference{Policy: policy, Ref: ref, Objective: obj, Config: cfg.config(bar)}
	h, err := p.Train(ctx, tp, nil)
	return curve(h, "loss"), curve(h, "rewards/accuracies"), err
}

// SFT tunes m to imitate responses[i] after prompts[i] through
// recipe.SFT (the mean per-token negative log-likelihood of the
// responses) and returns the loss per step.
func SFT(ctx context.Context, m *nn.TinyLM, prompts, responses []string, cfg TuneConfig, bar Bar) ([]float64, error) {
	if len(prompts) == 0 {
		return nil, fmt.Errorf("lab: no demonstrations")
	}
	xs := make([]recipe.Example, len(prompts))
	for i := range prompts {
		xs[i] = recipe.Example{Prompt: nn.ByteTokenizer{}.Encode(prompts[i]), Completion: nn.ByteTokenizer{}.Encode(responses[i]), Line: i + 1}
	}
	h, err := (&recipe.SFT{Model: m, Config: cfg.config(bar)}).Train(ctx, xs, nil)
	return curve(h, "loss"), err
}

package lab

import (
	"context"
	"fmt"

	"github.com/posttrain/posttrain/internal/parallel"
	"github.com/posttrain/posttrain/itec"
	"github.com/posttrain/posttrain/mirrordescent"
	"github.com/posttrain/posttrain/recipe"
	"github.com/posttrain/posttrain/tensor/nn"
)

// Sample draws n responses per prompt from pol (a Gen, any
// itec.Generator), in parallel over prompts, response j of prompt i with
// seed itec.Seed(seed, 0, i, 0, j): the result does not depend on the
// number of workers.
func Sample(ctx context.Context, pol itec.Generator, prompts []string, n int, seed uint64) ([][]string, error) {
	out := make([][]string, len(prompts))
	err := parallel.Each(ctx, len(prompts), 0, func(ctx context.Context, i int) error {
		seeds := make([]uint64, n)
		for j := range seeds {
			seeds[j] = itec.Seed(seed, 0, i, 0, j)
		}
		r, err := pol.Generate(ctx, prompts[i], seeds)
		out[i] = r
		return err
	})
	return out, err
}

// OracleReward is the oracle's mean reward over n samples per prompt.
func OracleReward(ctx context.Context, pol itec.Generator, prompts []string, n int, seed uint64) (float64, error) {
	rs, err := Sample(ctx, pol, prompts, n, seed)
	if err != nil {
		return 0, err
	}
	var s float64
	var o Oracle
	for _, r := range rs {
		for _, x := range r {
			s += o.Reward(x)
		}
	}
	return s / float64(len(prompts)*n), nil
}

// RLConfig sets an online-RL run of a byte-level policy.
type RLConfig struct {
	// MDLOO is AFM's algorithm and its settings; its K is the responses
	// per prompt of every algorithm.
	MDLOO mirrordescent.MDLOO
	// Algorithm, if set, replaces MDLOO (a control such as recipe.RLOO or
	// recipe.PPO).
	Algorithm recipe.Algorithm
	Iters     int // iterations (optimizer updates of the sampling policy)
	Prompts   int // prompts per iteration (each gets MDLOO.K responses)
	Len       int // bytes per response
	LR        float64
	Seed      uint64
	// EvalEvery evaluates the oracle reward on EvalPrompts (EvalSamples
	// each) before the first iteration, every this many iterations and
	// after the last (0: never).
	EvalEvery   int
	EvalPrompts []string
	EvalSamples int
}

// Online returns c as the recipe.Online of policy m against reward (with ref
// as the KL reference): a constant learning rate, no weight decay, the
// gradient norm clipped to 1.
func (c RLConfig) Online(m, ref *nn.Model, reward itec.Scorer) *recipe.Online {
	var alg recipe.Algorithm = recipe.MDLOO{MDLOO: c.MDLOO}
	if c.Algorithm != nil {
		alg = c.Algorithm
	}
	return &recipe.Online{Policy: m, Ref: ref, Reward: recipe.TextReward(recipe.Bytes{}, reward), Algorithm: alg, K: c.MDLOO.K,
		Sampling: ByteSampling(c.Len),
		Config:   recipe.Config{Steps: c.Iters, Batch: c.Prompts, LR: c.LR, MinLR: c.LR, ClipNorm: 1, Seed: c.Seed}}
}

// RLCurve records a run: the oracle reward on held-out prompts after the
// iterations EvalAt lists (0: before the first).
type RLCurve struct {
	EvalAt []int
	Eval   []float64
}

// RL runs online RL on m (recipe.Online) against reward (a reward model,
// or the oracle in a control), with ref as the KL reference, on prompts.
func RL(ctx context.Context, m, ref *nn.Model, reward itec.Scorer, prompts []string, cfg RLConfig, bar Bar) (RLCurve, error) {
	var c RLCurve
	gen := Gen(m, cfg.Len)
	var evalErr error
	eval := func(k int) {
		if evalErr != nil {
			return
		}
		r, err := OracleReward(ctx, gen, cfg.EvalPrompts, cfg.EvalSamples, cfg.Seed^0xe7a1)
		c.EvalAt, c.Eval, evalErr = append(c.EvalAt, k), append(c.Eval, r), err
	}
	if cfg.EvalEvery > 0 {
		eval(0)
	}
	o := cfg.Online(m, ref, reward)
	o.Config.Callback = func(r recipe.Record) {
		bar.Add(1)
		if cfg.EvalEvery > 0 && (r.Step%cfg.EvalEvery == 0 || r.Step == cfg.Iters) {
			eval(r.Step)
		}
	}
	tokens := make([][]int32, len(prompts))
	for i, p := range prompts {
		tokens[i] = nn.ByteTokenizer{}.Encode(p)
	}
	if _, err := o.Train(ctx, tokens); err != nil {
		return c, fmt.Errorf("lab: online RL: %w", err)
	}
	return c, evalErr
}

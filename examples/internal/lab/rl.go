package lab

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/posttrain/posttrain/internal/parallel"
	"github.com/posttrain/posttrain/itec"
	"github.com/posttrain/posttrain/mirrordescent"
	"github.com/posttrain/posttrain/tensor/autograd"
	"github.com/posttrain/posttrain/tensor/nn"
)

// Sample draws n responses per prompt from pol (a Policy, a
// recipe.Generator…), in parallel over prompts, response j of prompt i
// with seed itec.Seed(seed, 0, i, 0, j): the result does not depend on
// the number of workers.
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

// RLConfig sets an MDLOO run.
type RLConfig struct {
	MDLOO mirrordescent.MDLOO
	// Update, if set, replaces MDLOO's update of the policy on each
	// batch (a control such as RLOO or PPO-clip); MDLOO.K still sets the
	// responses per prompt.
	Update  func(ctx context.Context, k int, pol mirrordescent.Policy, scores, oldLP, refLP []float64) error
	Iters   int // MDLOO iterations
	Prompts int // prompts per iteration (each gets MDLOO.K responses)
	LR      float64
	Seed    uint64
	// EvalEvery evaluates the oracle reward on EvalPrompts (EvalSamples
	// each) every this many iterations and after the last (0: never).
	EvalEvery   int
	EvalPrompts []string
	EvalSamples int
}

// RLCurve records an MDLOO run: per iteration the mean reward-model score
// and the mean oracle reward of the batch's samples; at EvalAt the oracle
// reward on held-out prompts.
type RLCurve struct {
	Score, Oracle []float64
	EvalAt        []int
	Eval          []float64
}

// seqPolicy is one batch of responses seen as a mirrordescent.Policy.
type seqPolicy struct {
	m      *nn.TinyLM
	opt    *nn.AdamW
	s      Seqs
	t      *autograd.Tape
	logits *autograd.Var
}

func (p *seqPolicy) LogProbs(ctx context.Context, dst []float64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p.t.Reset()
	p.m.ZeroGrad()
	lp, logits, err := SeqLogProbs(p.t, p.m, p.s)
	if err != nil {
		return err
	}
	p.logits = logits
	copy(dst, lp)
	return nil
}

func (p *seqPolicy) Step(ctx context.Context, grad []float64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := SeqBackward(p.t, p.logits, p.s, grad); err != nil {
		return err
	}
	_, err := p.opt.Step()
	return err
}

// MDLOO runs AFM's online RL on pol.M against reward (a reward model, or
// the oracle in a control), with ref as the KL reference, drawing each
// iteration's prompts from prompts.
func MDLOO(ctx context.Context, pol Policy, ref *nn.TinyLM, reward itec.Scorer, prompts []string, cfg RLConfig, bar Bar) (RLCurve, error) {
	var c RLCurve
	o := cfg.MDLOO
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x41))
	sp := &seqPolicy{m: pol.M, t: autograd.NewTape()}
	sp.opt = nn.NewAdamW(pol.M.Params(), cfg.LR)
	sp.opt.ClipNorm = 1
	sp.opt.WeightDecay = 0
	var oracle Oracle
	eval := func(k int) error {
		r, err := OracleReward(ctx, pol, cfg.EvalPrompts, cfg.EvalSamples, cfg.Seed^0xe7a1)
		if err != nil {
			return err
		}
		c.EvalAt = append(c.EvalAt, k)
		c.Eval = append(c.Eval, r)
		return nil
	}
	if cfg.EvalEvery > 0 {
		if err := eval(0); err != nil {
			return c, err
		}
	}
	for k := 1; k <= cfg.Iters; k++ {
		batch := make([]string, cfg.Prompts)
		for i := range batch {
			batch[i] = prompts[rng.IntN(len(prompts))]
		}
		rs, err := Sample(ctx, pol, batch, o.K, cfg.Seed+uint64(k)*0x9e3779b97f4a7c15)
		if err != nil {
			return c, err
		}
		var ps, ys []string
		var scores []float64
		var so, oo float64
		for i, p := range batch {
			sc, err := reward.Score(ctx, p, rs[i])
			if err != nil {
				return c, err
			}
			for j, y := range rs[i] {
				ps = append(ps, p)
				ys = append(ys, y)
				scores = append(scores, sc[j])
				so += sc[j]
				oo += oracle.Reward(y)
			}
		}
		n := float64(len(ys))
		c.Score = append(c.Score, so/n)
		c.Oracle = append(c.Oracle, oo/n)
		oldLP, err := LogProbsOf(pol.M, ps, ys)
		if err != nil {
			return c, err
		}
		refLP, err := LogProbsOf(ref, ps, ys)
		if err != nil {
			return c, err
		}
		if sp.s, err = MakeSeqs(ps, ys); err != nil {
			return c, err
		}
		if cfg.Update != nil {
			err = cfg.Update(ctx, k, sp, scores, oldLP, refLP)
		} else {
			_, err = o.Update(ctx, k, sp, scores, oldLP, refLP)
		}
		if err != nil {
			return c, fmt.Errorf("lab: MDLOO iteration %d: %w", k, err)
		}
		if cfg.EvalEvery > 0 && (k%cfg.EvalEvery == 0 || k == cfg.Iters) {
			if err := eval(k); err != nil {
				return c, err
			}
		}
		bar.Add(1)
	}
	return c, nil
}

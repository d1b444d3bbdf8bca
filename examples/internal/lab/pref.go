package lab

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/posttrain/posttrain/prefopt"
	"github.com/posttrain/posttrain/tensor/autograd"
	"github.com/posttrain/posttrain/tensor/nn"
)

// TuneConfig sets a fine-tuning run on pairs or demonstrations.
type TuneConfig struct {
	Steps, Batch int
	LR           float64
	Seed         uint64
}

func (c TuneConfig) optimizer(m *nn.TinyLM) *nn.AdamW {
	opt := nn.NewAdamW(m.Params(), c.LR)
	opt.ClipNorm = 1
	opt.WeightDecay = 0
	return opt
}

// TrainPairs tunes policy on preference pairs with obj (DPO, IPO, SimPO,
// …), against ref's log-probs (ref may be nil for reference-free
// objectives), and returns the loss and the implicit-reward accuracy
// per step.
func TrainPairs(ctx context.Context, policy, ref *nn.TinyLM, pairs []prefopt.Pair, obj prefopt.Objective, cfg TuneConfig, bar Bar) (loss, acc []float64, err error) {
	if len(pairs) == 0 {
		return nil, nil, fmt.Errorf("lab: no preference pairs")
	}
	var refC, refR []float64
	if ref != nil {
		ps := make([]string, len(pairs))
		cs, rs := make([]string, len(pairs)), make([]string, len(pairs))
		for i, p := range pairs {
			ps[i], cs[i], rs[i] = p.Prompt, p.Chosen, p.Rejected
		}
		if refC, err = LogProbsOf(ref, ps, cs); err != nil {
			return nil, nil, err
		}
		if refR, err = LogProbsOf(ref, ps, rs); err != nil {
			return nil, nil, err
		}
	}
	opt := cfg.optimizer(policy)
	rng := rand.New(rand.NewPCG(cfg.Seed, 0xd90))
	t := autograd.NewTape()
	bs := min(cfg.Batch, len(pairs))
	for step := range cfg.Steps {
		if err := ctx.Err(); err != nil {
			return loss, acc, err
		}
		ps, rs := make([]string, 2*bs), make([]string, 2*bs)
		var b prefopt.Batch
		for i := range bs {
			k := rng.IntN(len(pairs))
			p := pairs[k]
			ps[i], ps[bs+i] = p.Prompt, p.Prompt
			rs[i], rs[bs+i] = p.Chosen, p.Rejected
			b.ChosenLen = append(b.ChosenLen, len(p.Chosen))
			b.RejectedLen = append(b.RejectedLen, len(p.Rejected))
			if ref != nil {
				b.RefChosen = append(b.RefChosen, refC[k])
				b.RefRejected = append(b.RefRejected, refR[k])
			}
		}
		s, err := MakeSeqs(ps, rs)
		if err != nil {
			return loss, acc, err
		}
		t.Reset()
		policy.ZeroGrad()
		lp, logits, err := SeqLogProbs(t, policy, s)
		if err != nil {
			return loss, acc, err
		}
		b.PolicyChosen, b.PolicyRejected = lp[:bs], lp[bs:]
		res, err := obj.Loss(b)
		if err != nil {
			return loss, acc, fmt.Errorf("lab: preference step %d: %w", step, err)
		}
		if err := SeqBackward(t, logits, s, append(res.GradChosen, res.GradRejected...)); err != nil {
			return loss, acc, err
		}
		if _, err := opt.Step(); err != nil {
			return loss, acc, fmt.Errorf("lab: preference step %d: %w", step, err)
		}
		loss = append(loss, res.Loss)
		acc = append(acc, res.Stats.Accuracy)
		bar.Add(1)
	}
	return loss, acc, nil
}

// SFT tunes m to imitate responses[i] after prompts[i]: the mean
// per-token negative log-likelihood of the responses. It returns the
// loss per step.
func SFT(ctx context.Context, m *nn.TinyLM, prompts, responses []string, cfg TuneConfig, bar Bar) ([]float64, error) {
	if len(prompts) == 0 {
		return nil, fmt.Errorf("lab: no demonstrations")
	}
	opt := cfg.optimizer(m)
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5f7))
	t := autograd.NewTape()
	bs := min(cfg.Batch, len(prompts))
	var curve []float64
	for step := range cfg.Steps {
		if err := ctx.Err(); err != nil {
			return curve, err
		}
		ps, rs := make([]string, bs), make([]string, bs)
		tokens := 0
		for i := range bs {
			k := rng.IntN(len(prompts))
			ps[i], rs[i] = prompts[k], responses[k]
			tokens += len(rs[i])
		}
		s, err := MakeSeqs(ps, rs)
		if err != nil {
			return curve, err
		}
		t.Reset()
		m.ZeroGrad()
		lp, logits, err := SeqLogProbs(t, m, s)
		if err != nil {
			return curve, err
		}
		var nll float64
		d := make([]float64, bs)
		for i := range lp {
			nll -= lp[i]
			d[i] = -1 / float64(tokens)
		}
		if err := SeqBackward(t, logits, s, d); err != nil {
			return curve, err
		}
		if _, err := opt.Step(); err != nil {
			return curve, fmt.Errorf("lab: SFT step %d: %w", step, err)
		}
		curve = append(curve, nll/float64(tokens))
		bar.Add(1)
	}
	return curve, nil
}

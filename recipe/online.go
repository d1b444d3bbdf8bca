package recipe

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/posttrain/posttrain/mirrordescent"
	"github.com/posttrain/posttrain/prefopt"
	"github.com/posttrain/posttrain/tensor/nn"
)

// RewardFunc scores completions of one prompt (token ids in, one reward
// each out, higher better): a RewardModel, a verifier, an oracle.
type RewardFunc func(ctx context.Context, prompt []int32, completions [][]int32) ([]float64, error)

// Algorithm is an online-RL update rule for Online: GRPO, RLOO, PPO or
// MDLOO.
type Algorithm interface{ algorithm() }

// GRPO is TRL's GRPOTrainer update: group-normalized advantages
// (prefopt.GroupAdvantages with Scale) and the token-level clipped loss
// of Loss (any of its loss types; its Beta weighs the k3 KL penalty
// towards the reference), Epochs optimizer steps per batch (TRL's
// num_iterations).
type GRPO struct {
	Loss   prefopt.GRPOLoss
	Scale  prefopt.RewardScale
	Epochs int // 0 means 1
}

// RLOO is REINFORCE with the leave-one-out baseline (Ahmadian et al.
// 2024) on KL-shaped sequence rewards r − β·(log π − log π_ref), one
// optimizer step per batch.
type RLOO struct{ Beta float64 }

// PPO is the PPO-clip surrogate (Schulman et al. 2017) at sequence
// level, with leave-one-out advantages of the KL-shaped rewards in place
// of a value function (TRL's RLOOTrainer), Epochs optimizer steps per
// batch against the sampling policy's log-probs.
type PPO struct {
	Eps    float64 // clip range, TRL's cliprange 0.2
	Beta   float64
	Epochs int // 0 means 4
}

// MDLOO is AFM's mirror-descent update with leave-one-out advantages
// (mirrordescent.MDLOO: its K must equal Online.K).
type MDLOO struct{ mirrordescent.MDLOO }

func (GRPO) algorithm()  {}
func (RLOO) algorithm()  {}
func (PPO) algorithm()   {}
func (MDLOO) algorithm() {}

// Online is online RL on a policy: each step samples K completions for
// each of Config.Batch prompts from the policy, scores them with Reward,
// and updates the policy with Algorithm. The KL reference is Ref, or the
// policy's base with its LoRA adapters off, or none (then every β must be
// 0). Sampling is seeded per (Config.Seed, step, prompt, sample), so a
// run — and a resumed run — is a function of its seed. Give LoRA
// adapters no dropout here: the sampling policy runs without it, so the
// training passes would see another policy (TRL turns dropout off for
// its online trainers for the same reason).
type Online struct {
	Policy    *nn.Model
	Ref       *nn.Model
	Reward    RewardFunc
	Algorithm Algorithm
	K         int // completions per prompt, ≥ 2
	// Sampling configures the completions; a Temperature of 0 is greedy,
	// which gives a group no variance.
	Sampling Sampling
	Config   Config

	prompts [][]int32
	pol     *Scorer
	ref     *Scorer
}

// Train runs Config.Steps iterations over prompts and returns what it
// logged: reward, reward_std, loss, kl, grad_norm, learning_rate,
// completions/mean_length, num_tokens (and clip_ratio for GRPO and PPO).
func (o *Online) Train(ctx context.Context, prompts [][]int32) (History, error) {
	if o.Policy == nil || o.Reward == nil || o.Algorithm == nil {
		return nil, errors.New("recipe: Online: need a Policy, a Reward and an Algorithm")
	}
	if o.K < 2 || o.Sampling.MaxTokens < 1 {
		return nil, fmt.Errorf("recipe: Online: K = %d, MaxTokens = %d: need K ≥ 2 and MaxTokens ≥ 1", o.K, o.Sampling.MaxTokens)
	}
	if m, ok := o.Algorithm.(MDLOO); ok && m.K != o.K {
		return nil, fmt.Errorf("recipe: Online: MDLOO.K = %d but K = %d", m.K, o.K)
	}
	for i, p := range prompts {
		if len(p) == 0 || len(p)+o.Sampling.MaxTokens > o.Policy.Config.Context {
			return nil, fmt.Errorf("recipe: Online: prompt %d: %d tokens plus %d new do not fit the context of %d", i, len(p), o.Sampling.MaxTokens, o.Policy.Config.Context)
		}
		if err := o.Policy.CheckTokens(p); err != nil {
			return nil, fmt.Errorf("recipe: Online: prompt %d: %w", i, err)
		}
	}
	o.prompts, o.pol = prompts, o.Config.scorer(o.Policy)
	o.pol.Recompute, o.pol.ctx = o.Config.Recompute, ctx
	o.ref = nil
	if r := o.refModel(); r != nil {
		o.ref = o.Config.scorer(r)
		o.ref.ctx = ctx
	}
	l := &loop{op: "Online", cfg: o.Config, n: len(prompts), params: o.Policy.TrainableParams(), zero: o.Policy.ZeroGrad}
	return l.run(ctx, o)
}

func (o *Online) refModel() *nn.Model {
	if o.Ref != nil {
		return o.Ref
	}
	if o.Policy.LoRA() != nil {
		return o.Policy
	}
	return nil
}

func (o *Online) micro(context.Context, []int, uint64, float64) (map[string]float64, int, error) {
	panic("recipe: Online runs whole iterations")
}

func (o *Online) eval(context.Context) (map[string]float64, error) { return nil, nil }

// Sample draws K completions of each prompt from the policy, completion
// j of prompt i with seed mix(seed, i, j).
func (o *Online) Sample(ctx context.Context, prompts [][]int32, seed uint64) ([][]int32, error) {
	ps := make([][]int32, 0, len(prompts)*o.K)
	ss := make([]uint64, 0, len(prompts)*o.K)
	for i, p := range prompts {
		for j := range o.K {
			ps = append(ps, p)
			ss = append(ss, mix(seed, uint64(i), uint64(j)))
		}
	}
	return o.Sampling.sample(ctx, o.Policy, ps, ss)
}

// mix is SplitMix64's finalizer over the values in turn.
func mix(vs ...uint64) uint64 {
	var h uint64
	for _, v := range vs {
		h ^= v + 0x9e3779b97f4a7c15 + h<<6 + h>>2
		h = (h ^ h>>30) * 0xbf58476d1ce4e5b9
		h = (h ^ h>>27) * 0x94d049bb133111eb
		h ^= h >> 31
	}
	return h
}

func (o *Online) iterate(ctx context.Context, step int, opt *nn.AdamW) (map[string]float64, int, error) {
	cfg := o.Config
	idx := newOrder(cfg.Seed, len(o.prompts)).take(step*cfg.Batch, cfg.Batch)
	prompts := make([][]int32, len(idx))
	for i, k := range idx {
		prompts[i] = o.prompts[k]
	}
	if a := o.Policy.LoRA(); a != nil {
		a.Pass = uint64(step)
	}
	comps, err := o.Sample(ctx, prompts, mix(cfg.Seed, uint64(step)))
	if err != nil {
		return nil, 0, fmt.Errorf("sampling: %w", err)
	}
	scores := make([]float64, 0, len(comps))
	ps := make([][]int32, len(comps))
	tokens, length := 0, 0
	for i, p := range prompts {
		if err := ctx.Err(); err != nil {
			return nil, 0, err
		}
		group := comps[i*o.K : (i+1)*o.K]
		r, err := o.Reward(ctx, p, group)
		if err != nil {
			return nil, 0, fmt.Errorf("reward of prompt %d: %w", idx[i], err)
		}
		if len(r) != o.K {
			return nil, 0, fmt.Errorf("reward of prompt %d: %d scores for %d completions", idx[i], len(r), o.K)
		}
		scores = append(scores, r...)
		for j, c := range group {
			ps[i*o.K+j] = p
			tokens += len(p) + len(c)
			length += len(c)
		}
	}
	s, err := NewSeqs(ps, comps, cfg.Pad)
	if err != nil {
		return nil, 0, err
	}
	old, err := o.pol.forward(s, false)
	if err != nil {
		return nil, 0, err
	}
	oldTok := o.pol.TokenLogProbs()
	var ref, refTok []float64
	if o.ref != nil {
		err := withAdapterOffIf(o.ref.Model, o.ref.Model == o.Policy, func() (err error) {
			ref, err = o.ref.forward(s, false)
			return err
		})
		if err != nil {
			return nil, 0, fmt.Errorf("reference: %w", err)
		}
		refTok = o.ref.TokenLogProbs()
	}
	mean, std := meanStd(scores)
	m := map[string]float64{"reward": mean, "reward_std": std, "completions/mean_length": float64(length) / float64(len(comps))}
	zero := o.Policy.ZeroGrad
	switch a := o.Algorithm.(type) {
	case GRPO:
		adv, err := prefopt.GroupAdvantages(scores, o.K, a.Scale)
		if err != nil {
			return nil, 0, err
		}
		if a.Loss.Beta > 0 && refTok == nil {
			return nil, 0, errors.New("GRPO with Beta > 0 needs a reference")
		}
		lens := s.Layout.CompletionLen()
		for e := range max(1, a.Epochs) {
			zero()
			if _, err := o.pol.Forward(s); err != nil {
				return nil, 0, err
			}
			lp := o.pol.TokenLogProbs()
			res, err := a.Loss.Loss(prefopt.Rollout{Logp: lp, OldLogp: oldTok, RefLogp: refTok, Len: lens, Adv: adv})
			if err != nil {
				return nil, 0, err
			}
			if err := o.pol.BackwardTokens(res.Grad); err != nil {
				return nil, 0, err
			}
			norm, err := opt.Step()
			if err != nil {
				return nil, 0, err
			}
			if e == 0 {
				m["loss"], m["kl"], m["clip_ratio/region_mean"], m["grad_norm"] = res.Loss, res.KL, res.ClipRegion, norm
			}
		}
	case RLOO, PPO:
		beta, eps, epochs := 0.0, 0.0, 1
		if p, ok := a.(PPO); ok {
			beta, eps, epochs = p.Beta, p.Eps, p.Epochs
			if epochs == 0 {
				epochs = 4
			}
		} else {
			beta = a.(RLOO).Beta
		}
		if beta > 0 && ref == nil {
			return nil, 0, errors.New("a KL coefficient > 0 needs a reference")
		}
		shaped := scores
		if beta > 0 {
			if shaped, err = prefopt.ShapeRewards(scores, old, ref, beta); err != nil {
				return nil, 0, err
			}
			m["kl"] = meanDiff(old, ref)
		}
		adv, err := prefopt.LeaveOneOut(shaped, o.K)
		if err != nil {
			return nil, 0, err
		}
		for e := range epochs {
			zero()
			lp, err := o.pol.Forward(s)
			if err != nil {
				return nil, 0, err
			}
			var res prefopt.PolicyResult
			if eps > 0 {
				res, err = prefopt.PPOClip(lp, old, adv, eps)
			} else {
				res, err = prefopt.Reinforce(lp, adv, make([]float64, len(adv)))
			}
			if err != nil {
				return nil, 0, err
			}
			if err := o.pol.Backward(res.Grad); err != nil {
				return nil, 0, err
			}
			norm, err := opt.Step()
			if err != nil {
				return nil, 0, err
			}
			if e == 0 {
				m["loss"], m["grad_norm"] = res.Loss, norm
				if eps > 0 {
					m["clip_ratio"] = res.ClipFrac
				}
			}
		}
	case MDLOO:
		if a.Beta > 0 && ref == nil {
			return nil, 0, errors.New("MDLOO with Beta > 0 needs a reference")
		}
		pol := &mdPolicy{sc: o.pol, s: s, opt: opt, zero: zero}
		res, err := a.Update(ctx, step+1, pol, scores, old, ref)
		if err != nil {
			return nil, 0, err
		}
		m["loss"], m["kl"], m["grad_norm"] = res[0].Loss, meanDiff(old, ref), pol.norm
		m["mdpo/kl_to_old"] = res[len(res)-1].KL
	default:
		return nil, 0, fmt.Errorf("unknown algorithm %T", o.Algorithm)
	}
	return m, tokens, nil
}

// mdPolicy is one batch seen as a mirrordescent.Policy.
type mdPolicy struct {
	sc   *Scorer
	s    Seqs
	opt  *nn.AdamW
	zero func()
	norm float64
	n    int
}

func (p *mdPolicy) LogProbs(ctx context.Context, dst []float64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p.zero()
	lp, err := p.sc.Forward(p.s)
	if err != nil {
		return err
	}
	copy(dst, lp)
	return nil
}

func (p *mdPolicy) Step(ctx context.Context, grad []float64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := p.sc.Backward(grad); err != nil {
		return err
	}
	norm, err := p.opt.Step()
	if p.n == 0 {
		p.norm = norm
	}
	p.n++
	return err
}

func meanStd(v []float64) (mean, std float64) {
	for _, x := range v {
		mean += x
	}
	mean /= float64(len(v))
	for _, x := range v {
		std += (x - mean) * (x - mean)
	}
	if len(v) > 1 {
		std /= float64(len(v) - 1)
	}
	return mean, math.Sqrt(std)
}

// meanDiff is the mean of a − b (the sequence-level KL estimate
// E[log π − log π_ref]), 0 without b.
func meanDiff(a, b []float64) float64 {
	if b == nil {
		return 0
	}
	var s float64
	for i := range a {
		s += a[i] - b[i]
	}
	return s / float64(len(a))
}

// withAdapterOffIf runs fn with m's adapters off when off is set.
func withAdapterOffIf(m *nn.Model, off bool, fn func() error) error {
	if !off {
		return fn()
	}
	return withAdapterOff(m, fn)
}

package lab

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"sync"

	"github.com/posttrain/posttrain/itec"
	"github.com/posttrain/posttrain/prefopt"
	"github.com/posttrain/posttrain/tensor/nn"
)

// Committee plugs TinyLMs into itec.Run: it is the Trainer (one recipe per
// algorithm), the RewardTrainer and the Evaluator (the oracle's mean
// reward on held-out prompts).
type Committee struct {
	Dir    string     // member checkpoints
	Body   *nn.TinyLM // every refreshed reward model starts from a copy
	Gen    Policy     // sampling settings of members (M is ignored)
	SFT    TuneConfig // rejection sampling: fine-tuning on the committee's picks
	Pref   TuneConfig // DPO and IPO
	DPO    prefopt.DPO
	IPO    prefopt.IPO
	RL     RLConfig // online RL (MDLOO against the refreshed reward model)
	Reward RewardConfig

	EvalPrompts []string
	EvalSamples int
	// TestPairs, if set, are held-out labeled pairs on which every
	// refreshed reward model's accuracy is recorded in RewardAcc.
	TestPairs []prefopt.Pair
	Seed      uint64
	Bars      io.Writer // progress bars of training (nil: none)

	// RewardAcc is, per refresh, the reward model's accuracy on TestPairs
	// (all pairs, and those labeled above negligibly better).
	RewardAcc [][2]float64

	mu  sync.Mutex
	rms map[string]*RewardModel
}

func (c *Committee) policy(m *nn.TinyLM) Policy {
	p := c.Gen
	p.M = m
	return p
}

// Train implements itec.Trainer. The new member starts from the
// committee's first member (the best of the latest round's, as Run orders
// the committee), which is also the reference of DPO, IPO and MDLOO.
// DPO and IPO learn from the pairs labeled above negligibly better
// (Decided).
func (c *Committee) Train(ctx context.Context, req itec.TrainRequest) (itec.Member, error) {
	base, ok := req.Committee[0].Model.(Policy)
	if !ok {
		return itec.Member{}, fmt.Errorf("lab: committee member %q is not a lab.Policy", req.Committee[0].Name)
	}
	m := base.M.Clone()
	desc := fmt.Sprintf("  round %d: %s", req.Round, req.Algorithm)
	var err error
	switch req.Algorithm {
	case itec.SFT, itec.RejectionSampling:
		ps, rs := make([]string, len(req.Demos)), make([]string, len(req.Demos))
		for i, d := range req.Demos {
			ps[i], rs[i] = d.Prompt, d.Response
		}
		cfg := c.SFT
		cfg.Seed = req.Seed
		bar := NewBar(c.Bars, cfg.Steps, desc)
		_, err = SFT(ctx, m, ps, rs, cfg, bar)
		bar.Finish()
	case itec.DPO, itec.IPO:
		var obj prefopt.Objective = c.DPO
		if req.Algorithm == itec.IPO {
			obj = c.IPO
		}
		cfg := c.Pref
		cfg.Seed = req.Seed
		bar := NewBar(c.Bars, cfg.Steps, desc)
		pairs := Decided(req.Pairs)
		if len(pairs) == 0 {
			pairs = req.Pairs // nothing decided yet: learn from what there is
		}
		_, _, err = TrainPairs(ctx, m, base.M, pairs, obj, cfg, bar)
		bar.Finish()
	case itec.OnlineRL:
		cfg := c.RL
		cfg.Seed = req.Seed
		cfg.EvalEvery = 0
		bar := NewBar(c.Bars, cfg.Iters, desc)
		_, err = MDLOO(ctx, c.policy(m), base.M, req.Reward, req.Prompts, cfg, bar)
		bar.Finish()
	default:
		return itec.Member{}, fmt.Errorf("lab: no recipe for algorithm %q", req.Algorithm)
	}
	if err != nil {
		return itec.Member{}, err
	}
	path := filepath.Join(c.Dir, fmt.Sprintf("r%d-%s.safetensors", req.Round, req.Algorithm))
	if err := m.Save(path); err != nil {
		return itec.Member{}, err
	}
	return itec.Member{Ref: path, Model: c.policy(m)}, nil
}

// LoadMember implements itec.Trainer.
func (c *Committee) LoadMember(_ context.Context, m itec.Member) (itec.Generator, error) {
	lm, err := nn.LoadTinyLM(m.Ref)
	if err != nil {
		return nil, err
	}
	return c.policy(lm), nil
}

// Refresh implements itec.RewardTrainer: a fresh reward model from Body,
// trained on every pair so far with the soft-label ranking loss.
func (c *Committee) Refresh(ctx context.Context, round int, pairs []prefopt.Pair) (itec.Scorer, string, error) {
	rm := NewRewardModel(c.Body)
	cfg := c.Reward
	cfg.Seed = c.Seed + uint64(round)
	bar := NewBar(c.Bars, cfg.Steps, fmt.Sprintf("  round %d: reward model", round))
	_, err := TrainReward(ctx, rm, pairs, cfg, bar)
	bar.Finish()
	if err != nil {
		return nil, "", err
	}
	ref := fmt.Sprintf("rm-r%d", round)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.TestPairs) > 0 {
		all, dec, err := Accuracy(rm, c.TestPairs)
		if err != nil {
			return nil, "", err
		}
		c.RewardAcc = append(c.RewardAcc, [2]float64{all, dec})
	}
	if c.rms == nil {
		c.rms = map[string]*RewardModel{}
	}
	c.rms[ref] = rm
	return rm, ref, nil
}

// LoadReward implements itec.RewardTrainer for reward models refreshed by
// this process (reward models are not written to disk, so a run resumed by
// a new process cannot).
func (c *Committee) LoadReward(_ context.Context, ref string) (itec.Scorer, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if rm, ok := c.rms[ref]; ok {
		return rm, nil
	}
	return nil, fmt.Errorf("lab: reward model %q was not refreshed by this process", ref)
}

// Evaluate implements itec.Evaluator: the oracle's mean reward on the
// held-out prompts, with the same seeds for every member.
func (c *Committee) Evaluate(ctx context.Context, m itec.Member) (float64, error) {
	p, ok := m.Model.(Policy)
	if !ok {
		return 0, fmt.Errorf("lab: member %q is not a lab.Policy", m.Name)
	}
	return OracleReward(ctx, p, c.EvalPrompts, c.EvalSamples, c.Seed^0xe7a1)
}

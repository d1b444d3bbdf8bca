package recipe

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"

	"github.com/posttrain/posttrain/itec"
	"github.com/posttrain/posttrain/prefopt"
	"github.com/posttrain/posttrain/tensor/nn"
)

// encodeText tokenizes a prompt and a completion with tok, appending the
// tokenizer's EOS (when it has one) to the completion, as Encoder does
// for plain text.
func encodeText(tok Tokenizer, prompt, completion string) (p, c []int32, err error) {
	if p, err = tok.Encode(prompt); err != nil {
		return nil, nil, err
	}
	if c, err = tok.Encode(completion); err != nil {
		return nil, nil, err
	}
	if e, ok := tok.(interface{ EOS() (int32, bool) }); ok {
		if id, ok := e.EOS(); ok {
			c = append(c, id)
		}
	}
	return p, c, nil
}

// TextPairs tokenizes text preference pairs (itec's and prefopt's Pair)
// with tok; pair i keeps line i+1.
func TextPairs(tok Tokenizer, pairs []prefopt.Pair) ([]Pair, error) {
	out := make([]Pair, len(pairs))
	for i, q := range pairs {
		p, c, err := encodeText(tok, q.Prompt, q.Chosen)
		if err != nil {
			return nil, fmt.Errorf("recipe: pair %d: %w", i, err)
		}
		_, r, err := encodeText(tok, q.Prompt, q.Rejected)
		if err != nil {
			return nil, fmt.Errorf("recipe: pair %d: %w", i, err)
		}
		out[i] = Pair{Prompt: p, Chosen: c, Rejected: r, Level: q.Level, Line: i + 1}
	}
	return out, nil
}

// Scorer returns the reward model as an itec.Scorer over text tokenized
// by tok. It is safe for concurrent use while the model is not trained.
func (r *RewardModel) Scorer(tok Tokenizer) itec.Scorer { return &textScorer{r, tok} }

type textScorer struct {
	r   *RewardModel
	tok Tokenizer
}

func (s *textScorer) Score(ctx context.Context, prompt string, responses []string) ([]float64, error) {
	if len(responses) == 0 {
		return nil, nil
	}
	ps, cs := make([][]int32, len(responses)), make([][]int32, len(responses))
	for i, y := range responses {
		p, c, err := encodeText(s.tok, prompt, y)
		if err != nil {
			return nil, fmt.Errorf("recipe: Score: response %d: %w", i, err)
		}
		ps[i], cs[i] = p, c
	}
	seqs, err := NewSeqs(ps, cs, 0)
	if err != nil {
		return nil, fmt.Errorf("recipe: Score: %w", err)
	}
	return s.r.Scores(seqs)
}

// Committee puts models behind itec.Run: it is the Trainer (SFT for
// rejection sampling, Preference for DPO and IPO, Online for online RL),
// the RewardTrainer (Reward on every pair so far) and the Evaluator
// (Eval). Members are full models — each new one starts from a Clone of
// the committee's first member, which is also its reference — saved as
// nn checkpoints in Dir, as are the reward models; a member's Model is a
// *Generator.
type Committee struct {
	Dir        string
	Tokenizer  Tokenizer
	Sampling   Sampling  // how members sample
	RewardBody *nn.Model // every refreshed reward model starts from a Clone of it

	SFT, Pref, Reward Config
	DPO               prefopt.DPO
	IPO               prefopt.IPO
	RewardLoss        RankingLoss
	RewardPool        Pooling
	// Online holds the online-RL settings; Train fills in Policy, Ref and
	// Reward for each new member.
	Online Online
	// Eval scores a member's generator (itec.Evaluator); nil makes
	// Evaluate an error.
	Eval func(ctx context.Context, g itec.Generator) (float64, error)
	// Callback, when set, receives each training run's records with a
	// description of the run (progress bars).
	Callback func(run string, r Record)
	Seed     uint64

	mu  sync.Mutex
	rms map[string]*RewardModel
}

func (c *Committee) generator(m *nn.Model) *Generator {
	return &Generator{Model: m, Tokenizer: c.Tokenizer, Sampling: c.Sampling}
}

func (c *Committee) config(cfg Config, seed uint64, run string) Config {
	cfg.Seed, cfg.Dir = seed, ""
	if c.Callback != nil {
		cfg.Callback = func(r Record) { c.Callback(run, r) }
	}
	return cfg
}

// Train implements itec.Trainer. DPO and IPO learn from the pairs labeled
// above negligibly better when there are any.
func (c *Committee) Train(ctx context.Context, req itec.TrainRequest) (itec.Member, error) {
	if len(req.Committee) == 0 {
		return itec.Member{}, errors.New("recipe: Committee.Train: empty committee")
	}
	base, ok := req.Committee[0].Model.(*Generator)
	if !ok {
		return itec.Member{}, fmt.Errorf("recipe: Committee.Train: member %q is not a *recipe.Generator", req.Committee[0].Name)
	}
	m := base.Model.Clone()
	run := fmt.Sprintf("round %d: %s", req.Round, req.Algorithm)
	var err error
	switch req.Algorithm {
	case itec.SFT, itec.RejectionSampling:
		xs := make([]Example, len(req.Demos))
		for i, d := range req.Demos {
			if xs[i].Prompt, xs[i].Completion, err = encodeText(c.Tokenizer, d.Prompt, d.Response); err != nil {
				return itec.Member{}, fmt.Errorf("recipe: Committee.Train: demo %d: %w", i, err)
			}
			xs[i].Line = i + 1
		}
		_, err = (&SFT{Model: m, Config: c.config(c.SFT, req.Seed, run)}).Train(ctx, xs, nil)
	case itec.DPO, itec.IPO:
		var obj prefopt.Objective = c.DPO
		if req.Algorithm == itec.IPO {
			obj = c.IPO
		}
		var decided []prefopt.Pair
		for _, p := range req.Pairs {
			if p.Level != prefopt.NegligiblyBetter {
				decided = append(decided, p)
			}
		}
		if len(decided) == 0 {
			decided = req.Pairs
		}
		pairs, err := TextPairs(c.Tokenizer, decided)
		if err != nil {
			return itec.Member{}, err
		}
		p := &Preference{Policy: m, Ref: base.Model, Objective: obj, Config: c.config(c.Pref, req.Seed, run)}
		_, err = p.Train(ctx, pairs, nil)
		if err != nil {
			return itec.Member{}, err
		}
	case itec.OnlineRL:
		if req.Reward == nil {
			return itec.Member{}, errors.New("recipe: Committee.Train: online RL without a reward model")
		}
		prompts := make([][]int32, len(req.Prompts))
		for i, s := range req.Prompts {
			if prompts[i], err = c.Tokenizer.Encode(s); err != nil {
				return itec.Member{}, fmt.Errorf("recipe: Committee.Train: prompt %d: %w", i, err)
			}
		}
		o := c.Online
		o.Policy, o.Ref, o.Config = m, base.Model, c.config(c.Online.Config, req.Seed, run)
		o.Reward = TextReward(c.Tokenizer, req.Reward)
		_, err = o.Train(ctx, prompts)
	default:
		return itec.Member{}, fmt.Errorf("recipe: Committee.Train: no recipe for algorithm %q", req.Algorithm)
	}
	if err != nil {
		return itec.Member{}, err
	}
	path := filepath.Join(c.Dir, fmt.Sprintf("r%d-%s.safetensors", req.Round, req.Algorithm))
	if err := m.Save(path); err != nil {
		return itec.Member{}, err
	}
	return itec.Member{Ref: path, Model: c.generator(m)}, nil
}

// LoadMember implements itec.Trainer: the member's checkpoint, read back
// with its checksum verified.
func (c *Committee) LoadMember(_ context.Context, m itec.Member) (itec.Generator, error) {
	lm, err := nn.LoadTinyLM(m.Ref)
	if err != nil {
		return nil, err
	}
	return c.generator(lm), nil
}

// Refresh implements itec.RewardTrainer: a reward model from a Clone of
// RewardBody, trained on every pair so far.
func (c *Committee) Refresh(ctx context.Context, round int, pairs []prefopt.Pair) (itec.Scorer, string, error) {
	if c.RewardBody == nil {
		return nil, "", errors.New("recipe: Committee.Refresh: no RewardBody")
	}
	tp, err := TextPairs(c.Tokenizer, pairs)
	if err != nil {
		return nil, "", err
	}
	seed := c.Seed + uint64(round)
	rm := NewRewardModel(c.RewardBody.Clone(), seed)
	rm.Pool = c.RewardPool
	r := &Reward{Model: rm, Loss: c.RewardLoss, Config: c.config(c.Reward, seed, fmt.Sprintf("round %d: reward model", round))}
	if _, err := r.Train(ctx, tp, nil); err != nil {
		return nil, "", err
	}
	ref := filepath.Join(c.Dir, fmt.Sprintf("rm-r%d.safetensors", round))
	if err := rm.Save(ref); err != nil {
		return nil, "", err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rms == nil {
		c.rms = map[string]*RewardModel{}
	}
	c.rms[ref] = rm
	return rm.Scorer(c.Tokenizer), ref, nil
}

// RewardModel returns a reward model Refresh made, by its ref.
func (c *Committee) RewardModel(ref string) (*RewardModel, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rm, ok := c.rms[ref]
	return rm, ok
}

// LoadReward implements itec.RewardTrainer: the reward model Refresh
// saved at ref.
func (c *Committee) LoadReward(_ context.Context, ref string) (itec.Scorer, error) {
	rm, ok := c.RewardModel(ref)
	if !ok {
		var err error
		if rm, err = LoadRewardModel(ref); err != nil {
			return nil, err
		}
		c.mu.Lock()
		if c.rms == nil {
			c.rms = map[string]*RewardModel{}
		}
		c.rms[ref] = rm
		c.mu.Unlock()
	}
	return rm.Scorer(c.Tokenizer), nil
}

// Evaluate implements itec.Evaluator with Eval.
func (c *Committee) Evaluate(ctx context.Context, m itec.Member) (float64, error) {
	if c.Eval == nil {
		return 0, errors.New("recipe: Committee.Evaluate: no Eval")
	}
	return c.Eval(ctx, m.Model)
}

// Committee is every itec model interface at once.
var (
	_ itec.Trainer       = (*Committee)(nil)
	_ itec.RewardTrainer = (*Committee)(nil)
	_ itec.Evaluator     = (*Committee)(nil)
	_ itec.Generator     = (*Generator)(nil)
)

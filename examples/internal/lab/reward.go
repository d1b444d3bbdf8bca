package lab

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/posttrain/posttrain/prefopt"
	"github.com/posttrain/posttrain/tensor"
	"github.com/posttrain/posttrain/tensor/autograd"
	"github.com/posttrain/posttrain/tensor/nn"
)

// RewardModel scores a response to a prompt with a TinyLM body: the final
// normalized hidden states over the response's positions, mean-pooled,
// times a linear head — the usual LM-initialized reward model at toy
// scale. Score is safe for concurrent use while the model is not trained.
type RewardModel struct {
	Body *nn.TinyLM
	Head *autograd.Var // [DModel, 1]
}

// NewRewardModel starts a reward model from a copy of body, with a zero head.
func NewRewardModel(body *nn.TinyLM) *RewardModel {
	return &RewardModel{Body: body.Clone(), Head: autograd.Param(tensor.New(body.Config.DModel, 1))}
}

// hidden returns m's final normalized hidden states [b·w, D] for b
// sequences of w tokens: TinyLM.Forward without the output head.
func hidden(t *autograd.Tape, m *nn.TinyLM, tokens []int32, b int) (*autograd.Var, error) {
	if err := m.CheckTokens(tokens); err != nil {
		return nil, err
	}
	w := len(tokens) / b
	if w > m.Config.Context {
		return nil, fmt.Errorf("lab: sequence of %d tokens exceeds context %d", w, m.Config.Context)
	}
	cos, sin := autograd.RoPETables(0, w, m.Config.DModel/m.Config.Heads, m.Config.RoPE)
	x := m.Embed.Forward(t, tokens)
	for i := range m.Blocks {
		x = m.Blocks[i].Forward(t, x, b, cos, sin)
	}
	return m.Norm.Forward(t, x), nil
}

// forward returns the rewards [N, 1] of s's responses.
func (r *RewardModel) forward(t *autograd.Tape, s Seqs) (*autograd.Var, error) {
	b, w := s.N(), s.Layout.Width
	h, err := hidden(t, r.Body, s.Tokens, b) // [b·w, D]
	if err != nil {
		return nil, fmt.Errorf("lab: reward model: %w", err)
	}
	pool := tensor.New(b, b*w)
	pd := pool.Data()
	for i := range b {
		p0, n := s.Layout.PromptLen[i], s.Layout.Len[i]
		if n == p0 {
			return nil, fmt.Errorf("lab: reward model: response %d is empty", i)
		}
		for j := p0; j < n; j++ {
			pd[i*b*w+i*w+j] = 1 / float32(n-p0)
		}
	}
	return t.MatMul(t.MatMul(autograd.Const(pool), h), r.Head), nil
}

// Score implements itec.Scorer.
func (r *RewardModel) Score(ctx context.Context, prompt string, responses []string) ([]float64, error) {
	ps := make([]string, len(responses))
	for i := range ps {
		ps[i] = prompt
	}
	return r.ScorePairs(ps, responses)
}

// ScorePairs scores responses[i] to prompts[i], in batches.
func (r *RewardModel) ScorePairs(prompts, responses []string) ([]float64, error) {
	const per = 64
	out := make([]float64, 0, len(prompts))
	t := autograd.NewTape()
	for i := 0; i < len(prompts); i += per {
		j := min(i+per, len(prompts))
		s, err := MakeSeqs(prompts[i:j], responses[i:j])
		if err != nil {
			return nil, err
		}
		t.Reset()
		v, err := r.forward(t, s)
		if err != nil {
			return nil, err
		}
		for _, x := range v.Value.Data() {
			out = append(out, float64(x))
		}
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
// (prefopt.SoftRanking) and returns the loss per step.
func TrainReward(ctx context.Context, r *RewardModel, pairs []prefopt.Pair, cfg RewardConfig, bar Bar) ([]float64, error) {
	if len(pairs) == 0 {
		return nil, fmt.Errorf("lab: no preference pairs to train a reward model on")
	}
	params := append(r.Body.Params(), nn.Named{Name: "head", Var: r.Head})
	opt := nn.NewAdamW(params, cfg.LR)
	opt.ClipNorm = 1
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x12e))
	t := autograd.NewTape()
	bs := min(cfg.Batch, len(pairs))
	var curve []float64
	for step := range cfg.Steps {
		if err := ctx.Err(); err != nil {
			return curve, err
		}
		ps, rs := make([]string, 2*bs), make([]string, 2*bs)
		levels := make([]prefopt.Level, bs)
		for i := range bs {
			p := pairs[rng.IntN(len(pairs))]
			ps[i], ps[bs+i] = p.Prompt, p.Prompt
			rs[i], rs[bs+i] = p.Chosen, p.Rejected
			levels[i] = p.Level
		}
		s, err := MakeSeqs(ps, rs)
		if err != nil {
			return curve, err
		}
		t.Reset()
		r.Body.ZeroGrad()
		r.Head.ZeroGrad()
		v, err := r.forward(t, s)
		if err != nil {
			return curve, err
		}
		sc := make([]float64, 2*bs)
		for i, x := range v.Value.Data() {
			sc[i] = float64(x)
		}
		var res prefopt.Result
		if cfg.BradleyTerry {
			res, err = prefopt.BradleyTerry(sc[:bs], sc[bs:], nil)
		} else {
			res, err = prefopt.SoftRanking(sc[:bs], sc[bs:], levels)
		}
		if err != nil {
			return curve, fmt.Errorf("lab: reward step %d: %w", step, err)
		}
		g := tensor.New(2*bs, 1)
		gd := g.Data()
		for i := range bs {
			gd[i], gd[bs+i] = float32(res.GradChosen[i]), float32(res.GradRejected[i])
		}
		t.Backward(v, g)
		opt.LR = nn.WarmupCosine(step, max(1, cfg.Steps/10), cfg.Steps, cfg.LR, cfg.LR/10)
		if _, err := opt.Step(); err != nil {
			return curve, fmt.Errorf("lab: reward step %d: %w", step, err)
		}
		curve = append(curve, res.Loss)
		bar.Add(1)
	}
	return curve, nil
}

// Accuracy is the fraction of pairs whose chosen response r scores
// higher, over all pairs and over the pairs labeled above negligibly
// better (whose labels carry the task's signal, not a near tie).
func Accuracy(r *RewardModel, pairs []prefopt.Pair) (all, decided float64, err error) {
	ps := make([]string, 0, 2*len(pairs))
	rs := make([]string, 0, 2*len(pairs))
	for _, p := range pairs {
		ps = append(ps, p.Prompt, p.Prompt)
		rs = append(rs, p.Chosen, p.Rejected)
	}
	sc, err := r.ScorePairs(ps, rs)
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

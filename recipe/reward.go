package recipe

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"

	"github.com/posttrain/posttrain/prefopt"
	"github.com/posttrain/posttrain/tensor"
	"github.com/posttrain/posttrain/tensor/autograd"
	"github.com/posttrain/posttrain/tensor/nn"
)

// RewardModel scores a completion: a decoder body and a linear head on
// the final hidden state of the sequence's last token — transformers'
// LlamaForSequenceClassification with one label, whose head is
// score.weight [1, DModel]. The body may carry LoRA adapters; the head is
// always trained.
type RewardModel struct {
	Body *nn.Model
	Head *autograd.Var // [1, DModel]
	Pool Pooling
}

// Pooling says which hidden states a RewardModel's head reads.
type Pooling uint8

const (
	// LastToken reads the final hidden state of the sequence's last
	// token, as transformers' sequence classifiers do.
	LastToken Pooling = iota
	// MeanCompletion reads the mean of the completion's hidden states,
	// which suits small models whose last state carries little of a
	// long completion.
	MeanCompletion
)

// NewRewardModel puts a head drawn N(0, 0.02) from seed (transformers'
// initializer_range) on body. body is used, not copied: Clone it first to
// keep the language model.
func NewRewardModel(body *nn.Model, seed uint64) *RewardModel {
	rng := rand.New(rand.NewPCG(seed, 0x5c0e))
	w := tensor.New(1, body.Config.DModel)
	for i := range w.Data() {
		w.Data()[i] = float32(rng.NormFloat64() * 0.02)
	}
	return &RewardModel{Body: body, Head: autograd.Param(w)}
}

// Params returns the trainable parameters: the body's (its adapters when
// it carries LoRA) and the head, named score.weight.
func (r *RewardModel) Params() []nn.Named {
	return append(r.Body.TrainableParams(), nn.Named{Name: "score.weight", Var: r.Head})
}

// forward returns the rewards [N, 1] of s's sequences on tape t.
func (r *RewardModel) forward(t *autograd.Tape, s Seqs) (*autograd.Var, error) {
	h, err := r.Body.Hidden(t, s.Tokens, s.N())
	if err != nil {
		return nil, err
	}
	// A selection of each sequence's pooled positions: a product the
	// tape already differentiates, at N·rows·D flops.
	n, rows, w := s.N(), len(s.Tokens), s.Layout.Width
	sel := tensor.New(n, rows)
	for b, l := range s.Layout.Len {
		if r.Pool == MeanCompletion {
			p0 := s.Layout.PromptLen[b]
			if l == p0 {
				return nil, fmt.Errorf("sequence %d: empty completion", b)
			}
			for j := p0; j < l; j++ {
				sel.Data()[b*rows+b*w+j] = 1 / float32(l-p0)
			}
			continue
		}
		sel.Data()[b*rows+b*w+l-1] = 1
	}
	return t.MatMulT(t.MatMul(autograd.Const(sel), h), r.Head), nil
}

// Scores returns the rewards of s's sequences, without gradients.
func (r *RewardModel) Scores(s Seqs) ([]float64, error) {
	t := autograd.NewTape()
	t.NoGrad = true
	v, err := r.forward(t, s)
	if err != nil {
		return nil, fmt.Errorf("recipe: RewardModel: %w", err)
	}
	out := make([]float64, s.N())
	for i, x := range v.Value.Data() {
		out[i] = float64(x)
	}
	return out, nil
}

// RankingLoss is the loss a reward model is trained with.
type RankingLoss uint8

const (
	// BradleyTerry is −logσ(r_c − r_r), TRL's RewardTrainer loss.
	BradleyTerry RankingLoss = iota
	// SoftRanking is AFM's soft-label loss: the gap regressed to the
	// logit of the pair's labeled preference strength (Pair.Level).
	SoftRanking
)

// Reward trains a RewardModel on preference pairs.
type Reward struct {
	Model  *RewardModel
	Loss   RankingLoss
	Config Config

	train, evalSet []Pair
	tape           *autograd.Tape
}

// Train runs the configured steps on train, evaluating on eval (may be
// empty), and returns what it logged: loss, accuracy, rewards/chosen,
// rewards/rejected, rewards/margins, grad_norm, learning_rate, epoch,
// num_tokens.
func (r *Reward) Train(ctx context.Context, train, eval []Pair) (History, error) {
	if r.Model == nil || r.Model.Body == nil || r.Model.Head == nil {
		return nil, errors.New("recipe: Reward: need a RewardModel with Body and Head")
	}
	for _, set := range [][]Pair{train, eval} {
		if err := checkPairs(set, r.Model.Body); err != nil {
			return nil, err
		}
		if r.Loss == SoftRanking {
			for i, p := range set {
				if !p.Level.Valid() {
					return nil, fmt.Errorf("recipe: Reward: pair %d (line %d): SoftRanking needs a labeled level", i, p.Line)
				}
			}
		}
	}
	r.train, r.evalSet, r.tape = train, eval, autograd.NewTape()
	body := r.Model.Body
	l := &loop{op: "Reward", cfg: r.Config, n: len(train), params: r.Model.Params(),
		zero: func() { body.ZeroGrad(); r.Model.Head.ZeroGrad() }}
	return l.run(ctx, r)
}

func (r *Reward) loss(sc []float64, pairs []Pair) (prefopt.Result, error) {
	n := len(pairs)
	if r.Loss == SoftRanking {
		lv := make([]prefopt.Level, n)
		for i, p := range pairs {
			lv[i] = p.Level
		}
		return prefopt.SoftRanking(sc[:n], sc[n:], lv)
	}
	return prefopt.BradleyTerry(sc[:n], sc[n:], nil)
}

func rewardMetrics(res prefopt.Result) map[string]float64 {
	s := res.Stats
	return map[string]float64{"loss": res.Loss, "accuracy": s.Accuracy, "rewards/chosen": s.RewardsChosen,
		"rewards/rejected": s.RewardsRejected, "rewards/margins": s.Margin}
}

func (r *Reward) micro(ctx context.Context, idx []int, pass uint64, scale float64) (map[string]float64, int, error) {
	if a := r.Model.Body.LoRA(); a != nil {
		a.Pass = pass
	}
	pairs := make([]Pair, len(idx))
	for i, k := range idx {
		pairs[i] = r.train[k]
	}
	s, err := pairSeqs(pairs, r.Config.Pad)
	if err != nil {
		return nil, 0, err
	}
	r.tape.Reset()
	v, err := r.Model.forward(r.tape, s)
	if err != nil {
		return nil, 0, withLines(pairs, err)
	}
	sc := make([]float64, s.N())
	for i, x := range v.Value.Data() {
		sc[i] = float64(x)
	}
	res, err := r.loss(sc, pairs)
	if err != nil {
		return nil, 0, withLines(pairs, err)
	}
	n := len(pairs)
	g := tensor.New(2*n, 1)
	for i := range n {
		g.Data()[i], g.Data()[n+i] = float32(scale*res.GradChosen[i]), float32(scale*res.GradRejected[i])
	}
	r.tape.Backward(v, g)
	return rewardMetrics(res), Tokens(pairs), nil
}

// Evaluate returns the ranking metrics on pairs, without gradients.
func (r *Reward) Evaluate(ctx context.Context, pairs []Pair) (map[string]float64, error) {
	if len(pairs) == 0 {
		return nil, nil
	}
	bs := max(1, r.Config.Batch)
	sums := map[string]float64{}
	for i := 0; i < len(pairs); i += bs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		batch := pairs[i:min(i+bs, len(pairs))]
		s, err := pairSeqs(batch, r.Config.Pad)
		if err != nil {
			return nil, err
		}
		sc, err := r.Model.Scores(s)
		if err != nil {
			return nil, withLines(batch, err)
		}
		res, err := r.loss(sc, batch)
		if err != nil {
			return nil, withLines(batch, err)
		}
		for k, v := range rewardMetrics(res) {
			sums[k] += v * float64(len(batch)) / float64(len(pairs))
		}
	}
	return sums, nil
}

func (r *Reward) eval(ctx context.Context) (map[string]float64, error) {
	return r.Evaluate(ctx, r.evalSet)
}

// Save writes the reward model to path (the body as an nn checkpoint)
// and path+".score" (the head, with its SHA-256), each atomically. A body
// carrying LoRA adapters is refused: merge them first (Adapter.Merge,
// then Model.RemoveLoRA).
func (r *RewardModel) Save(path string) error {
	if r.Body.LoRA() != nil {
		return errors.New("recipe: RewardModel.Save: the body carries adapters; merge and remove them first")
	}
	if err := r.Body.Save(path); err != nil {
		return err
	}
	ts := []nn.Tensor{{Name: "score.weight", Value: r.Head.Value}}
	return nn.SaveSafetensors(path+".score", ts, map[string]string{"sha256": checksum(ts), "pool": strconv.Itoa(int(r.Pool))})
}

// LoadRewardModel reads what Save wrote, verifying both checksums.
func LoadRewardModel(path string) (*RewardModel, error) {
	body, err := nn.LoadTinyLM(path)
	if err != nil {
		return nil, err
	}
	ts, md, err := nn.LoadSafetensors(path + ".score")
	if err != nil {
		return nil, err
	}
	if len(ts) != 1 || ts[0].Name != "score.weight" || checksum(ts) != md["sha256"] {
		return nil, fmt.Errorf("recipe: LoadRewardModel: %s.score: not a score head, or its checksum does not match", path)
	}
	if sh := ts[0].Value.Shape(); len(sh) != 2 || sh[0] != 1 || sh[1] != body.Config.DModel {
		return nil, fmt.Errorf("recipe: LoadRewardModel: %s.score: head of shape %v for width %d", path, sh, body.Config.DModel)
	}
	pool, err := strconv.Atoi(md["pool"])
	if err != nil || pool > int(MeanCompletion) || pool < 0 {
		return nil, fmt.Errorf("recipe: LoadRewardModel: %s.score: pooling %q", path, md["pool"])
	}
	return &RewardModel{Body: body, Head: autograd.Param(ts[0].Value), Pool: Pooling(pool)}, nil
}

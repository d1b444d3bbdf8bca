package recipe

import (
	"context"
	"errors"
	"fmt"

	"github.com/posttrain/posttrain/tensor/nn"
)

// SFT fine-tunes a model to produce the completions of examples given
// their prompts: the mean negative log-likelihood per completion token,
// prompts masked out of the loss, as TRL's SFTTrainer with
// completion_only_loss. A model carrying LoRA adapters trains only them.
//
// By default each example pads a row of its own. With Pack, each
// micro-batch's examples are packed into rows of at most PackLen tokens
// (Pack): attention stops at each example's end and its RoPE positions
// restart, so the loss and gradients are the padded batch's up to
// float32 rounding, for fewer padded positions when lengths vary.
type SFT struct {
	Model  *nn.Model
	Config Config
	// Pack packs each micro-batch (and evaluation batch) into rows.
	Pack bool
	// PackLen is the length of a packed row; 0 means the model's
	// context. Every example must fit in one.
	PackLen int

	train, evalSet []Example
	sc             *Scorer
}

// Train runs the configured steps on train, evaluating on eval (may be
// empty), and returns what it logged: loss (nats per completion token),
// mean_token_accuracy, grad_norm, learning_rate, epoch, num_tokens.
func (s *SFT) Train(ctx context.Context, train, eval []Example) (History, error) {
	if s.Model == nil {
		return nil, errors.New("recipe: SFT: no Model")
	}
	for _, set := range [][]Example{train, eval} {
		if err := checkExamples(set, s.Model); err != nil {
			return nil, err
		}
		if err := s.checkPack(set); err != nil {
			return nil, err
		}
	}
	s.train, s.evalSet, s.sc = train, eval, s.Config.scorer(s.Model)
	s.sc.Recompute, s.sc.ctx = s.Config.Recompute, ctx
	l := &loop{op: "SFT", cfg: s.Config, n: len(train), params: s.Model.TrainableParams(), zero: s.Model.ZeroGrad}
	return l.run(ctx, s)
}

func checkExamples(xs []Example, m *nn.Model) error {
	for i, x := range xs {
		where := recordName(i, x)
		switch {
		case len(x.Prompt) == 0:
			return fmt.Errorf("recipe: %s: empty prompt", where)
		case len(x.Completion) == 0:
			return fmt.Errorf("recipe: %s: empty completion", where)
		case len(x.Prompt)+len(x.Completion) > m.Config.Context:
			return fmt.Errorf("recipe: %s: %d tokens exceed the model's context of %d", where, len(x.Prompt)+len(x.Completion), m.Config.Context)
		}
		for _, seq := range [][]int32{x.Prompt, x.Completion} {
			if err := m.CheckTokens(seq); err != nil {
				return fmt.Errorf("recipe: %s: %w", where, err)
			}
		}
	}
	return nil
}

// packLen returns the length of a packed row.
func (s *SFT) packLen() int {
	if s.PackLen > 0 {
		return s.PackLen
	}
	return s.Model.Config.Context
}

// checkPack rejects, before training starts, an example that no packed
// row can hold.
func (s *SFT) checkPack(xs []Example) error {
	if !s.Pack {
		return nil
	}
	if s.PackLen < 0 || s.PackLen > s.Model.Config.Context {
		return fmt.Errorf("recipe: SFT: PackLen %d outside 0…%d (the model's context)", s.PackLen, s.Model.Config.Context)
	}
	w := s.packLen()
	for i, x := range xs {
		if l := len(x.Prompt) + len(x.Completion); l > w {
			return fmt.Errorf("recipe: SFT: %s: %d tokens exceed the packed row of %d", recordName(i, x), l, w)
		}
	}
	return nil
}

// seqs lays out a batch of examples, packed or padded.
func (s *SFT) seqs(xs []Example) (Seqs, error) {
	if s.Pack {
		return Pack(xs, s.packLen(), s.Config.Pad)
	}
	return exampleSeqs(xs, s.Config.Pad)
}

func exampleSeqs(xs []Example, pad int32) (Seqs, error) {
	ps, cs := make([][]int32, len(xs)), make([][]int32, len(xs))
	for i, x := range xs {
		ps[i], cs[i] = x.Prompt, x.Completion
	}
	return NewSeqs(ps, cs, pad)
}

func (s *SFT) micro(ctx context.Context, idx []int, pass uint64, scale float64) (map[string]float64, int, error) {
	if a := s.Model.LoRA(); a != nil {
		a.Pass = pass
	}
	xs := make([]Example, len(idx))
	tokens := 0
	for i, k := range idx {
		xs[i] = s.train[k]
		tokens += len(xs[i].Prompt) + len(xs[i].Completion)
	}
	seqs, err := s.seqs(xs)
	if err != nil {
		return nil, 0, err
	}
	lp, err := s.sc.Forward(seqs)
	if err != nil {
		return nil, 0, err
	}
	hits, n := s.sc.accuracy()
	var nll float64
	d := make([]float64, len(lp))
	for i := range lp {
		nll -= lp[i]
		d[i] = -scale / float64(n)
	}
	if err := s.sc.Backward(d); err != nil {
		return nil, 0, err
	}
	return map[string]float64{"loss": nll / float64(n), "mean_token_accuracy": float64(hits) / float64(n)}, tokens, nil
}

// Evaluate returns the loss and mean_token_accuracy over xs, without
// gradients, in batches of Config.Batch.
func (s *SFT) Evaluate(ctx context.Context, xs []Example) (map[string]float64, error) {
	if len(xs) == 0 {
		return nil, nil
	}
	sc := s.Config.scorer(s.Model)
	sc.ctx = ctx
	bs := max(1, s.Config.Batch)
	var nll float64
	var hits, n int
	for i := 0; i < len(xs); i += bs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		seqs, err := s.seqs(xs[i:min(i+bs, len(xs))])
		if err != nil {
			return nil, err
		}
		lp, err := sc.forward(seqs, false)
		if err != nil {
			return nil, err
		}
		for _, x := range lp {
			nll -= x
		}
		h, c := sc.accuracy()
		hits, n = hits+h, n+c
	}
	return map[string]float64{"loss": nll / float64(n), "mean_token_accuracy": float64(hits) / float64(n)}, nil
}

func (s *SFT) eval(ctx context.Context) (map[string]float64, error) {
	return s.Evaluate(ctx, s.evalSet)
}

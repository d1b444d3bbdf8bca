package recipe

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/posttrain/posttrain/distill/cache"
	"github.com/posttrain/posttrain/tensor"
	"github.com/posttrain/posttrain/tensor/autograd"
	"github.com/posttrain/posttrain/tensor/nn"
)

// PrecomputeTop1 runs teacher over a token stream in windows of seq
// tokens (the windows a next-token trainer reads, aligned to multiples of
// seq) and writes its top-1 prediction per token to a distill cache at
// path — AFM's top-1 teacher cache for distill.ConvexCombination — then
// reads the cache back, checksums verified, and returns the predictions:
// entry i is the teacher's prediction of token i+1 from the window
// holding token i. Only whole windows are covered. progress, if not nil,
// gets the running token count.
func PrecomputeTop1(ctx context.Context, teacher *nn.Model, tokens []int32, seq int, path string, progress func(done int64)) ([]int32, error) {
	if seq < 1 || len(tokens) < seq {
		return nil, fmt.Errorf("recipe: PrecomputeTop1: %d tokens hold no window of %d", len(tokens), seq)
	}
	n := (len(tokens) / seq) * seq
	w, err := cache.Create(path, cache.Format{Vocab: teacher.Config.Vocab, K: 1, PackIDs: true})
	if err != nil {
		return nil, fmt.Errorf("recipe: PrecomputeTop1: %w", err)
	}
	tp := autograd.NewTape()
	tp.NoGrad = true
	fn := func(batch []int32) (*tensor.Dense, error) {
		tp.Reset()
		logits, err := teacher.Forward(tp, batch, len(batch)/seq)
		if err != nil {
			return nil, err
		}
		return logits.Value, nil
	}
	if _, err := cache.Precompute(ctx, w, fn, cache.SliceTokens(tokens[:n]), 16*seq, progress); err != nil {
		w.Abort()
		return nil, fmt.Errorf("recipe: PrecomputeTop1: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("recipe: PrecomputeTop1: %w", err)
	}
	r, err := cache.Open(path)
	if err != nil {
		return nil, fmt.Errorf("recipe: PrecomputeTop1: %w", err)
	}
	defer r.Close()
	out := make([]int32, 0, n)
	for {
		b, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("recipe: PrecomputeTop1: %w", err)
		}
		out = append(out, b.IDs...)
	}
	if len(out) != n {
		return nil, fmt.Errorf("recipe: PrecomputeTop1: cache %s holds %d tokens, wrote %d", path, len(out), n)
	}
	return out, nil
}

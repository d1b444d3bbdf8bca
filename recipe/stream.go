package recipe

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/posttrain/posttrain/distill"
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
	t, err := precomputeStream(ctx, "PrecomputeTop1", teacher, tokens, seq, 1, path, progress)
	return t.IDs, err
}

// PrecomputeTopK is PrecomputeTop1 for the teacher's k most likely next
// tokens per token, with their log-probabilities (bfloat16), as
// distill.SparseKL reads them: row i holds the predictions of token i+1,
// in descending order of probability, so IDs[i·k] is the top-1.
func PrecomputeTopK(ctx context.Context, teacher *nn.Model, tokens []int32, seq, k int, path string, progress func(done int64)) (distill.TopK, error) {
	return precomputeStream(ctx, "PrecomputeTopK", teacher, tokens, seq, k, path, progress)
}

func precomputeStream(ctx context.Context, op string, teacher *nn.Model, tokens []int32, seq, k int, path string, progress func(done int64)) (distill.TopK, error) {
	if seq < 1 || len(tokens) < seq {
		return distill.TopK{}, fmt.Errorf("recipe: %s: %d tokens hold no window of %d", op, len(tokens), seq)
	}
	if k < 1 || k > teacher.Config.Vocab {
		return distill.TopK{}, fmt.Errorf("recipe: %s: k = %d outside [1, %d]", op, k, teacher.Config.Vocab)
	}
	n := (len(tokens) / seq) * seq
	f := cache.Format{Vocab: teacher.Config.Vocab, K: k, PackIDs: true}
	if k > 1 {
		f.LogProbs = cache.BF16
	}
	w, err := cache.Create(path, f)
	if err != nil {
		return distill.TopK{}, fmt.Errorf("recipe: %s: %w", op, err)
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
		return distill.TopK{}, fmt.Errorf("recipe: %s: %w", op, err)
	}
	if err := w.Close(); err != nil {
		return distill.TopK{}, fmt.Errorf("recipe: %s: %w", op, err)
	}
	r, err := cache.Open(path)
	if err != nil {
		return distill.TopK{}, fmt.Errorf("recipe: %s: %w", op, err)
	}
	defer r.Close()
	out := distill.TopK{K: k, IDs: make([]int32, 0, n*k)}
	if k > 1 {
		out.LogProbs = make([]float32, 0, n*k)
	}
	for {
		b, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return distill.TopK{}, fmt.Errorf("recipe: %s: %w", op, err)
		}
		out.IDs = append(out.IDs, b.IDs...)
		if k > 1 {
			out.LogProbs = append(out.LogProbs, b.LogProbs...)
		}
	}
	if len(out.IDs) != n*k {
		return distill.TopK{}, fmt.Errorf("recipe: %s: cache %s holds %d entries, wrote %d", op, path, len(out.IDs), n*k)
	}
	return out, nil
}

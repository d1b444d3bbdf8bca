package lab

import (
	"context"
	"fmt"
	"io"

	"github.com/posttrain/posttrain/distill"
	"github.com/posttrain/posttrain/distill/cache"
	"github.com/posttrain/posttrain/tensor"
	"github.com/posttrain/posttrain/tensor/autograd"
	"github.com/posttrain/posttrain/tensor/nn"
)

// PrecomputeTopK runs teacher over tokens in windows of seq tokens, as
// PrecomputeTop1 does, and writes its k most likely next tokens per token
// with their log-probabilities (bfloat16) to a distill cache at path; then
// it reads the cache back, verifying its checksums, and returns it. The
// ids of a row are in descending order of probability, so IDs[i·k] is the
// teacher's top-1 prediction for token i.
func PrecomputeTopK(ctx context.Context, teacher *nn.TinyLM, tokens []int32, seq, k int, path string, bar Bar) (distill.TopK, error) {
	n := (len(tokens) / seq) * seq
	w, err := cache.Create(path, cache.Format{Vocab: teacher.Config.Vocab, K: k, LogProbs: cache.BF16, PackIDs: true})
	if err != nil {
		return distill.TopK{}, err
	}
	tp := autograd.NewTape()
	tp.NoGrad = true // inference only: no graph to keep
	fn := func(batch []int32) (*tensor.Dense, error) {
		tp.Reset()
		logits, err := teacher.Forward(tp, batch, len(batch)/seq)
		if err != nil {
			return nil, err
		}
		return logits.Value, nil
	}
	var last int64
	_, err = cache.Precompute(ctx, w, fn, cache.SliceTokens(tokens[:n]), 16*seq, func(done int64) {
		bar.Add(int(done - last))
		last = done
	})
	if err != nil {
		w.Abort()
		return distill.TopK{}, err
	}
	if err := w.Close(); err != nil {
		return distill.TopK{}, err
	}
	r, err := cache.Open(path)
	if err != nil {
		return distill.TopK{}, err
	}
	defer r.Close()
	out := distill.TopK{K: k, IDs: make([]int32, 0, n*k), LogProbs: make([]float32, 0, n*k)}
	for {
		b, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return distill.TopK{}, err
		}
		out.IDs = append(out.IDs, b.IDs...)
		out.LogProbs = append(out.LogProbs, b.LogProbs...)
	}
	if len(out.IDs) != n*k {
		return distill.TopK{}, fmt.Errorf("lab: cache %s holds %d entries, wrote %d", path, len(out.IDs), n*k)
	}
	return out, nil
}

// Top1 returns the first (most likely) id of each row of t.
func Top1(t distill.TopK) []int32 {
	out := make([]int32, len(t.IDs)/t.K)
	for i := range out {
		out[i] = t.IDs[i*t.K]
	}
	return out
}

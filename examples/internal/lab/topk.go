package lab

import (
	"context"

	"github.com/posttrain/posttrain/distill"
	"github.com/posttrain/posttrain/recipe"
	"github.com/posttrain/posttrain/tensor/nn"
)

// PrecomputeTopK is recipe.PrecomputeTopK with a progress bar.
func PrecomputeTopK(ctx context.Context, teacher *nn.TinyLM, tokens []int32, seq, k int, path string, bar Bar) (distill.TopK, error) {
	return recipe.PrecomputeTopK(ctx, teacher, tokens, seq, k, path, bar.progress())
}

// Top1 returns the first (most likely) id of each row of t.
func Top1(t distill.TopK) []int32 {
	out := make([]int32, len(t.IDs)/t.K)
	for i := range out {
		out[i] = t.IDs[i*t.K]
	}
	return out
}

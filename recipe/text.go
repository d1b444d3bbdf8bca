package recipe

import (
	"context"

	"github.com/posttrain/posttrain/itec"
)

// TextReward is an itec.Scorer (a reward model over text, a labeler's
// score, an oracle) as the RewardFunc of Online: prompts and completions
// are decoded with tok and scored as text.
func TextReward(tok Tokenizer, s itec.Scorer) RewardFunc {
	return func(ctx context.Context, prompt []int32, cs [][]int32) ([]float64, error) {
		p, err := tok.Decode(prompt)
		if err != nil {
			return nil, err
		}
		ys := make([]string, len(cs))
		for i, y := range cs {
			if ys[i], err = tok.Decode(y); err != nil {
				return nil, err
			}
		}
		return s.Score(ctx, p, ys)
	}
}

package lab

import (
	"math"

	"github.com/posttrain/posttrain/recipe"
	"github.com/posttrain/posttrain/tensor/nn"
)

// Gen is a byte-level model as a recipe.Generator (an itec.Generator):
// n bytes at temperature 1, restricted to printable ASCII and newline
// (Printable), so responses stay valid UTF-8 text that JSONL
// round-trips exactly. A response is a pure function of (prompt, seed).
func Gen(m *nn.Model, n int) *recipe.Generator {
	return &recipe.Generator{Model: m, Tokenizer: recipe.Bytes{}, Sampling: ByteSampling(n)}
}

// ByteSampling is Gen's sampling: n bytes at temperature 1, Printable.
func ByteSampling(n int) recipe.Sampling {
	return recipe.Sampling{MaxTokens: n, Temperature: 1, Mask: Printable}
}

var negInf = float32(math.Inf(-1))

// Printable rules out every byte but printable ASCII and newline: a
// recipe.Sampling.Mask for byte-level models.
func Printable(logits []float32) {
	for i := range logits {
		if (i < ' ' && i != '\n') || i > '~' {
			logits[i] = negInf
		}
	}
}

// LogProbsOf returns the summed log-probs of responses[i] after
// prompts[i] under the byte-level model m, without gradients
// (recipe.Scorer.LogProbs).
func LogProbsOf(m *nn.Model, prompts, responses []string) ([]float64, error) {
	var tok nn.ByteTokenizer
	ps, rs := make([][]int32, len(prompts)), make([][]int32, len(prompts))
	for i := range prompts {
		ps[i], rs[i] = tok.Encode(prompts[i]), tok.Encode(responses[i])
	}
	s, err := recipe.NewSeqs(ps, rs, 0)
	if err != nil {
		return nil, err
	}
	return recipe.NewScorer(m).LogProbs(s)
}

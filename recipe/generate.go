package recipe

import (
	"context"
	"errors"
	"fmt"

	"github.com/posttrain/posttrain/tensor/nn"
)

// Tokenizer is the text interface of the text-level adapters (Generator,
// RewardModel.Scorer, Committee): hf.Tokenizer implements it, and Bytes
// adapts the byte-level nn.ByteTokenizer.
type Tokenizer interface {
	Encode(text string) ([]int32, error)
	Decode(ids []int32) (string, error)
}

// Bytes is nn.ByteTokenizer as a Tokenizer.
type Bytes struct{}

// Encode returns the bytes of text.
func (Bytes) Encode(text string) ([]int32, error) { return nn.ByteTokenizer{}.Encode(text), nil }

// Decode returns the text of byte ids.
func (Bytes) Decode(ids []int32) (string, error) { return nn.ByteTokenizer{}.Decode(ids) }

// Sampling configures how completions are drawn.
type Sampling struct {
	MaxTokens   int     // longest completion
	Temperature float64 // 0 is greedy
	TopK        int
	TopP        float64
	// Mask, when set, edits each step's logits before sampling — say, to
	// set forbidden tokens to −Inf. It must not keep the slice.
	Mask func(logits []float32)
}

// sample draws one completion per (prompt, seed), decoding them together
// with a KV cache; each stops after an end-of-sequence token of the model
// (kept), at MaxTokens, or when the context is full.
func (s Sampling) sample(ctx context.Context, m *nn.Model, prompts [][]int32, seeds []uint64) ([][]int32, error) {
	ss := make([]*nn.Sampler, len(seeds))
	for i, seed := range seeds {
		ss[i] = nn.NewSamplerWith(seed, nn.SamplerOptions{Temperature: s.Temperature, TopK: s.TopK, TopP: s.TopP, Mask: s.Mask})
	}
	out, err := m.GenerateBatchContext(ctx, prompts, s.MaxTokens, ss)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Generator is a model and its tokenizer as an itec.Generator: response j
// is sampled with seeds[j], so it is a function of (prompt, seed) alone.
// It is safe for concurrent use while the model is not being trained.
type Generator struct {
	Model     *nn.Model
	Tokenizer Tokenizer
	Sampling  Sampling
}

// Generate implements itec.Generator.
func (g *Generator) Generate(ctx context.Context, prompt string, seeds []uint64) ([]string, error) {
	ids, err := g.Tokenizer.Encode(prompt)
	if err != nil {
		return nil, fmt.Errorf("recipe: Generate: %w", err)
	}
	if len(ids) == 0 {
		return nil, errors.New("recipe: Generate: empty prompt")
	}
	ps := make([][]int32, len(seeds))
	for i := range ps {
		ps[i] = ids
	}
	comps, err := g.Sampling.sample(ctx, g.Model, ps, seeds)
	if err != nil {
		return nil, fmt.Errorf("recipe: Generate: %w", err)
	}
	out := make([]string, len(comps))
	for i, c := range comps {
		if out[i], err = g.Tokenizer.Decode(c); err != nil {
			return nil, fmt.Errorf("recipe: Generate: %w", err)
		}
	}
	return out, nil
}

package nn

import (
	"context"
	"errors"
	"math"
	"slices"
	"testing"
)

// TestSamplerMask: a mask that forbids tokens keeps them out of every
// draw, greedy or sampled, in Generate and GenerateBatch alike, and a
// greedy draw then takes the best allowed token.
func TestSamplerMask(t *testing.T) {
	even := func(l []float32) {
		for i := 1; i < len(l); i += 2 {
			l[i] = float32(math.Inf(-1))
		}
	}
	logits := []float32{0, 5, 3, 4}
	if tok, err := (&Sampler{Mask: even}).Sample(slices.Clone(logits)); err != nil || tok != 2 {
		t.Fatalf("greedy under the mask: token %d, %v; want 2", tok, err)
	}
	m := smallModel(t, 8)
	prompts := [][]int32{{1, 2, 3}, {4}, {5, 6}}
	for _, temp := range []float64{0, 1} {
		ss := make([]*Sampler, len(prompts))
		for i := range ss {
			ss[i] = NewSamplerWith(uint64(i), SamplerOptions{Temperature: temp, Mask: even})
		}
		out, err := m.GenerateBatch(prompts, 6, ss)
		if err != nil {
			t.Fatal(err)
		}
		for i, o := range out {
			if len(o) == 0 {
				t.Fatalf("temperature %v: sequence %d is empty", temp, i)
			}
			for _, tok := range o {
				if tok%2 != 0 {
					t.Fatalf("temperature %v: sequence %d drew masked token %d: %v", temp, i, tok, o)
				}
			}
		}
	}
	// Unmasked, greedy decoding of this model draws odd tokens: the mask
	// is what kept them out.
	out, err := m.GenerateBatch(prompts, 6, []*Sampler{NewSampler(0, 0, 0, 0), NewSampler(1, 0, 0, 0), NewSampler(2, 0, 0, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(slices.Concat(out...), func(tok int32) bool { return tok%2 != 0 }) {
		t.Fatal("the unmasked model draws no odd token, so the mask test above proves nothing")
	}
}

// TestGenerateBatchContext: a cancelled context stops decoding with its
// error.
func TestGenerateBatchContext(t *testing.T) {
	m := smallModel(t, 8)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := m.GenerateBatchContext(ctx, [][]int32{{1, 2}}, 4, []*Sampler{NewSampler(1, 0, 0, 0)}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
}

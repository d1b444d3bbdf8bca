package recipe

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/posttrain/posttrain/tensor/nn"
)

// BenchmarkSFTMicro times one SFT micro-batch (forward and backward) of
// 16 examples of 16 to 496 tokens, padded to the longest and packed
// into rows of 512, on a 4-layer width-128 model; it reports the
// positions each runs and the real tokens per second.
func BenchmarkSFTMicro(b *testing.B) {
	cfg := nn.Config{Vocab: 512, DModel: 128, Layers: 4, Heads: 4, KVHeads: 2, Context: 512, Hidden: 256}
	rng := rand.New(rand.NewPCG(8, 8))
	xs := make([]Example, 16)
	idx := make([]int, len(xs))
	tokens := 0
	for i := range xs {
		ids := make([]int32, 16+rng.IntN(481))
		for j := range ids {
			ids[j] = int32(rng.IntN(cfg.Vocab))
		}
		xs[i] = Example{Prompt: ids[:len(ids)/4], Completion: ids[len(ids)/4:]}
		idx[i] = i
		tokens += len(ids)
	}
	for _, pack := range []bool{false, true} {
		name := "padded"
		if pack {
			name = "packed"
		}
		b.Run(name, func(b *testing.B) {
			m, err := nn.NewModel(cfg, 1)
			if err != nil {
				b.Fatal(err)
			}
			s := &SFT{Model: m, Pack: pack, Config: Config{Batch: len(xs)}}
			s.train, s.sc = xs, s.Config.scorer(m)
			seqs, _ := s.seqs(xs)
			for b.Loop() {
				m.ZeroGrad()
				if _, _, err := s.micro(context.Background(), idx, 0, 1); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(seqs.Tokens)), "positions")
			b.ReportMetric(float64(tokens)*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}

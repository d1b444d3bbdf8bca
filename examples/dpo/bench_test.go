package main

import (
	"math/rand/v2"
	"testing"

	"github.com/posttrain/posttrain/prefopt"
	"github.com/posttrain/posttrain/recipe"
	"github.com/posttrain/posttrain/tensor/nn"
)

// BenchmarkModelStep times one DPO micro-batch of the -model path — the
// policy's forward and backward passes through the LoRA adapters (rank
// 16 on q, k, v, o) and the reference's forward pass (the same model,
// adapters off) — on a random model with the shapes of the checkpoints
// the README names, for 2 pairs of a 256-token prompt and 128-token
// completions. It is heavy (SmolLM2-135M takes seconds per step on two
// cores); run one size at a time:
//
//	go test -run '^$' -bench 'ModelStep/smollm2-135m' -benchtime 3x ./examples/dpo
func BenchmarkModelStep(b *testing.B) {
	for _, s := range []struct {
		name string
		cfg  nn.Config
	}{
		{"smollm2-135m", nn.Config{Vocab: 49152, DModel: 576, Layers: 30, Heads: 9, KVHeads: 3, Hidden: 1536, Context: 2048, RoPE: 100000, Tied: true, Eps: 1e-5}},
		{"qwen2.5-0.5b", nn.Config{Vocab: 151936, DModel: 896, Layers: 24, Heads: 14, KVHeads: 2, Hidden: 4864, Context: 2048, RoPE: 1e6, Tied: true, QKVBias: true, Eps: 1e-6}},
	} {
		b.Run(s.name, func(b *testing.B) {
			m, err := nn.NewModel(s.cfg, 1)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := m.AddLoRA(nn.LoRAConfig{Rank: 16, Alpha: 32, Targets: []string{"q", "k", "v", "o"}}, 2); err != nil {
				b.Fatal(err)
			}
			r := rand.New(rand.NewPCG(1, 2))
			ids := func(n int) []int32 {
				x := make([]int32, n)
				for i := range x {
					x[i] = r.Int32N(int32(s.cfg.Vocab))
				}
				return x
			}
			pairs := []recipe.Pair{
				{Prompt: ids(256), Chosen: ids(128), Rejected: ids(128)},
				{Prompt: ids(256), Chosen: ids(128), Rejected: ids(128)},
			}
			p := &recipe.Preference{Policy: m, Objective: prefopt.DPO{Beta: 0.1}}
			for b.Loop() {
				if _, err := p.Step(pairs, nil, 1); err != nil {
					b.Fatal(err)
				}
				m.ZeroGrad()
			}
			b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/step")
		})
	}
}

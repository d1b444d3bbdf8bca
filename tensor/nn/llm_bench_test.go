package nn

import (
	"fmt"
	"testing"

	"github.com/posttrain/posttrain/internal/cputime"
	"github.com/posttrain/posttrain/tensor"
)

// smolConfig is SmolLM2-135M's shape (random weights): the workload of
// bench/compare.sh's llm section, whose PyTorch side is bench/llm_anchor.py.
var smolConfig = Config{Vocab: 49152, DModel: 576, Layers: 30, Heads: 9, KVHeads: 3, Context: 2048, Hidden: 1536,
	Eps: 1e-5, RoPE: 100000, Tied: true}

// BenchmarkLLMStep times forward + cross-entropy + backward + AdamW on
// batch×T tokens at SmolLM2-135M's shape; it reports tokens/s and the
// achieved GFLOP/s counting 6·params + attention per token, and the
// tokens per CPU-second, which a shared machine disturbs less than the
// wall clock (bench/llm_anchor.py prints the same for PyTorch).
func BenchmarkLLMStep(b *testing.B) {
	cfg, batch, tt := smolConfig, 4, 256
	b.Run(fmt.Sprintf("smol135m-%dx%d", batch, tt), func(b *testing.B) {
		c := cfg
		c.Context = tt
		tr := newTrainer(b, c, batch)
		tr.step(b)
		cpu := cputime.Process()
		for b.Loop() {
			tr.step(b)
		}
		cpu = cputime.Process() - cpu
		tokens := float64(batch*tt) * float64(b.N) / b.Elapsed().Seconds()
		b.ReportMetric(tokens, "tokens/s")
		b.ReportMetric(tokens*stepFLOPs(tr.m, tt)/1e9, "GFLOP/s")
		if cpu > 0 {
			b.ReportMetric(float64(batch*tt*b.N)/cpu.Seconds(), "tokens/cpu-s")
		}
	})
}

// stepFLOPs is the floating-point work of training on one token of a
// sequence of length tt: 6 per weight (forward 2, backward 4) plus the
// attention products, 6·2·T/2·Heads·HeadDim per layer on average.
func stepFLOPs(m *Model, tt int) float64 {
	c := m.Config
	w := float64(m.NumParams())
	if c.Tied {
		w += float64(c.Vocab * c.DModel) // the head's product is work too
	}
	w -= float64(c.Vocab * c.DModel) // the embedding lookup is not
	attn := 6 * 2 * float64(tt) / 2 * float64(c.Heads*c.HeadDim) * float64(c.Layers)
	return 6*w + attn
}

// BenchmarkLLMDecode times greedy generation with the KV cache at
// SmolLM2-135M's shape: prompts of 64 tokens, 128 new tokens each, one
// sequence and eight, with float32 weights and frozen in bfloat16
// (FreezeBF16, "-bf16-"); it reports new tokens per second and the
// megabytes of weights a step reads (the bandwidth bound is copy
// bandwidth, BenchmarkCopy, over them).
func BenchmarkLLMDecode(b *testing.B) {
	m, err := NewModel(smolConfig, 1)
	if err != nil {
		b.Fatal(err)
	}
	fz := m.Clone()
	if err := fz.FreezeBF16(); err != nil {
		b.Fatal(err)
	}
	for _, v := range []struct {
		name string
		m    *Model
	}{{"", m}, {"-bf16", fz}} {
		for _, batch := range []int{1, 8} {
			b.Run(fmt.Sprintf("smol135m%s-b%d-p64-n128", v.name, batch), func(b *testing.B) {
				prompts := make([][]int32, batch)
				ss := make([]*Sampler, batch)
				for i := range prompts {
					prompts[i] = randTokens(64, smolConfig.Vocab, uint64(i))
				}
				for b.Loop() {
					for i := range ss {
						ss[i] = NewSampler(uint64(i), 0, 0, 0)
					}
					if _, err := v.m.GenerateBatch(prompts, 128, ss); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(batch*128*b.N)/b.Elapsed().Seconds(), "tokens/s")
				b.ReportMetric(float64(v.m.WeightBytes())/1e6, "MB/step")
			})
		}
	}
}

// BenchmarkCopy measures the copy bandwidth that bounds decoding: the
// float32 weights are read once per step.
func BenchmarkCopy(b *testing.B) {
	const n = 64 << 20 // 256 MiB, far beyond the caches
	src, dst := tensor.New(n), tensor.New(n)
	for b.Loop() {
		copy(dst.Data(), src.Data())
	}
	b.ReportMetric(float64(8*n*b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
}

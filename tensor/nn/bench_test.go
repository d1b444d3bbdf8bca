package nn

import (
	"testing"

	"github.com/posttrain/posttrain/tensor"
	"github.com/posttrain/posttrain/tensor/autograd"
)

// trainer is one training step of a TinyLM on a fixed batch, with the
// tape reused across steps so that buffers are allocated once.
type trainer struct {
	m      *TinyLM
	opt    *AdamW
	tp     *autograd.Tape
	in, tg []int32
	batch  int
}

func newTrainer(tb testing.TB, cfg Config, batch int) *trainer {
	m, err := NewTinyLM(cfg, 0)
	if err != nil {
		tb.Fatal(err)
	}
	tt := cfg.Context
	seq := randTokens(batch*(tt+1), cfg.Vocab, 1)
	tr := &trainer{m: m, opt: NewAdamW(m.Params(), 1e-3), tp: autograd.NewTape(), batch: batch}
	for b := range batch {
		s := seq[b*(tt+1) : (b+1)*(tt+1)]
		tr.in, tr.tg = append(tr.in, s[:tt]...), append(tr.tg, s[1:]...)
	}
	return tr
}

func (tr *trainer) step(tb testing.TB) float32 {
	tr.tp.Reset()
	tr.m.ZeroGrad()
	logits, err := tr.m.Forward(tr.tp, tr.in, tr.batch)
	if err != nil {
		tb.Fatal(err)
	}
	l, err := tr.tp.CrossEntropy(logits, tr.tg)
	if err != nil {
		tb.Fatal(err)
	}
	tr.tp.Backward(l, nil)
	if _, err := tr.opt.Step(); err != nil {
		tb.Fatal(err)
	}
	return l.Value.Data()[0]
}

// BenchmarkTinyLMStep times one step (forward, cross-entropy, backward,
// AdamW) of the PyTorch anchor's model (AnchorConfig, batch 16, context
// 128; the PyTorch side is bench/anchor.py tinylm) and a smaller one.
func BenchmarkTinyLMStep(b *testing.B) {
	for _, c := range []struct {
		name  string
		cfg   Config
		batch int
	}{
		{"d64-L2-B8xT64", Config{Vocab: 256, DModel: 64, Layers: 2, Heads: 2, Context: 64, Hidden: 128}, 8},
		{"anchor-d128-L4-B16xT128", AnchorConfig, 16},
	} {
		b.Run(c.name, func(b *testing.B) {
			tr := newTrainer(b, c.cfg, c.batch)
			tr.step(b) // first step sizes the tape's buffers
			b.ReportAllocs()
			for b.Loop() {
				tr.step(b)
			}
			tokens := float64(c.batch * c.cfg.Context)
			b.ReportMetric(tokens*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}

// BenchmarkDecode times KV-cache decoding of a full context.
func BenchmarkDecode(b *testing.B) {
	m, _ := NewTinyLM(AnchorConfig, 0)
	d := m.NewDecoder()
	n := m.Config.Context
	for b.Loop() {
		d.Reset()
		for i := range n {
			d.Step(int32(i % m.Config.Vocab))
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "tokens/s")
}

// BenchmarkAdamW times one AdamW step (gradient norm, clipping, update)
// on a SmolLM2-sized head, one 49,152 × 576 matrix of 28.3M parameters,
// on the active tier and on the generic twin (the scalar loop the vector
// kernel replaced, rounding the same). The PyTorch side is bench/anchor.py
// adamw.
func BenchmarkAdamW(b *testing.B) {
	for _, tier := range []string{tensor.Tier(), "generic"} {
		b.Run(tier+"/49152x576", func(b *testing.B) {
			prev, err := tensor.SetTier(tier)
			if err != nil {
				b.Fatal(err)
			}
			defer tensor.SetTier(prev)
			w := autograd.Param(tensor.New(49152, 576))
			for i, g := range w.Grad.Data() {
				w.Value.Data()[i], g = 0.02, float32(i%7)*1e-4
				w.Grad.Data()[i] = g
			}
			o := NewAdamW([]Named{{Name: "w", Var: w}}, 1e-3)
			o.ClipNorm = 1
			if _, err := o.Step(); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := o.Step(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(28*49152*576)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
		})
	}
}

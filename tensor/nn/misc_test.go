package nn

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/posttrain/posttrain/tensor"
	"github.com/posttrain/posttrain/tensor/autograd"
)

func TestSampler(t *testing.T) {
	logits := []float32{float32(math.Log(0.5)), float32(math.Log(0.3)), float32(math.Log(0.2))}
	freq := func(t *testing.T, s *Sampler) []float64 {
		c := make([]float64, 3)
		const n = 20000
		for range n {
			id, err := s.Sample(logits)
			if err != nil {
				t.Fatal(err)
			}
			c[id] += 1.0 / n
		}
		return c
	}
	for _, tc := range []struct {
		name string
		s    *Sampler
		want []float64
	}{
		{"greedy", NewSampler(1, 0, 0, 0), []float64{1, 0, 0}},
		{"top-k 1", NewSampler(1, 1, 1, 0), []float64{1, 0, 0}},
		{"full", NewSampler(1, 1, 0, 0), []float64{0.5, 0.3, 0.2}},
		{"top-k 2", NewSampler(2, 1, 2, 0), []float64{0.625, 0.375, 0}},
		{"top-p 0.7", NewSampler(3, 1, 0, 0.7), []float64{0.625, 0.375, 0}},
		{"top-p 0.4", NewSampler(3, 1, 0, 0.4), []float64{1, 0, 0}},
		// temperature 2 flattens p to ∝ √p
		{"temperature 2", NewSampler(4, 2, 0, 0), []float64{0.4155, 0.3218, 0.2628}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// 0.015: over four standard errors (√(p(1−p)/n) ≤ 0.0036) of
			// a frequency over freq's 20,000 draws.
			assert.InDeltaSlice(t, tc.want, freq(t, tc.s), 0.015, "frequencies")
		})
	}
	a, b := NewSampler(7, 1, 0, 0.9), NewSampler(7, 1, 0, 0.9)
	for range 100 {
		x, _ := a.Sample(logits)
		y, _ := b.Sample(logits)
		if x != y {
			t.Fatal("same seed, different draws")
		}
	}
	if _, err := NewSampler(1, 1, 0, 0).Sample([]float32{0, float32(math.NaN())}); err == nil || !strings.Contains(err.Error(), "logit 1 is NaN") {
		t.Errorf("NaN logits: %v", err)
	}
	if _, err := NewSampler(1, 1, 0, 0).Sample([]float32{float32(math.Inf(1)), 0}); err == nil || !strings.Contains(err.Error(), "logit 0 is +Inf") {
		t.Errorf("+Inf logits: %v", err)
	}
	ninf := float32(math.Inf(-1))
	if _, err := NewSampler(1, 1, 0, 0).Sample([]float32{ninf, ninf}); err == nil {
		t.Error("all -Inf logits accepted")
	}
	for range 50 { // a -Inf logit is never drawn
		if id, err := NewSampler(1, 1, 0, 0.99).Sample([]float32{ninf, 0, 1}); err != nil || id == 0 {
			t.Fatalf("masked token drawn: %d, %v", id, err)
		}
	}
	if _, err := NewSampler(1, -1, 0, 0).Sample(logits); err == nil {
		t.Error("negative temperature accepted")
	}
	if _, err := NewSampler(1, 1, 0, 1.5).Sample(logits); err == nil {
		t.Error("top-p 1.5 accepted")
	}
}

func TestGenerate(t *testing.T) {
	m := smallModel(t, 8)
	prompt := []int32{1, 2, 3}
	a, err := m.Generate(prompt, 5, NewSampler(9, 0.8, 10, 0.95))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := m.Generate(prompt, 5, NewSampler(9, 0.8, 10, 0.95))
	if len(a) != 5 || !slices.Equal(a, b) {
		t.Fatalf("generations %v and %v", a, b)
	}
	long, err := m.Generate(prompt, 100, NewSampler(9, 0, 0, 0))
	if err != nil || len(long) != m.Config.Context-len(prompt)+1 {
		t.Fatalf("generation past the context: %d tokens, %v", len(long), err)
	}
	// Greedy generation continues as the full forward's argmax does.
	seq := append(slices.Clone(prompt), long[:4]...)
	tp := autograd.NewTape()
	logits, _ := m.Forward(tp, seq, 1)
	v := m.Config.Vocab
	for i := len(prompt) - 1; i < len(seq); i++ {
		row := logits.Value.Data()[i*v : (i+1)*v]
		if got := int32(slices.Index(row, slices.Max(row))); got != long[i-len(prompt)+1] {
			t.Fatalf("position %d: forward argmax %d, generated %d", i, got, long[i-len(prompt)+1])
		}
	}
	if _, err := m.Generate([]int32{99}, 1, NewSampler(1, 0, 0, 0)); err == nil {
		t.Error("bad prompt accepted")
	}
}

func TestByteTokenizer(t *testing.T) {
	var tok ByteTokenizer
	s := "héllo, 世界\x00\xff"
	ids := tok.Encode(s)
	if len(ids) != len(s) || tok.Vocab() != 256 {
		t.Fatalf("%d ids for %d bytes", len(ids), len(s))
	}
	back, err := tok.Decode(ids)
	if err != nil || back != s {
		t.Fatalf("round trip %q, %v", back, err)
	}
	if _, err := tok.Decode([]int32{104, 256}); err == nil || !strings.Contains(err.Error(), "id 256 at position 1") {
		t.Errorf("bad id: %v", err)
	}
}

func TestWarmupCosine(t *testing.T) {
	// warmup 4, total 14: linear to the peak 1 at step 3, then the cosine
	// from step 4 (peak) to 14 (floor 0.1), through its midpoint 0.55 at 9.
	sched := CosineSchedule{Warmup: 4, Total: 14, Peak: 1, Floor: 0.1}
	for _, tc := range []struct {
		step int
		want float64
	}{
		{0, 0.25}, {3, 1}, {4, 1}, {9, 0.55}, {14, 0.1}, {20, 0.1},
	} {
		t.Run(fmt.Sprintf("step=%d", tc.step), func(t *testing.T) {
			// The closed form evaluates cos at 0, π/2 or π: exact but
			// for the rounding of 0.5·0.9·(1+cos), a few ulp.
			assert.InDelta(t, tc.want, sched.LR(tc.step), 1e-12, "CosineSchedule")
			assert.InDelta(t, tc.want, WarmupCosine(tc.step, 4, 14, 1, 0.1), 1e-12, "WarmupCosine")
		})
	}
	assert.Zero(t, CosineSchedule{}.LR(3), "the zero value")
	assert.Equal(t, 0.5, CosineSchedule{Total: 10, Peak: 0.5}.LR(0), "no warmup starts at the peak")
}

func TestAdamWNonFinite(t *testing.T) {
	m := smallModel(t, 10)
	opt := NewAdamW(m.Params(), 1e-2)
	before := slices.Clone(m.Head.W.Value.Data())
	m.Head.W.Grad.Data()[3] = float32(math.Inf(1))
	if _, err := opt.Step(); err == nil || !strings.Contains(err.Error(), "gradient norm") {
		t.Fatalf("infinite gradient: %v", err)
	}
	if !slices.Equal(before, m.Head.W.Value.Data()) || opt.Steps() != 0 {
		t.Fatal("failed step changed the weights")
	}
}

// TestPrune checks magnitude pruning: at full size nothing changes; units
// with zero weights go first and removing them leaves the function
// unchanged; the kept units are the highest-scoring ones.
func TestPrune(t *testing.T) {
	m := smallModel(t, 11)
	toks := randTokens(2*m.Config.Context, m.Config.Vocab, 12)
	logits := func(m *TinyLM) []float32 {
		tp := autograd.NewTape()
		tp.NoGrad = true
		l, err := m.Forward(tp, toks, 2)
		if err != nil {
			t.Fatal(err)
		}
		return l.Value.Data()
	}
	want := logits(m)
	same, err := m.PruneFFN(m.Config.Hidden)
	if err != nil || !slices.Equal(logits(same), want) {
		t.Fatalf("pruning to full size changed the model (%v)", err)
	}
	// Silence 8 units per block: zero gate rows in block 0, down columns in block 1.
	dead := []int{0, 5, 6, 17, 20, 31, 40, 47}
	for _, j := range dead {
		clear(m.Blocks[0].MLP.Gate.W.Value.Row(j))
		dn := m.Blocks[1].MLP.Down.W.Value
		for i := range dn.Dim(0) {
			dn.Row(i)[j] = 0
		}
	}
	want = logits(m)
	small, err := m.PruneFFN(m.Config.Hidden - len(dead))
	if err != nil {
		t.Fatal(err)
	}
	if small.Config.Hidden != 40 || small.Blocks[0].MLP.Up.W.Value.Dim(0) != 40 || small.Blocks[1].MLP.Down.W.Value.Dim(1) != 40 {
		t.Fatalf("pruned shapes wrong: %+v", small.Config)
	}
	for i, v := range logits(small) {
		assert.InDelta(t, float64(want[i]), float64(v), 1e-5*max(1, math.Abs(float64(want[i]))), "logit %d: pruned %v, original %v", i, v, want[i])
	}
	if small.NumParams() >= m.NumParams() {
		t.Error("pruned model is not smaller")
	}
	// Kept units of a further prune are the top scores.
	scores := m.Blocks[1].FFNScores()
	tiny, _ := m.PruneFFN(10)
	kept := tiny.Blocks[1].MLP.Gate.W.Value
	order := topUnits(scores, 10)
	for k, j := range order {
		if !slices.Equal(kept.Row(k), m.Blocks[1].MLP.Gate.W.Value.Row(j)) {
			t.Fatalf("kept row %d is not unit %d", k, j)
		}
	}
	minKept := math.Inf(1)
	for _, j := range order {
		minKept = min(minKept, scores[j])
	}
	for j, s := range scores {
		if !slices.Contains(order, j) && s > minKept {
			t.Fatalf("dropped unit %d (score %v) outranks a kept one (%v)", j, s, minKept)
		}
	}
	for _, h := range []int{0, -1, 49} {
		if _, err := m.PruneFFN(h); err == nil {
			t.Errorf("hidden %d accepted", h)
		}
	}
}

// TestExternalSeed drives the backward pass with dLoss/dlogits computed
// outside the tape, as distill and prefopt return it, and expects the
// parameter gradients of the on-tape cross-entropy.
func TestExternalSeed(t *testing.T) {
	m := smallModel(t, 13)
	toks := randTokens(2*8, m.Config.Vocab, 14)
	grads := func(external bool) []float32 {
		m.ZeroGrad()
		tp := autograd.NewTape()
		logits, err := m.Forward(tp, toks, 2)
		if err != nil {
			t.Fatal(err)
		}
		if !external {
			l, _ := tp.CrossEntropy(logits, toks)
			tp.Backward(l, nil)
		} else {
			n, v := logits.Value.Dim(0), logits.Value.Dim(1)
			seed := tensor.New(n, v)
			for i := range n {
				row, g := logits.Value.Row(i), seed.Row(i)
				tensor.Softmax(g, row)
				g[toks[i]]--
				tensor.Scale(g, 1/float32(n), g)
			}
			tp.Backward(logits, seed)
		}
		var all []float32
		for _, p := range m.Params() {
			all = append(all, p.Var.Grad.Data()...)
		}
		return all
	}
	a, b := grads(false), grads(true)
	for i := range a {
		assert.InDelta(t, float64(b[i]), float64(a[i]), 1e-5*max(1, math.Abs(float64(b[i]))), "grad %d: on-tape %v, seeded %v", i, a[i], b[i])
	}
}

func TestClone(t *testing.T) {
	m := smallModel(t, 15)
	c := m.Clone()
	for i, p := range m.Params() {
		q := c.Params()[i]
		if !slices.Equal(p.Var.Value.Data(), q.Var.Value.Data()) || p.Var.Value == q.Var.Value {
			t.Fatalf("%s: clone differs or shares storage", p.Name)
		}
	}
	c.Head.W.Value.Data()[0]++
	if m.Head.W.Value.Data()[0] == c.Head.W.Value.Data()[0] {
		t.Fatal("clone shares weights")
	}
}

// TestConcurrentDecoders runs decoders of one model in parallel (under
// -race this checks they share nothing writable) and expects the
// generations of sequential runs.
func TestConcurrentDecoders(t *testing.T) {
	m := smallModel(t, 16)
	want := make([][]int32, 4)
	for i := range want {
		want[i], _ = m.Generate([]int32{int32(i)}, 8, NewSampler(uint64(i), 1, 0, 0))
	}
	got := make([][]int32, 4)
	var wg sync.WaitGroup
	for i := range got {
		wg.Go(func() { got[i], _ = m.Generate([]int32{int32(i)}, 8, NewSampler(uint64(i), 1, 0, 0)) })
	}
	wg.Wait()
	for i := range got {
		if !slices.Equal(got[i], want[i]) {
			t.Fatalf("sequence %d: parallel %v, sequential %v", i, got[i], want[i])
		}
	}
}

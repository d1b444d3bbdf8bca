package nn

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/posttrain/posttrain/tensor"
	"github.com/posttrain/posttrain/tensor/autograd"
)

type tinyGolden struct {
	Tokens  []int32              `json:"tokens"`
	Targets []int32              `json:"targets"`
	Batch   int                  `json:"batch"`
	Logits  []float64            `json:"logits"`
	Loss    float64              `json:"loss"`
	Grads   map[string][]float64 `json:"grads"`
	AdamW   struct {
		LR          float64              `json:"lr"`
		WeightDecay float64              `json:"weight_decay"`
		Clip        float64              `json:"clip"`
		GradNorms   []float64            `json:"grad_norms"`
		Weights     map[string][]float64 `json:"weights"`
	} `json:"adamw"`
}

// TestTinyGolden checks the model (loaded from a checkpoint written in
// Python), its logits, loss and every gradient, and two AdamW steps with
// clipping, against the PyTorch implementation in testdata/gen_golden.py.
func TestTinyGolden(t *testing.T) {
	var g tinyGolden
	b, err := os.ReadFile("testdata/tiny.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	m, err := LoadTinyLM("testdata/tiny.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	tp := autograd.NewTape()
	step := func() (*autograd.Var, float64) {
		tp.Reset()
		m.ZeroGrad()
		logits, err := m.Forward(tp, g.Tokens, g.Batch)
		if err != nil {
			t.Fatal(err)
		}
		loss, err := tp.CrossEntropy(logits, g.Targets)
		if err != nil {
			t.Fatal(err)
		}
		tp.Backward(loss, nil)
		return logits, float64(loss.Value.Data()[0])
	}
	logits, loss := step()
	for i, want := range g.Logits {
		got := float64(logits.Value.Data()[i])
		assert.InDelta(t, want, got, 1e-5*max(1, math.Abs(want)), "logit %d = %v, want %v", i, got, want)
	}
	assert.InDelta(t, g.Loss, loss, 1e-6*max(1, math.Abs(g.Loss)), "loss %v, want %v", loss, g.Loss)
	for _, p := range m.Params() {
		for i, want := range g.Grads[p.Name] {
			got := float64(p.Var.Grad.Data()[i])
			assert.InDelta(t, want, got, 1e-4*max(1, math.Abs(want)), "grad %s[%d] = %v, want %v", p.Name, i, got, want)
		}
	}
	opt := NewAdamW(m.Params(), g.AdamW.LR)
	opt.WeightDecay, opt.ClipNorm = g.AdamW.WeightDecay, g.AdamW.Clip
	for s := range 2 {
		if s > 0 {
			step()
		}
		norm, err := opt.Step()
		require.NoError(t, err, "step %d", s)
		require.InDelta(t, g.AdamW.GradNorms[s], norm, 1e-5*max(1, math.Abs(g.AdamW.GradNorms[s])), "step %d: grad norm", s)
	}
	for _, p := range m.Params() {
		for i, want := range g.AdamW.Weights[p.Name] {
			got := float64(p.Var.Value.Data()[i])
			assert.InDelta(t, want, got, 1e-5*max(1, math.Abs(want)), "after AdamW %s[%d] = %v, want %v", p.Name, i, got, want)
		}
	}
}

func smallModel(t testing.TB, seed uint64) *TinyLM {
	m, err := NewTinyLM(Config{Vocab: 32, DModel: 32, Layers: 2, Heads: 2, Context: 16, Hidden: 48}, seed)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func randTokens(n, vocab int, seed uint64) []int32 {
	x := seed
	out := make([]int32, n)
	for i := range out {
		x = x*6364136223846793005 + 1442695040888963407
		out[i] = int32((x >> 33) % uint64(vocab))
	}
	return out
}

// TestOverfit trains on one tiny batch until the loss is near zero.
func TestOverfit(t *testing.T) {
	m := smallModel(t, 1)
	const batch, tt = 2, 12
	seq := randTokens(batch*(tt+1), m.Config.Vocab, 9)
	var in, tg []int32
	for b := range batch {
		s := seq[b*(tt+1) : (b+1)*(tt+1)]
		in, tg = append(in, s[:tt]...), append(tg, s[1:]...)
	}
	opt := NewAdamW(m.Params(), 0)
	opt.ClipNorm = 1
	tp := autograd.NewTape()
	const steps = 60
	var loss float64
	for s := range steps {
		tp.Reset()
		m.ZeroGrad()
		logits, err := m.Forward(tp, in, batch)
		if err != nil {
			t.Fatal(err)
		}
		l, err := tp.CrossEntropy(logits, tg)
		if err != nil {
			t.Fatal(err)
		}
		tp.Backward(l, nil)
		opt.LR = CosineSchedule{Warmup: 5, Total: steps, Peak: 2e-2, Floor: 1e-3}.LR(s)
		if _, err := opt.Step(); err != nil {
			t.Fatal(err)
		}
		loss = float64(l.Value.Data()[0])
	}
	t.Logf("loss after %d steps: %.3g", steps, loss)
	if loss > 0.01 {
		t.Fatalf("loss after %d steps %v, want < 0.01 (start ≈ ln 32 = 3.47)", steps, loss)
	}
}

// TestDecoderMatchesForward checks that KV-cache decoding gives the
// logits of the full forward at every position of every sequence.
func TestDecoderMatchesForward(t *testing.T) {
	m := smallModel(t, 2)
	const batch = 2
	tt := m.Config.Context
	toks := randTokens(batch*tt, m.Config.Vocab, 3)
	tp := autograd.NewTape()
	tp.NoGrad = true
	full, err := m.Forward(tp, toks, batch)
	if err != nil {
		t.Fatal(err)
	}
	v := m.Config.Vocab
	d := m.NewDecoder()
	for b := range batch {
		d.Reset()
		for i := range tt {
			got, err := d.Step(toks[b*tt+i])
			if err != nil {
				t.Fatal(err)
			}
			want := full.Value.Data()[(b*tt+i)*v : (b*tt+i+1)*v]
			for j := range got {
				assert.InDelta(t, float64(want[j]), float64(got[j]), 1e-5*max(1, math.Abs(float64(want[j]))), "seq %d pos %d logit %d: cache %v, full %v", b, i, j, got[j], want[j])
			}
		}
	}
	if _, err := d.Step(0); err == nil || !strings.Contains(err.Error(), "full") {
		t.Errorf("step past the context: %v", err)
	}
	d.Reset()
	if _, err := d.Step(int32(v)); err == nil {
		t.Error("out-of-vocabulary token accepted")
	}
}

func TestForwardErrors(t *testing.T) {
	m := smallModel(t, 3)
	tp := autograd.NewTape()
	for _, tc := range []struct {
		toks  []int32
		batch int
		want  string
	}{
		{[]int32{1, 2, 3}, 2, "do not split"},
		{make([]int32, 17), 1, "exceeds context"},
		{[]int32{1, 40}, 1, "token 40 at position 1"},
		{[]int32{-1}, 1, "token -1 at position 0"},
	} {
		if _, err := m.Forward(tp, tc.toks, tc.batch); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.toks, err, tc.want)
		}
	}
	if tp.Len() != 0 {
		t.Error("failed Forward recorded ops")
	}
	for _, c := range []Config{{Vocab: 8, DModel: 6, Layers: 1, Heads: 4, Context: 4}, {Vocab: 8, DModel: 6, Layers: 1, Heads: 2, Context: 4}, {}} {
		if _, err := NewTinyLM(c, 0); err == nil {
			t.Errorf("config %+v accepted", c)
		}
	}
}

// TestDeterministic trains two steps with 1 and 4 workers and expects the
// same bits.
func TestDeterministic(t *testing.T) {
	run := func(workers int) []float32 {
		m, err := NewTinyLM(Config{Vocab: 16, DModel: 16, Layers: 1, Heads: 2, Context: 8}, 5)
		if err != nil {
			t.Fatal(err)
		}
		opt := NewAdamW(m.Params(), 1e-2)
		tp := autograd.NewTape()
		tp.Workers = workers
		toks := randTokens(64*8, 16, 4) // 64 sequences: several row blocks
		for range 2 {
			tp.Reset()
			m.ZeroGrad()
			logits, _ := m.Forward(tp, toks, 64)
			l, _ := tp.CrossEntropy(logits, toks)
			tp.Backward(l, nil)
			opt.Step()
		}
		var all []float32
		for _, p := range m.Params() {
			all = append(all, p.Var.Value.Data()...)
		}
		return all
	}
	if !slices.Equal(run(1), run(4)) {
		t.Fatal("weights depend on the worker count")
	}
}

func TestCheckpointRoundTrip(t *testing.T) {
	m := smallModel(t, 6)
	path := filepath.Join(t.TempDir(), "m.safetensors")
	if err := m.Save(path); err != nil {
		t.Fatal(err)
	}
	m2, err := LoadTinyLM(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m2.Config, m.Config) {
		t.Fatalf("config %+v, want %+v", m2.Config, m.Config)
	}
	p1, p2 := m.Params(), m2.Params()
	for i := range p1 {
		a, b := p1[i].Var.Value.Data(), p2[i].Var.Value.Data()
		for j := range a {
			if math.Float32bits(a[j]) != math.Float32bits(b[j]) {
				t.Fatalf("%s[%d] differs", p1[i].Name, j)
			}
		}
	}
	// A checkpoint of another shape, or with a tensor missing, is refused by name.
	ts, md, _ := LoadSafetensors(path)
	bad := filepath.Join(t.TempDir(), "bad.safetensors")
	SaveSafetensors(bad, ts[1:], md)
	if _, err := LoadTinyLM(bad); err == nil || !strings.Contains(err.Error(), `lacks tensor "embed.weight"`) {
		t.Errorf("missing tensor: %v", err)
	}
	ts[0].Value = tensor.New(3, 3)
	SaveSafetensors(bad, ts, md)
	if _, err := LoadTinyLM(bad); err == nil || !strings.Contains(err.Error(), `"embed.weight" has shape [3 3]`) {
		t.Errorf("wrong shape: %v", err)
	}
	md["layers"] = "x"
	SaveSafetensors(bad, ts, md)
	if _, err := LoadTinyLM(bad); err == nil || !strings.Contains(err.Error(), `"layers"`) {
		t.Errorf("bad metadata: %v", err)
	}
}

// TestStepReusesBuffers checks that after the first step a training step
// allocates a small fraction of what the first one did: activations and
// gradients come from the tape's arena, reused across Reset.
func TestStepReusesBuffers(t *testing.T) {
	tr := newTrainer(t, Config{Vocab: 64, DModel: 32, Layers: 2, Heads: 2, Context: 32}, 4)
	alloc := func() uint64 {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.TotalAlloc
	}
	a0 := alloc()
	tr.step(t)
	first := alloc() - a0
	a0 = alloc()
	for range 3 {
		tr.step(t)
	}
	later := (alloc() - a0) / 3
	if later*10 > first {
		t.Fatalf("a later step allocates %d bytes, the first %d", later, first)
	}
	t.Logf("first step %d bytes, later steps %d", first, later)
}

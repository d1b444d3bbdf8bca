package recipe

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/posttrain/posttrain/prefopt"
	"github.com/posttrain/posttrain/tensor/nn"
)

var testConfig = nn.Config{Vocab: 263, DModel: 32, Layers: 2, Heads: 4, KVHeads: 2, Context: 48, Hidden: 48}

// randomPairs returns n pairs of random tokens of varied lengths.
func randomPairs(n int, seed uint64) []Pair {
	rng := rand.New(rand.NewPCG(seed, 1))
	seq := func(lo, hi int) []int32 {
		s := make([]int32, lo+rng.IntN(hi-lo+1))
		for i := range s {
			s[i] = int32(rng.IntN(testConfig.Vocab))
		}
		return s
	}
	out := make([]Pair, n)
	for i := range out {
		out[i] = Pair{Prompt: seq(1, 6), Chosen: seq(1, 7), Rejected: seq(1, 7), Line: i + 1}
	}
	return out
}

// seqLogProb is the independent reference: one unpadded sequence through
// Logits, log-softmax in float64, summed over the completion.
func seqLogProb(t *testing.T, m *nn.Model, prompt, completion []int32) float64 {
	t.Helper()
	ids := append(slices.Clone(prompt), completion...)
	logits, err := m.Logits(ids)
	if err != nil {
		t.Fatal(err)
	}
	v := m.Config.Vocab
	var s float64
	for i := len(prompt) - 1; i < len(ids)-1; i++ {
		row := logits.Data()[i*v : (i+1)*v]
		mx := math.Inf(-1)
		for _, x := range row {
			mx = max(mx, float64(x))
		}
		var z float64
		for _, x := range row {
			z += math.Exp(float64(x) - mx)
		}
		s += float64(row[ids[i+1]]) - mx - math.Log(z)
	}
	return s
}

// loraModel returns a model with LoRA on q, k, v, o whose B is drawn
// nonzero (as if trained), so the policy differs from the base.
func loraModel(t *testing.T, dropout float64) (*nn.Model, *nn.Adapter) {
	t.Helper()
	m, err := nn.NewModel(testConfig, 1)
	if err != nil {
		t.Fatal(err)
	}
	a, err := m.AddLoRA(nn.LoRAConfig{Rank: 2, Alpha: 4, Dropout: dropout, Targets: []string{"q", "k", "v", "o"}}, 2)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 3))
	for _, l := range a.Modules {
		for i := range l.B.Value.Data() {
			l.B.Value.Data()[i] = float32(rng.NormFloat64() * 0.3)
		}
	}
	return m, a
}

// TestScorer: batched, padded log-probs equal the one-sequence reference.
func TestScorer(t *testing.T) {
	m, err := nn.NewModel(testConfig, 5)
	if err != nil {
		t.Fatal(err)
	}
	pairs := randomPairs(5, 9)
	s, err := pairSeqs(pairs, 7)
	if err != nil {
		t.Fatal(err)
	}
	lp, err := NewScorer(m).LogProbs(s)
	if err != nil {
		t.Fatal(err)
	}
	small := NewScorer(m)
	small.PassTokens = 1 // one sequence per pass
	if lp1, err := small.LogProbs(s); err != nil || !slices.Equal(lp1, lp) {
		t.Fatalf("one sequence per pass: %v, %v; whole batch %v", lp1, err, lp)
	}
	for i, p := range pairs {
		for k, c := range [][]int32{p.Chosen, p.Rejected} {
			want := seqLogProb(t, m, p.Prompt, c)
			if got := lp[k*len(pairs)+i]; math.Abs(got-want) > 1e-4*max(1, math.Abs(want)) {
				t.Errorf("pair %d completion %d: %v, reference %v", i, k, got, want)
			}
		}
	}
}

// dpoLoss is the hand computation: DPO on the one-sequence reference
// log-probs, policy with adapters on, reference with them off.
func dpoLoss(t *testing.T, m *nn.Model, pairs []Pair, beta float64) float64 {
	a := m.LoRA()
	var loss float64
	for _, p := range pairs {
		pc, pr := seqLogProb(t, m, p.Prompt, p.Chosen), seqLogProb(t, m, p.Prompt, p.Rejected)
		a.Enable(false)
		rc, rr := seqLogProb(t, m, p.Prompt, p.Chosen), seqLogProb(t, m, p.Prompt, p.Rejected)
		a.Enable(true)
		z := beta * ((pc - rc) - (pr - rr))
		loss += math.Log1p(math.Exp(-z)) // −log σ(z)
	}
	return loss / float64(len(pairs))
}

// TestDPOStep: one DPO step through the trainer's Step gives the
// hand-computed loss, and LoRA gradients that match finite differences
// of that hand computation; the frozen base gets no gradient.
func TestDPOStep(t *testing.T) {
	m, a := loraModel(t, 0)
	pairs := randomPairs(3, 4)
	const beta = 0.5
	p := &Preference{Policy: m, Objective: prefopt.DPO{Beta: beta}, Config: Config{Pad: 0}}
	m.ZeroGrad()
	res, err := p.Step(pairs, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := dpoLoss(t, m, pairs, beta)
	if math.Abs(res.Loss-want) > 1e-5 {
		t.Fatalf("loss %v, hand-computed %v", res.Loss, want)
	}
	for _, q := range m.Params() {
		if q.Var.Grad != nil {
			t.Fatalf("frozen %s has a gradient", q.Name)
		}
	}
	// Finite differences on the largest gradient entry of every adapter
	// matrix (A and B of q, k, v, o in layers 0 and 1).
	fdCheck(t, a.Params(), func() float64 { return dpoLoss(t, m, pairs, beta) })
}

// fdCheck compares each parameter's gradient at its largest entry with a
// central finite difference of loss.
func fdCheck(t *testing.T, params []nn.Named, loss func() float64) {
	t.Helper()
	for _, np := range params {
		g := np.Var.Grad.Data()
		k := 0
		for i := range g {
			if math.Abs(float64(g[i])) > math.Abs(float64(g[k])) {
				k = i
			}
		}
		w := np.Var.Value.Data()
		old := w[k]
		const eps = 1e-2
		w[k] = old + eps
		up := loss()
		w[k] = old - eps
		down := loss()
		w[k] = old
		fd := (up - down) / (2 * eps)
		if g[k] == 0 || math.Abs(fd-float64(g[k])) > 2e-2*math.Max(1e-3, math.Abs(fd)) {
			t.Errorf("%s[%d]: gradient %v, finite difference %v", np.Name, k, g[k], fd)
		}
	}
}

// TestAccumulation: two micro-batches of one pair accumulate the gradient
// one batch of two gives.
func TestAccumulation(t *testing.T) {
	pairs := randomPairs(2, 8)
	grads := func(split bool) []float32 {
		m, a := loraModel(t, 0)
		p := &Preference{Policy: m, Objective: prefopt.DPO{Beta: 0.1}}
		m.ZeroGrad()
		if split {
			for i := range pairs {
				if _, err := p.Step(pairs[i:i+1], nil, 0.5); err != nil {
					t.Fatal(err)
				}
			}
		} else if _, err := p.Step(pairs, nil, 1); err != nil {
			t.Fatal(err)
		}
		var out []float32
		for _, q := range a.Params() {
			out = append(out, q.Var.Grad.Data()...)
		}
		return out
	}
	x, y := grads(false), grads(true)
	for i := range x {
		if math.Abs(float64(x[i]-y[i])) > 1e-6+1e-4*math.Abs(float64(x[i])) {
			t.Fatalf("gradient %d: %v in one batch, %v accumulated", i, x[i], y[i])
		}
	}
}

// TestResume: a run cancelled after a checkpoint and resumed from its
// directory ends where an uninterrupted run ends, bit for bit, with the
// same log.
func TestResume(t *testing.T) {
	pairs := randomPairs(6, 11)
	cfg := Config{Steps: 6, Batch: 2, Accum: 2, LR: 1e-2, Warmup: 2, ClipNorm: 1, Seed: 5, SaveEvery: 2, EvalEvery: 3}
	run := func(dir string, stopAt int) ([]float32, History, error) {
		m, a := loraModel(t, 0.1)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		c := cfg
		c.Dir = dir
		c.Callback = func(r Record) {
			if r.Step == stopAt {
				cancel()
			}
		}
		p := &Preference{Policy: m, Objective: prefopt.DPO{Beta: 0.1}, Config: c}
		h, err := p.Train(ctx, pairs, pairs[:2])
		var w []float32
		for _, q := range a.Params() {
			w = append(w, q.Var.Value.Data()...)
		}
		return w, h, err
	}
	want, wantHist, err := run(t.TempDir(), -1)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, _, err := run(dir, 3); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: %v", err)
	}
	got, hist, err := run(dir, -1)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatal("resumed run ends elsewhere than the uninterrupted one")
	}
	if len(hist) != len(wantHist) {
		t.Fatalf("%d log records after resuming, %d uninterrupted", len(hist), len(wantHist))
	}
	for i := range hist {
		if hist[i].Step != wantHist[i].Step || hist[i].Metrics["loss"] != wantHist[i].Metrics["loss"] && !math.IsNaN(hist[i].Metrics["loss"]) {
			t.Fatalf("log record %d: %+v, uninterrupted %+v", i, hist[i], wantHist[i])
		}
	}
	for _, k := range []string{"loss", "rewards/chosen", "rewards/margins", "logps/chosen", "grad_norm", "learning_rate", "num_tokens"} {
		if _, ok := hist.Last(k); !ok {
			t.Errorf("metric %s not logged", k)
		}
	}
	if _, ok := hist.Last("eval_loss"); !ok {
		t.Error("eval_loss not logged")
	}
	// A tampered checkpoint is refused.
	path := filepath.Join(dir, CheckpointFile)
	b, _ := os.ReadFile(path)
	b[len(b)-3] ^= 1
	os.WriteFile(path, b, 0o644)
	if _, _, err := run(dir, -1); err == nil {
		t.Error("tampered checkpoint accepted")
	}
}

// TestPrecomputeRef: reference log-probs computed with the adapters off
// equal the live ones, come back from the file, and a file for other
// pairs or a corrupt file is an error.
func TestPrecomputeRef(t *testing.T) {
	m, a := loraModel(t, 0)
	pairs := randomPairs(5, 12)
	path := filepath.Join(t.TempDir(), "ref.bin")
	r, err := PrecomputeRef(context.Background(), m, pairs, 2, 0, path)
	if err != nil {
		t.Fatal(err)
	}
	if !a.Enabled() {
		t.Fatal("PrecomputeRef left the adapters off")
	}
	a.Enable(false)
	for i, p := range pairs {
		if w := seqLogProb(t, m, p.Prompt, p.Chosen); math.Abs(r.Chosen[i]-w) > 1e-4*max(1, math.Abs(w)) {
			t.Errorf("pair %d: chosen %v, reference %v", i, r.Chosen[i], w)
		}
	}
	a.Enable(true)
	again, err := PrecomputeRef(context.Background(), m, pairs, 3, 0, path)
	if err != nil || !slices.Equal(again.Chosen, r.Chosen) || !slices.Equal(again.Rejected, r.Rejected) {
		t.Fatalf("read back: %v", err)
	}
	if _, err := PrecomputeRef(context.Background(), m, pairs[1:], 2, 0, path); err == nil {
		t.Error("a file for other pairs was accepted")
	}
	b, _ := os.ReadFile(path)
	b[len(b)-40] ^= 4
	os.WriteFile(path, b, 0o644)
	if _, err := PrecomputeRef(context.Background(), m, pairs, 2, 0, path); err == nil {
		t.Error("a corrupt file was accepted")
	}
	// Training against the file equals training against the live reference.
	cfg := Config{Steps: 2, Batch: 2, LR: 1e-2, Seed: 1}
	train := func(ref *RefLogProbs) []float32 {
		m, a := loraModel(t, 0)
		p := &Preference{Policy: m, Objective: prefopt.DPO{Beta: 0.1}, Config: cfg, RefLogProbs: ref}
		if _, err := p.Train(context.Background(), pairs, nil); err != nil {
			t.Fatal(err)
		}
		var w []float32
		for _, q := range a.Params() {
			w = append(w, q.Var.Value.Data()...)
		}
		return w
	}
	x, y := train(nil), train(r)
	for i := range x {
		if math.Abs(float64(x[i]-y[i])) > 1e-5 {
			t.Fatalf("weight %d: %v live, %v precomputed", i, x[i], y[i])
		}
	}
}

// TestRecompute: gradient checkpointing gives the log-probs and the
// gradients of the plain pass, with LoRA dropout on and with a fully
// trainable model.
func TestRecompute(t *testing.T) {
	pairs := randomPairs(3, 61)
	s, _ := pairSeqs(pairs, 0)
	for _, lora := range []bool{true, false} {
		run := func(recompute bool) ([]float64, []float32) {
			var m *nn.Model
			if lora {
				m, _ = loraModel(t, 0.2)
				m.LoRA().Pass = 4
			} else {
				m, _ = nn.NewModel(testConfig, 62)
			}
			sc := NewScorer(m)
			sc.Recompute = recompute
			if recompute && !lora {
				// One sequence per group: the blocks run group by group.
				sc.PassTokens = 1
			}
			m.ZeroGrad()
			lp, err := sc.Forward(s)
			if err != nil {
				t.Fatal(err)
			}
			d := make([]float64, len(lp))
			for i := range d {
				d[i] = float64(i%3) - 0.7
			}
			if err := sc.Backward(d); err != nil {
				t.Fatal(err)
			}
			var g []float32
			for _, p := range m.TrainableParams() {
				g = append(g, p.Var.Grad.Data()...)
			}
			return lp, g
		}
		lp0, g0 := run(false)
		lp1, g1 := run(true)
		for i := range lp0 {
			if math.Abs(lp0[i]-lp1[i]) > 1e-5*max(1, math.Abs(lp0[i])) {
				t.Fatalf("lora %v: log-prob %d: %v plain, %v recomputed", lora, i, lp0[i], lp1[i])
			}
		}
		if len(g0) != len(g1) {
			t.Fatal("parameter count differs")
		}
		for i := range g0 {
			if math.Abs(float64(g0[i]-g1[i])) > 1e-6+1e-4*math.Abs(float64(g0[i])) {
				t.Fatalf("lora %v: gradient %d: %v plain, %v recomputed", lora, i, g0[i], g1[i])
			}
		}
	}
}

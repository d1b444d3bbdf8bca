package prefopt

import (
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"github.com/posttrain/posttrain/tensor"
)

func randLogits(rng *rand.Rand, n, v int, scale float64) *tensor.Dense {
	x := tensor.New(n, v)
	for i := range x.Data() {
		x.Data()[i] = float32(scale * rng.NormFloat64())
	}
	return x
}

// ref64 computes log-probs in float64 from the float32 logits.
func ref64(logits *tensor.Dense, targets []int32) []float64 {
	n, v := logits.Rows(), logits.Cols()
	out := make([]float64, n)
	row := make([]float64, v)
	for i := range n {
		if targets[i] < 0 {
			continue
		}
		for j, x := range logits.Row(i) {
			row[j] = float64(x)
		}
		logSoftmax64(row, row)
		out[i] = row[targets[i]]
	}
	return out
}

func TestTokenLogProbsMatchesFloat64(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, c := range []struct {
		n, v  int
		scale float64
	}{{1, 1, 1}, {3, 7, 1}, {40, 257, 3}, {100, 1000, 1e4}} {
		logits := randLogits(rng, c.n, c.v, c.scale)
		targets := make([]int32, c.n)
		for i := range targets {
			targets[i] = int32(rng.IntN(c.v))
		}
		if c.n > 2 {
			targets[1] = Ignore
			targets[2] = -100
		}
		got := make([]float32, c.n)
		if err := TokenLogProbs(got, logits, targets); err != nil {
			t.Fatal(err)
		}
		want := ref64(logits, targets)
		for i := range got {
			// float32 result: relative to the logit scale.
			tol := 2e-6 * math.Max(1, c.scale*4)
			if math.Abs(float64(got[i])-want[i]) > tol {
				t.Errorf("%dx%d scale %v: logp[%d] = %v, want %v", c.n, c.v, c.scale, i, got[i], want[i])
			}
		}
	}
}

// The backward pass against central differences of Σ dlogp·logp, with the
// log-probs computed in float64 so the difference quotient is clean.
func TestTokenLogProbsBackwardFiniteDifferences(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	const n, v = 5, 9
	logits := randLogits(rng, n, v, 2)
	targets := []int32{3, Ignore, 0, 8, 4}
	dl := []float32{0.7, 2, -1.3, 0, 0.25}
	grad := tensor.New(n, v)
	if err := TokenLogProbsBackward(grad, logits, targets, dl); err != nil {
		t.Fatal(err)
	}
	f := func() float64 {
		var s float64
		for i, lp := range ref64(logits, targets) {
			s += float64(dl[i]) * lp
		}
		return s
	}
	for i := range logits.Data() {
		const h = 1e-3
		x0 := logits.Data()[i]
		logits.Data()[i] = x0 + h
		up := f()
		logits.Data()[i] = x0 - h
		dn := f()
		logits.Data()[i] = x0
		// The perturbed logits are float32, so use the actual step.
		fd := (up - dn) / (float64(x0+h) - float64(x0-h))
		if math.Abs(fd-float64(grad.Data()[i])) > 1e-5 {
			t.Errorf("grad[%d] = %v, finite difference %v", i, grad.Data()[i], fd)
		}
	}
	// Rows with an ignored target or zero dlogp are exactly zero.
	for _, r := range []int{1, 3} {
		for _, g := range grad.Row(r) {
			if g != 0 {
				t.Fatalf("row %d not zero: %v", r, grad.Row(r))
			}
		}
	}
	// Each scored row sums to zero: dlogp·(1 − Σ softmax).
	for _, r := range []int{0, 2, 4} {
		var s float64
		for _, g := range grad.Row(r) {
			s += float64(g)
		}
		if math.Abs(s) > 1e-6 {
			t.Errorf("row %d sums to %v", r, s)
		}
	}
}

// In place (grad = logits) and with any worker count, the result is the
// same bits.
func TestTokenLogProbsBackwardInPlaceAndWorkers(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	const n, v = 203, 77
	logits := randLogits(rng, n, v, 5)
	targets := make([]int32, n)
	dl := make([]float32, n)
	for i := range targets {
		targets[i] = int32(rng.IntN(v))
		dl[i] = float32(rng.NormFloat64())
	}
	want := tensor.New(n, v)
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	if err := TokenLogProbsBackward(want, logits, targets, dl); err != nil {
		t.Fatal(err)
	}
	lpWant := make([]float32, n)
	if err := TokenLogProbs(lpWant, logits, targets); err != nil {
		t.Fatal(err)
	}
	for _, procs := range []int{2, 3, 8} {
		runtime.GOMAXPROCS(procs)
		lp := make([]float32, n)
		if err := TokenLogProbs(lp, logits, targets); err != nil {
			t.Fatal(err)
		}
		for i := range lp {
			if lp[i] != lpWant[i] {
				t.Fatalf("GOMAXPROCS %d: logp[%d] differs", procs, i)
			}
		}
		x := logits.Clone()
		if err := TokenLogProbsBackward(x, x, targets, dl); err != nil {
			t.Fatal(err)
		}
		for i := range x.Data() {
			if x.Data()[i] != want.Data()[i] {
				t.Fatalf("GOMAXPROCS %d in place: grad[%d] = %v, want %v", procs, i, x.Data()[i], want.Data()[i])
			}
		}
	}
}

func TestTokenLogProbsErrors(t *testing.T) {
	logits := tensor.New(4, 3)
	nanRow := logits.Clone()
	nanRow.Row(2)[1] = float32(math.NaN())
	infTarget := logits.Clone()
	infTarget.Row(1)[0] = float32(math.Inf(-1))
	dst := []float32{9, 9, 9, 9}
	for _, c := range []struct {
		name    string
		logits  *tensor.Dense
		targets []int32
		dst     []float32
		want    string
	}{
		{"range", logits, []int32{0, 3, 0, 0}, dst, "labels[1]"},
		{"count", logits, []int32{0, 0}, dst, "labels"},
		{"dst", logits, []int32{0, 0, 0, 0}, dst[:3], "dst"},
		{"rank", tensor.New(12), []int32{0}, dst, "shape"},
		{"NaN", nanRow, []int32{0, 0, 0, 0}, dst, "row 2"},
		{"-Inf target", infTarget, []int32{0, 0, 0, 0}, dst, "row 1"},
	} {
		err := TokenLogProbs(c.dst, c.logits, c.targets)
		if err == nil {
			t.Errorf("%s: no error", c.name)
		} else if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q does not mention %q", c.name, err, c.want)
		}
		if dst[0] != 9 {
			t.Fatalf("%s: dst written on error", c.name)
		}
	}
	// A NaN row that is ignored is not an error: it is never read.
	if err := TokenLogProbs(dst, nanRow, []int32{0, 0, Ignore, 0}); err != nil {
		t.Errorf("ignored NaN row: %v", err)
	}
	grad := tensor.New(4, 3)
	grad.Data()[0] = 42
	for _, c := range []struct {
		name string
		err  error
		want string
	}{
		{"dlogp NaN", TokenLogProbsBackward(grad, logits, []int32{0, 0, 0, 0}, []float32{0, float32(math.NaN()), 0, 0}), "dlogp[1]"},
		{"dlogp len", TokenLogProbsBackward(grad, logits, []int32{0, 0, 0, 0}, []float32{0}), "dlogp"},
		{"grad shape", TokenLogProbsBackward(tensor.New(3, 4), logits, []int32{0, 0, 0, 0}, []float32{1, 1, 1, 1}), "grad"},
		{"target", TokenLogProbsBackward(grad, logits, []int32{0, 0, 5, 0}, []float32{1, 1, 1, 1}), "labels[2]"},
	} {
		if c.err == nil {
			t.Errorf("%s: no error", c.name)
		} else if !strings.Contains(c.err.Error(), c.want) {
			t.Errorf("%s: error %q does not mention %q", c.name, c.err, c.want)
		}
	}
	if grad.Data()[0] != 42 {
		t.Error("grad written on a validation error")
	}
	if err := TokenLogProbsBackward(grad, nanRow, []int32{0, 0, 0, 0}, []float32{1, 1, 1, 1}); err == nil || !strings.Contains(err.Error(), "row 2") {
		t.Errorf("NaN logits in backward: %v", err)
	}
}

func TestLayout(t *testing.T) {
	// Two sequences, width 5:
	//   b=0: prompt [10 11], completion [12 13], pad
	//   b=1: prompt [20],    completion [21 22 23 24]
	l := Layout{Width: 5, PromptLen: []int{2, 1}, Len: []int{4, 5}}
	tokens := []int32{10, 11, 12, 13, 0, 20, 21, 22, 23, 24}
	tg := make([]int32, 10)
	if err := l.Labels(tg, tokens); err != nil {
		t.Fatal(err)
	}
	want := []int32{Ignore, 12, 13, Ignore, Ignore, 21, 22, 23, 24, Ignore}
	for i := range want {
		if tg[i] != want[i] {
			t.Fatalf("Targets = %v, want %v", tg, want)
		}
	}
	if c := l.CompletionLen(); c[0] != 2 || c[1] != 4 {
		t.Errorf("CompletionLen = %v", c)
	}
	lp := []float32{99, -1, -2, 99, 99, -1, -2, -3, -4, 99}
	seq := make([]float64, 2)
	if err := SequenceLogProbs(seq, lp, l, false); err != nil {
		t.Fatal(err)
	}
	if seq[0] != -3 || seq[1] != -10 {
		t.Errorf("sums = %v, want [-3 -10]", seq)
	}
	if err := SequenceLogProbs(seq, lp, l, true); err != nil {
		t.Fatal(err)
	}
	if seq[0] != -1.5 || seq[1] != -2.5 {
		t.Errorf("means = %v, want [-1.5 -2.5]", seq)
	}
	d := make([]float32, 10)
	if err := SequenceLogProbsBackward(d, []float64{2, -4}, l, true); err != nil {
		t.Fatal(err)
	}
	wantD := []float32{0, 1, 1, 0, 0, -1, -1, -1, -1, 0}
	for i := range wantD {
		if d[i] != wantD[i] {
			t.Fatalf("backward = %v, want %v", d, wantD)
		}
	}
	for _, c := range []struct {
		name string
		l    Layout
		want string
	}{
		{"prompt 0", Layout{Width: 3, PromptLen: []int{0}, Len: []int{2}}, "sequence 0"},
		{"len > width", Layout{Width: 3, PromptLen: []int{1}, Len: []int{4}}, "sequence 0"},
		{"prompt > len", Layout{Width: 3, PromptLen: []int{1, 3}, Len: []int{2, 2}}, "sequence 1"},
		{"ragged", Layout{Width: 3, PromptLen: []int{1}, Len: []int{2, 2}}, "prompt lengths"},
		{"width", Layout{}, "Width"},
	} {
		if err := c.l.Check(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error mentioning %q", c.name, err, c.want)
		}
	}
	empty := Layout{Width: 3, PromptLen: []int{2}, Len: []int{2}}
	if err := SequenceLogProbs(make([]float64, 1), make([]float32, 3), empty, true); err == nil || !strings.Contains(err.Error(), "empty completion") {
		t.Errorf("average over empty completion: %v", err)
	}
	if err := SequenceLogProbs(make([]float64, 1), make([]float32, 3), empty, false); err != nil {
		t.Errorf("sum over empty completion: %v", err)
	}
	bad := []float32{99, float32(math.NaN()), -2, 99, 99, -1, -2, -3, -4, 99}
	seq[0] = 7
	if err := SequenceLogProbs(seq, bad, l, false); err == nil || !strings.Contains(err.Error(), "sequence 0 position 1") || seq[0] != 7 {
		t.Errorf("NaN log-prob: %v, dst %v", err, seq)
	}
	if err := l.Labels(tg, []int32{10, 11, -5, 13, 0, 20, 21, 22, 23, 24}); err == nil {
		t.Error("negative completion token: no error")
	}
}

// End to end: tokens → targets → TokenLogProbs → SequenceLogProbs → DPO →
// SequenceLogProbsBackward → TokenLogProbsBackward, against float64
// central differences of the whole chain.
func TestChainFiniteDifferences(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 18))
	const v = 6
	l := Layout{Width: 4, PromptLen: []int{1, 2}, Len: []int{4, 3}} // b=0 chosen, b=1 rejected
	tokens := []int32{1, 2, 3, 4, 5, 0, 2, 0}
	tg := make([]int32, 8)
	if err := l.Labels(tg, tokens); err != nil {
		t.Fatal(err)
	}
	logits := randLogits(rng, 8, v, 1.5)
	o := DPO{Beta: 0.7, LabelSmoothing: 0.1}
	ref := []float64{-4, -3}
	loss := func() (float64, Result) {
		seq := make([]float64, 2)
		lp64 := ref64(logits, tg)
		// Sum in float64 directly for a clean difference quotient.
		for b := range 2 {
			for t := l.PromptLen[b] - 1; t < l.Len[b]-1; t++ {
				seq[b] += lp64[b*l.Width+t]
			}
		}
		r, err := o.Loss(Batch{PolicyChosen: seq[:1], PolicyRejected: seq[1:], RefChosen: ref[:1], RefRejected: ref[1:]})
		if err != nil {
			t.Fatal(err)
		}
		return r.Loss, r
	}
	_, r := loss()
	dTok := make([]float32, 8)
	if err := SequenceLogProbsBackward(dTok, []float64{r.GradChosen[0], r.GradRejected[0]}, l, false); err != nil {
		t.Fatal(err)
	}
	grad := tensor.New(8, v)
	if err := TokenLogProbsBackward(grad, logits, tg, dTok); err != nil {
		t.Fatal(err)
	}
	for i := range logits.Data() {
		const h = 1e-3
		x0 := logits.Data()[i]
		logits.Data()[i] = x0 + h
		up, _ := loss()
		logits.Data()[i] = x0 - h
		dn, _ := loss()
		logits.Data()[i] = x0
		fd := (up - dn) / (float64(x0+h) - float64(x0-h))
		if math.Abs(fd-float64(grad.Data()[i])) > 1e-5 {
			t.Errorf("dL/dlogits[%d] = %v, finite difference %v", i, grad.Data()[i], fd)
		}
	}
}

// The LSE pair gives the same log-probs as TokenLogProbs and, from the kept
// log-sum-exps, the gradient of a float64 reference, on ordinary and
// stress (1e4) logits, in place too.
func TestTokenLogProbsLSE(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	for _, scale := range []float64{3, 1e4} {
		const n, v = 37, 1000
		logits := randLogits(rng, n, v, scale)
		targets := make([]int32, n)
		dl := make([]float32, n)
		for i := range targets {
			targets[i] = int32(rng.IntN(v))
			dl[i] = float32(rng.NormFloat64())
		}
		targets[3], dl[5] = Ignore, 0
		lp, lpLSE := make([]float32, n), make([]float32, n)
		lse := make([]float64, n)
		if err := TokenLogProbs(lp, logits, targets); err != nil {
			t.Fatal(err)
		}
		if err := TokenLogProbsLSE(lpLSE, lse, logits, targets); err != nil {
			t.Fatal(err)
		}
		for i := range lp {
			if lp[i] != lpLSE[i] {
				t.Fatalf("scale %g: row %d: log-prob %v with lse kept, %v without", scale, i, lpLSE[i], lp[i])
			}
		}
		grad := tensor.New(n, v)
		if err := TokenLogProbsBackwardLSE(grad, logits, targets, dl, lse); err != nil {
			t.Fatal(err)
		}
		// float64 reference: dl·(onehot − softmax)
		row := make([]float64, v)
		for i := range n {
			g := grad.Row(i)
			if targets[i] < 0 || dl[i] == 0 {
				for _, x := range g {
					if x != 0 {
						t.Fatalf("scale %g: row %d should have a zero gradient", scale, i)
					}
				}
				continue
			}
			for j, x := range logits.Row(i) {
				row[j] = float64(x)
			}
			logSoftmax64(row, row)
			for j := range row {
				want := -float64(dl[i]) * math.Exp(row[j])
				if j == int(targets[i]) {
					want += float64(dl[i])
				}
				if d := math.Abs(float64(g[j]) - want); d > 1e-6*math.Abs(float64(dl[i]))+1e-5*math.Abs(want) {
					t.Fatalf("scale %g: grad[%d][%d] = %v, float64 %v", scale, i, j, g[j], want)
				}
			}
		}
		// In place: the gradient overwrites the logits.
		inPlace := logits.Clone()
		if err := TokenLogProbsBackwardLSE(inPlace, inPlace, targets, dl, lse); err != nil {
			t.Fatal(err)
		}
		for i, x := range inPlace.Data() {
			if x != grad.Data()[i] {
				t.Fatalf("scale %g: in-place gradient differs at %d: %v, %v", scale, i, x, grad.Data()[i])
			}
		}
	}
}

func TestTokenLogProbsLSEErrors(t *testing.T) {
	logits := tensor.FromSlice([]float32{0, 1, 2, 3, 4, 5}, 2, 3)
	targets := []int32{2, 0}
	dl := []float32{1, 1}
	grad := tensor.New(2, 3)
	for _, c := range []struct {
		name string
		err  error
		want string
	}{
		{"nil lse", TokenLogProbsLSE(make([]float32, 2), nil, logits, targets), "nil lse"},
		{"short lse", TokenLogProbsLSE(make([]float32, 2), make([]float64, 1), logits, targets), "lse has 1 entries"},
		{"backward nil lse", TokenLogProbsBackwardLSE(grad, logits, targets, dl, nil), "nil lse"},
		{"lse below target", TokenLogProbsBackwardLSE(grad, logits, targets, dl, []float64{1.5, 6}), "lse[0] = 1.5"},
		{"lse NaN", TokenLogProbsBackwardLSE(grad, logits, targets, dl, []float64{3, math.NaN()}), "lse[1] = NaN"},
	} {
		if c.err == nil || !strings.Contains(c.err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to mention %q", c.name, c.err, c.want)
		}
	}
	for _, x := range grad.Data() {
		if x != 0 {
			t.Fatal("grad written despite an error")
		}
	}
}

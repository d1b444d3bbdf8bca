package prefopt

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/posttrain/posttrain/tensor"
)

type headSetup struct {
	n, v, d int
	s       Head
	labels  []int32
}

func newHeadSetup(rng *rand.Rand, n, v, d int, scale float64, bias bool) *headSetup {
	hs := &headSetup{n: n, v: v, d: d,
		s:      Head{H: randLogits(rng, n, d, 1), W: randLogits(rng, v, d, scale/math.Sqrt(float64(d)))},
		labels: make([]int32, n)}
	if bias {
		hs.s.Bias = randLogits(rng, 1, v, 0.5).Data()
	}
	for i := range hs.labels {
		hs.labels[i] = int32(rng.IntN(v))
		if i%4 == 0 || i == n-1 {
			hs.labels[i] = Ignore
		}
	}
	return hs
}

func headLogits(h Head) *tensor.Dense {
	z := tensor.New(h.H.Dim(0), h.W.Dim(0))
	tensor.Gemm(false, true, 1, h.H, h.W, 0, z)
	if h.Bias != nil {
		for i := range z.Dim(0) {
			tensor.Add(z.Row(i), z.Row(i), h.Bias)
		}
	}
	return z
}

func randGrad(rng *rand.Rand, hs *headSetup) HeadGrad {
	return HeadGrad{H: randLogits(rng, hs.n, hs.d, 1), W: randLogits(rng, hs.v, hs.d, 0.01), Bias: randLogits(rng, 1, hs.v, 0.01).Data()}
}

func cloneHeadGrad(g HeadGrad) HeadGrad {
	return HeadGrad{H: g.H.Clone(), W: g.W.Clone(), Bias: slices.Clone(g.Bias)}
}

func worstRel(got, want []float32) (float64, int) {
	var scale, worst float64
	at := 0
	for _, x := range want {
		scale = max(scale, math.Abs(float64(x)))
	}
	for i := range got {
		if e := math.Abs(float64(got[i])-float64(want[i])) / max(scale, 1e-30); e > worst || e != e {
			worst, at = e, i
		}
	}
	return worst, at
}

// TestFusedTokenLogProbsMatchesUnfused checks the fused forward and
// backward passes against TokenLogProbs and TokenLogProbsBackward on
// H·Wᵀ + Bias, over shapes that are multiples of neither the chunk nor
// the GEMM tiles (including chunks of one row, which the GEMM computes by
// another path), and with logits of ~1e4.
func TestFusedTokenLogProbsMatchesUnfused(t *testing.T) {
	for _, c := range []struct {
		n, v, d, chunk int
		scale          float64
		bias           bool
	}{{37, 53, 19, 8, 3, true}, {37, 53, 19, 0, 3, false}, {29, 131, 33, 13, 3, true}, {5, 7, 3, 1, 3, true}, {23, 41, 11, 7, 1e4, true}} {
		rng := rand.New(rand.NewPCG(uint64(c.n), uint64(c.v)))
		hs := newHeadSetup(rng, c.n, c.v, c.d, c.scale, c.bias)
		{
			t.Run(fmt.Sprintf("%dx%dx%d/chunk%d/scale%v", c.n, c.v, c.d, c.chunk, c.scale), func(t *testing.T) {
				z := headLogits(hs.s)
				want := make([]float32, c.n)
				if err := TokenLogProbs(want, z, hs.labels); err != nil {
					t.Fatal(err)
				}
				f := &Fused{ChunkRows: c.chunk}
				got := make([]float32, c.n)
				for i := range got {
					got[i] = 7 // ignored rows must be written as 0
				}
				if err := f.TokenLogProbs(context.Background(), got, hs.s, hs.labels); err != nil {
					t.Fatal(err)
				}
				// The logits agree to float32 rounding of sums of
				// magnitude up to the row's largest logit.
				for i := range got {
					var big float64
					for _, x := range z.Row(i) {
						big = max(big, math.Abs(float64(x)))
					}
					tol := 1e-6 * (1 + big)
					if math.Abs(float64(got[i]-want[i])) > tol || hs.labels[i] < 0 && got[i] != 0 {
						t.Errorf("log-prob %d = %v, unfused %v", i, got[i], want[i])
					}
				}
				dlogp := make([]float32, c.n)
				for i := range dlogp {
					dlogp[i] = float32(rng.NormFloat64())
				}
				dlogp[1] = 0
				gz := tensor.New(c.n, c.v)
				if err := TokenLogProbsBackward(gz, z, hs.labels, dlogp); err != nil {
					t.Fatal(err)
				}
				g0 := randGrad(rng, hs)
				wg := cloneHeadGrad(g0)
				tensor.Gemm(false, false, 1, gz, hs.s.W, 0, wg.H)
				tensor.Gemm(true, false, 1, gz, hs.s.H, 1, wg.W)
				for i := range c.n {
					tensor.Axpy(1, gz.Row(i), wg.Bias)
				}
				gg := cloneHeadGrad(g0)
				if err := f.TokenLogProbsBackward(context.Background(), gg, hs.s, hs.labels, dlogp); err != nil {
					t.Fatal(err)
				}
				for _, p := range []struct {
					name      string
					got, want []float32
				}{{"dH", gg.H.Data(), wg.H.Data()}, {"dW", gg.W.Data(), wg.W.Data()}, {"dBias", gg.Bias, wg.Bias}} {
					if e, at := worstRel(p.got, p.want); !(e <= 2e-6) {
						t.Errorf("%s[%d] = %v, unfused %v (relative %.2g)", p.name, at, p.got[at], p.want[at], e)
					}
				}
			})
		}
	}
}

// TestFusedTokenLogProbsFiniteDifferences checks the backward pass against
// central differences of a float64 L = Σ_i c_i·log p_i(labels[i]) with
// respect to H, W and the bias, computed independently of the package.
func TestFusedTokenLogProbsFiniteDifferences(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	hs := newHeadSetup(rng, 9, 13, 5, 3, true)
	c := make([]float64, hs.n)
	dlogp := make([]float32, hs.n)
	for i := range c {
		dlogp[i] = float32(rng.NormFloat64())
		c[i] = float64(dlogp[i])
	}
	g := HeadGrad{H: tensor.New(hs.n, hs.d), W: tensor.New(hs.v, hs.d), Bias: make([]float32, hs.v)}
	if err := (&Fused{ChunkRows: 2}).TokenLogProbsBackward(context.Background(), g, hs.s, hs.labels, dlogp); err != nil {
		t.Fatal(err)
	}
	to64 := func(x []float32) []float64 {
		out := make([]float64, len(x))
		for i, v := range x {
			out[i] = float64(v)
		}
		return out
	}
	h, w, b := to64(hs.s.H.Data()), to64(hs.s.W.Data()), to64(hs.s.Bias)
	loss := func() float64 {
		var s float64
		row := make([]float64, hs.v)
		for i := range hs.n {
			y := hs.labels[i]
			if y < 0 {
				continue
			}
			for j := range hs.v {
				var z float64
				for k := range hs.d {
					z += h[i*hs.d+k] * w[j*hs.d+k]
				}
				row[j] = z + b[j]
			}
			logSoftmax64(row, row)
			s += c[i] * row[y]
		}
		return s
	}
	const eps = 1e-6
	for _, p := range []struct {
		name string
		x    []float64
		g    []float32
	}{{"dH", h, g.H.Data()}, {"dW", w, g.W.Data()}, {"dBias", b, g.Bias}} {
		for k := range p.x {
			old := p.x[k]
			p.x[k] = old + eps
			up := loss()
			p.x[k] = old - eps
			down := loss()
			p.x[k] = old
			if want := (up - down) / (2 * eps); math.Abs(float64(p.g[k])-want) > 2e-5+1e-4*math.Abs(want) {
				t.Errorf("%s[%d] = %v, finite difference %v", p.name, k, p.g[k], want)
			}
		}
	}
}

// TestFusedTokenLogProbsWorkers checks bit-identical results for any
// GOMAXPROCS, and that ignored rows are never read.
func TestFusedTokenLogProbsWorkers(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 24))
	hs := newHeadSetup(rng, 150, 300, 40, 3, true)
	for i, y := range hs.labels {
		if y < 0 {
			hs.s.H.Row(i)[3] = float32(math.NaN())
		}
	}
	dlogp := make([]float32, hs.n)
	for i := range dlogp {
		dlogp[i] = float32(rng.NormFloat64())
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	var ref HeadGrad
	var refLogp []float32
	for k, procs := range []int{1, 2, 5} {
		runtime.GOMAXPROCS(procs)
		var f Fused
		logp := make([]float32, hs.n)
		if err := f.TokenLogProbs(context.Background(), logp, hs.s, hs.labels); err != nil {
			t.Fatal(err)
		}
		g := HeadGrad{H: tensor.New(hs.n, hs.d), W: tensor.New(hs.v, hs.d), Bias: make([]float32, hs.v)}
		if err := f.TokenLogProbsBackward(context.Background(), g, hs.s, hs.labels, dlogp); err != nil {
			t.Fatal(err)
		}
		if slices.ContainsFunc(g.H.Data(), func(x float32) bool { return x != x }) {
			t.Fatal("NaN of an ignored row reached dH")
		}
		if k == 0 {
			ref, refLogp = g, logp
			continue
		}
		if !slices.Equal(logp, refLogp) || !slices.Equal(g.H.Data(), ref.H.Data()) || !slices.Equal(g.W.Data(), ref.W.Data()) || !slices.Equal(g.Bias, ref.Bias) {
			t.Errorf("GOMAXPROCS %d differs from 1", procs)
		}
	}
}

// TestFusedPairwise checks the one-call DPO round trip against the same
// steps on unfused log-probs.
func TestFusedPairwise(t *testing.T) {
	rng := rand.New(rand.NewPCG(25, 26))
	l := Layout{Width: 7, PromptLen: []int{2, 3, 1}, Len: []int{7, 5, 4}}
	lr := Layout{Width: 6, PromptLen: []int{2, 3, 1}, Len: []int{6, 4, 6}}
	nc, nr := l.Size(), lr.Size()
	v, d := 29, 10
	s := Head{H: randLogits(rng, nc+nr, d, 1), W: randLogits(rng, v, d, 1), Bias: randLogits(rng, 1, v, 0.3).Data()}
	tokens := make([]int32, nc+nr)
	for i := range tokens {
		tokens[i] = int32(rng.IntN(v))
	}
	ref := Batch{RefChosen: []float64{-20, -9, -12}, RefRejected: []float64{-18, -7, -15}}
	obj := DPO{Beta: 0.1}
	g := HeadGrad{H: tensor.New(nc+nr, d), W: tensor.New(v, d)}
	res, err := (&Fused{ChunkRows: 5}).Pairwise(context.Background(), g, s, tokens, l, lr, false, obj, ref)
	if err != nil {
		t.Fatal(err)
	}

	// The same by hand, unfused.
	z := headLogits(s)
	labels := make([]int32, nc+nr)
	if err := l.Targets(labels[:nc], tokens[:nc]); err != nil {
		t.Fatal(err)
	}
	if err := lr.Targets(labels[nc:], tokens[nc:]); err != nil {
		t.Fatal(err)
	}
	logp := make([]float32, nc+nr)
	if err := TokenLogProbs(logp, z, labels); err != nil {
		t.Fatal(err)
	}
	b := ref
	b.PolicyChosen, b.PolicyRejected = make([]float64, 3), make([]float64, 3)
	b.ChosenLen, b.RejectedLen = l.CompletionLen(), lr.CompletionLen()
	_ = SequenceLogProbs(b.PolicyChosen, logp[:nc], l, false)
	_ = SequenceLogProbs(b.PolicyRejected, logp[nc:], lr, false)
	want, err := obj.Loss(b)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(res.Loss-want.Loss) > 1e-12 {
		t.Errorf("loss %v, unfused %v", res.Loss, want.Loss)
	}
	dlogp := make([]float32, nc+nr)
	_ = SequenceLogProbsBackward(dlogp[:nc], want.GradChosen, l, false)
	_ = SequenceLogProbsBackward(dlogp[nc:], want.GradRejected, lr, false)
	gz := tensor.New(nc+nr, v)
	if err := TokenLogProbsBackward(gz, z, labels, dlogp); err != nil {
		t.Fatal(err)
	}
	wh, ww := tensor.New(nc+nr, d), tensor.New(v, d)
	tensor.Gemm(false, false, 1, gz, s.W, 0, wh)
	tensor.Gemm(true, false, 1, gz, s.H, 0, ww)
	if e, at := worstRel(g.H.Data(), wh.Data()); e > 2e-6 {
		t.Errorf("dH[%d] relative error %.2g", at, e)
	}
	if e, at := worstRel(g.W.Data(), ww.Data()); e > 2e-6 {
		t.Errorf("dW[%d] relative error %.2g", at, e)
	}

	// One chunk (the backward pass forms no logits: three GEMMs), and
	// dH written over H: the same gradients.
	for _, chunk := range []int{0, 5} {
		h := s.H.Clone()
		gi := HeadGrad{H: h, W: tensor.New(v, d)}
		res2, err := (&Fused{ChunkRows: chunk}).Pairwise(context.Background(), gi, Head{H: h, W: s.W, Bias: s.Bias}, tokens, l, lr, false, obj, ref)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(res2.Loss-want.Loss) > 1e-12 {
			t.Errorf("chunk %d, in place: loss %v, unfused %v", chunk, res2.Loss, want.Loss)
		}
		if e, at := worstRel(h.Data(), wh.Data()); e > 2e-6 {
			t.Errorf("chunk %d, in place: dH[%d] relative error %.2g", chunk, at, e)
		}
		if e, at := worstRel(gi.W.Data(), ww.Data()); e > 2e-6 {
			t.Errorf("chunk %d, in place: dW[%d] relative error %.2g", chunk, at, e)
		}
	}

	// Errors leave grad untouched.
	before := cloneHeadGrad(HeadGrad{H: g.H, W: g.W, Bias: []float32{}})
	for name, call := range map[string]func() error{
		"nil objective": func() error {
			_, err := (&Fused{}).Pairwise(context.Background(), g, s, tokens, l, lr, false, nil, ref)
			return err
		},
		"short tokens": func() error {
			_, err := (&Fused{}).Pairwise(context.Background(), g, s, tokens[1:], l, lr, false, obj, ref)
			return err
		},
		"grad W shape": func() error {
			_, err := (&Fused{}).Pairwise(context.Background(), HeadGrad{H: g.H, W: tensor.New(v, d+1)}, s, tokens, l, lr, false, obj, ref)
			return err
		},
		"missing reference": func() error {
			_, err := (&Fused{}).Pairwise(context.Background(), g, s, tokens, l, lr, false, obj, Batch{})
			return err
		},
	} {
		if err := call(); err == nil {
			t.Errorf("%s: no error", name)
		}
		if !slices.Equal(g.H.Data(), before.H.Data()) || !slices.Equal(g.W.Data(), before.W.Data()) {
			t.Fatalf("%s: grad changed on error", name)
		}
	}
}

// TestFusedTokenLogProbsErrors checks that bad inputs are named and leave
// every output untouched.
func TestFusedTokenLogProbsErrors(t *testing.T) {
	rng := rand.New(rand.NewPCG(27, 28))
	base := newHeadSetup(rng, 12, 20, 5, 3, true)
	nan := float32(math.NaN())
	for _, c := range []struct {
		name, want string
		edit       func(hs *headSetup, g *HeadGrad, dlogp []float32)
	}{
		{"NaN in H", "head H row 5 column 2 is NaN", func(hs *headSetup, _ *HeadGrad, _ []float32) { hs.s.H.Row(5)[2] = nan }},
		{"Inf in W", "head W row 7 column 1 is -Inf", func(hs *headSetup, _ *HeadGrad, _ []float32) {
			hs.s.W.Row(7)[1] = float32(math.Inf(-1))
		}},
		{"bias", "head bias[3] is NaN", func(hs *headSetup, _ *HeadGrad, _ []float32) { hs.s.Bias[3] = nan }},
		{"label", "labels[6] = 20, out of range", func(hs *headSetup, _ *HeadGrad, _ []float32) { hs.labels[6] = 20 }},
		{"labels length", "11 labels for 12 rows", func(hs *headSetup, _ *HeadGrad, _ []float32) { hs.labels = hs.labels[:11] }},
		{"grad W shape", "grad W has shape [20 4]", func(hs *headSetup, g *HeadGrad, _ []float32) { g.W = tensor.New(20, 4) }},
		{"dlogp", "dlogp[5] is NaN", func(_ *headSetup, _ *HeadGrad, dl []float32) { dl[5] = nan }},
		{"overflow", "logits of row 9 overflow float32", func(hs *headSetup, _ *HeadGrad, _ []float32) {
			for k := range hs.s.H.Row(9) {
				hs.s.H.Row(9)[k] = 3e19
			}
			for k := range hs.s.W.Row(3) {
				hs.s.W.Row(3)[k] = 3e19
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			hs := *base
			hs.s.H, hs.s.W, hs.s.Bias, hs.labels = base.s.H.Clone(), base.s.W.Clone(), slices.Clone(base.s.Bias), slices.Clone(base.labels)
			dlogp := make([]float32, hs.n)
			for i := range dlogp {
				dlogp[i] = 1
			}
			g := randGrad(rng, &hs)
			c.edit(&hs, &g, dlogp)
			before := cloneHeadGrad(g)
			f := &Fused{ChunkRows: 4}
			err := f.TokenLogProbsBackward(context.Background(), g, hs.s, hs.labels, dlogp)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "prefopt: Fused.") {
				t.Fatalf("backward: error %v, want one containing %q", err, c.want)
			}
			if !slices.Equal(g.H.Data(), before.H.Data()) || !slices.Equal(g.W.Data(), before.W.Data()) || !slices.Equal(g.Bias, before.Bias) {
				t.Error("backward: outputs changed on error")
			}
			if c.name == "dlogp" || c.name == "grad W shape" {
				return
			}
			dst := slices.Repeat([]float32{5}, hs.n)
			err = f.TokenLogProbs(context.Background(), dst, hs.s, hs.labels)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("forward: error %v, want one containing %q", err, c.want)
			}
			if slices.ContainsFunc(dst, func(x float32) bool { return x != 5 }) {
				t.Error("forward: dst changed on error")
			}
		})
	}
}

// A cancelled context stops the fused calls with its error, wrapped,
// before any output is written.
func TestFusedCancel(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	n, v, d := 13, 17, 6
	s := Head{H: randLogits(rng, n, d, 1), W: randLogits(rng, v, d, 1)}
	labels := make([]int32, n)
	for i := range labels {
		labels[i] = int32(rng.IntN(v))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dst := make([]float32, n)
	for i := range dst {
		dst[i] = 9
	}
	err := (&Fused{ChunkRows: 4}).TokenLogProbs(ctx, dst, s, labels)
	require.ErrorIs(t, err, context.Canceled)
	assert.True(t, strings.HasPrefix(err.Error(), "prefopt: Fused.TokenLogProbs: "), err.Error())
	assert.Equal(t, slices.Repeat([]float32{9}, n), dst)

	g := HeadGrad{H: randLogits(rng, n, d, 1), W: randLogits(rng, v, d, 1)}
	before := cloneHeadGrad(g)
	err = (&Fused{ChunkRows: 4}).TokenLogProbsBackward(ctx, g, s, labels, slices.Repeat([]float32{1}, n))
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, before.H.Data(), g.H.Data())
	assert.Equal(t, before.W.Data(), g.W.Data())

	l := Layout{Width: 4, PromptLen: []int{1, 2}, Len: []int{4, 3}}
	lr := Layout{Width: 3, PromptLen: []int{1, 1}, Len: []int{3, 2}}
	hs := Head{H: randLogits(rng, l.Size()+lr.Size(), d, 1), W: s.W}
	gp := HeadGrad{H: randLogits(rng, l.Size()+lr.Size(), d, 1), W: randLogits(rng, v, d, 1)}
	before = cloneHeadGrad(gp)
	_, err = (&Fused{}).Pairwise(ctx, gp, hs, make([]int32, l.Size()+lr.Size()), l, lr, false, DPO{Beta: 0.1},
		Batch{RefChosen: []float64{-3, -2}, RefRejected: []float64{-2, -1}})
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, before.H.Data(), gp.H.Data())
	assert.Equal(t, before.W.Data(), gp.W.Data())
}

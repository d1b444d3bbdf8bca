package nn

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/posttrain/posttrain/tensor"
	"github.com/posttrain/posttrain/tensor/autograd"
)

// loraOn attaches the same adapters to m as to every other model given
// the same arguments, with B set as if trained so that every gradient is
// non-zero.
func loraOn(t *testing.T, m *Model, targets []string) *Adapter {
	t.Helper()
	a, err := m.AddLoRA(LoRAConfig{Rank: 3, Alpha: 6, Targets: targets}, 4)
	require.NoError(t, err)
	for _, l := range a.Modules {
		for i := range l.B.Value.Data() {
			l.B.Value.Data()[i] = float32(math.Cos(float64(3*i+l.index))) / 4
		}
	}
	return a
}

// TestFrozenLoRAGradients checks the adapters' gradients on a bfloat16
// base against finite differences, through both blocks and a tied
// bfloat16 head, with TestLoRAGradients' tolerance.
func TestFrozenLoRAGradients(t *testing.T) {
	cfg := loraTestConfig
	cfg.Tied = true
	m, err := NewModel(cfg, 3)
	require.NoError(t, err)
	require.NoError(t, m.FreezeBF16())
	// Into the attention and the MLP, out of each: the gradient of the
	// lower block's adapters crosses every bfloat16 layer of the upper.
	a := loraOn(t, m, []string{"k", "o", "up", "down"})
	ids := []int32{1, 5, 9, 30, 2, 7, 7, 39, 3, 4, 5, 6}
	var vars []*autograd.Var
	for _, p := range a.Params() {
		vars = append(vars, p.Var)
	}
	err = autograd.GradCheckWith(func(t *autograd.Tape) *autograd.Var {
		out, err := m.Forward(t, ids, 2)
		if err != nil {
			panic(err)
		}
		return out
	}, vars, autograd.GradCheckOptions{Tol: 2e-2, Seed: 5})
	require.NoError(t, err)
	for _, p := range m.Params() {
		assert.False(t, p.Var.RequiresGrad(), "base parameter %s trains", p.Name)
	}
	assert.Len(t, m.TrainableParams(), 2*len(a.Modules))
}

// TestFrozenLoRAMatchesFloat32 runs a LoRA pass and its backward on a
// bfloat16 base and on float32 bases: on the float32 model of the same
// rounded weights the logits and the adapters' gradients agree to
// float32 summation order (the bfloat16 products keep the activations
// exact); on the unrounded float32 model the loss agrees within 1e-2
// relative. With the adapters off the bfloat16 model is its base: the
// logits match the frozen decoder's.
func TestFrozenLoRAMatchesFloat32(t *testing.T) {
	for _, tied := range []bool{false, true} {
		t.Run(map[bool]string{false: "untied", true: "tied"}[tied], func(t *testing.T) {
			m := bf16Model(t, tied)
			fz, rounded := bf16Pair(m)
			targets := []string{"q", "v", "o", "down"}
			var ads []*Adapter
			for _, x := range []*Model{fz, rounded, m} {
				ads = append(ads, loraOn(t, x, targets))
			}
			ids := randTokens(24, m.Config.Vocab, 5)
			labels := append(append([]int32(nil), ids[1:12]...), -1)
			labels = append(append(labels, ids[13:]...), -1)
			type result struct {
				loss   float64
				logits []float32
				grads  [][]float32
			}
			run := func(x *Model, a *Adapter) result {
				tp := autograd.NewTape()
				out, err := x.Forward(tp, ids, 2)
				require.NoError(t, err)
				loss, err := tp.CrossEntropy(out, labels)
				require.NoError(t, err)
				a.ZeroGrad()
				tp.Backward(loss, nil)
				r := result{loss: float64(loss.Value.Data()[0]), logits: append([]float32(nil), out.Value.Data()...)}
				for _, p := range a.Params() {
					r.grads = append(r.grads, append([]float32(nil), p.Var.Grad.Data()...))
				}
				return r
			}
			got, same, full := run(fz, ads[0]), run(rounded, ads[1]), run(m, ads[2])
			assert.InDeltaSlice(t, same.logits, got.logits, 1e-4*peak(same.logits), "logits against the rounded float32 base")
			assert.InEpsilon(t, same.loss, got.loss, 1e-5, "loss against the rounded float32 base")
			assert.InEpsilon(t, full.loss, got.loss, 1e-2, "loss against the float32 base")
			for i, g := range got.grads {
				name := ads[0].Params()[i].Name
				assert.InDeltaSlice(t, same.grads[i], g, 1e-4*peak(same.grads[i]), "%s: gradient against the rounded float32 base", name)
				require.Greater(t, peak(g), 0.0, "%s: zero gradient", name)
				// Against the unrounded base, the gradient's direction.
				var dot, nf, nb float64
				for j, v := range g {
					w := float64(full.grads[i][j])
					dot, nf, nb = dot+float64(v)*w, nf+w*w, nb+float64(v)*float64(v)
				}
				// Weights scaled to peak the logits amplify the rounding:
				// measured 0.986 at worst.
				assert.Greater(t, dot/math.Sqrt(nf*nb), 0.95, "%s: cosine with the float32 base's gradient", name)
			}
			// Adapters off: the base, as the decoder computes it (a
			// prefill rounds activations: TestFrozenDecoding's 3e-2).
			ads[0].Enable(false)
			tp := autograd.NewTape()
			tp.NoGrad = true
			out, err := fz.Forward(tp, ids[:12], 1)
			require.NoError(t, err)
			want, err := fz.Logits(ids[:12])
			require.NoError(t, err)
			assert.InDeltaSlice(t, want.Data(), out.Value.Data(), 3e-2*peak(want.Data()), "adapters off")
			ads[0].Enable(true)
			// Adapters on: the decoder adds them too.
			out, err = fz.Forward(tp, ids[:12], 1)
			require.NoError(t, err)
			want, err = fz.Logits(ids[:12])
			require.NoError(t, err)
			assert.InDeltaSlice(t, want.Data(), out.Value.Data(), 3e-2*peak(want.Data()), "adapters on, decoder")
		})
	}
}

// TestFrozenLoRAMerge folds the adapters into a bfloat16 base: the merged
// model computes what the adapters did, to bfloat16 rounding, and
// Unmerge brings the weights back to within one rounding.
func TestFrozenLoRAMerge(t *testing.T) {
	m, err := NewModel(loraTestConfig, 5)
	require.NoError(t, err)
	require.NoError(t, m.FreezeBF16())
	before := m.Blocks[1].Attn.Q.w16.Dense()
	a := loraOn(t, m, []string{"q", "down"})
	ids := []int32{1, 5, 9, 30, 2, 7}
	tp := autograd.NewTape()
	tp.NoGrad = true
	out, err := m.Forward(tp, ids, 1)
	require.NoError(t, err)
	want := append([]float32(nil), out.Value.Data()...)
	a.Merge()
	mid := m.Blocks[1].Attn.Q.w16.Dense()
	out, err = m.Forward(tp, ids, 1)
	require.NoError(t, err)
	assert.InDeltaSlice(t, want, out.Value.Data(), 2e-2*peak(want), "merged")
	a.Unmerge()
	after := m.Blocks[1].Attn.Q.w16.Dense()
	for i, v := range after.Data() {
		// Two roundings, of the merged weight and of the difference.
		w := before.Data()[i]
		require.InDelta(t, w, v, (math.Abs(float64(w))+math.Abs(float64(mid.Data()[i])))/256+1e-30, "weight %d after Unmerge", i)
	}
}

// TestFrozenEmbeddingIDs: an id outside a frozen table is the same
// misuse as outside a float32 one.
func TestFrozenEmbeddingIDs(t *testing.T) {
	m, err := NewModel(loraTestConfig, 5)
	require.NoError(t, err)
	require.NoError(t, m.FreezeBF16())
	_, err = m.Forward(autograd.NewTape(), []int32{1, 40}, 1)
	require.Error(t, err, "Forward with an id past the vocabulary")
	assert.Panics(t, func() { m.Embed.Forward(autograd.NewTape(), []int32{-1}) })
	var se *tensor.ShapeError
	func() {
		defer func() { se, _ = recover().(*tensor.ShapeError) }()
		m.Embed.Forward(autograd.NewTape(), []int32{40})
	}()
	require.NotNil(t, se, "want a *tensor.ShapeError")
	// HeadWeight widens the head once.
	h := m.HeadWeight()
	assert.Same(t, h, m.HeadWeight())
	assert.Equal(t, m.frozen.w[&m.Head].Dense().Data(), h.Data())
}

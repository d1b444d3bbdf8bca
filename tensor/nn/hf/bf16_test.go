package hf

import (
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/posttrain/posttrain/tensor/nn"
)

// TestLoadBF16 loads each fixture with its matrices in bfloat16 and
// checks it is the float32 load frozen (bit for bit), that its logits
// stay within 3e-2 of the row's largest of the float32 model of the same
// rounded weights (tensor.GemmMixed rounds a prompt's activations to
// bfloat16, 2⁻⁹ relative, before each product; measured ≈ 1e-2), and
// that greedy decoding gives the float32 model's tokens, the margins of
// these fixtures allowing — and for llama_bf16, whose weights are
// bfloat16 already, the PyTorch float64 reference's tokens.
func TestLoadBF16(t *testing.T) {
	ref := loadReference(t)
	for _, name := range fixtures {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join("testdata", name)
			m32, err := LoadModel(dir)
			require.NoError(t, err)
			mb, err := LoadModelWith(dir, LoadOptions{Dtype: "BF16"})
			require.NoError(t, err)
			require.True(t, mb.Frozen())
			require.False(t, m32.Frozen())
			frozen := m32.Clone()
			require.NoError(t, frozen.FreezeBF16())
			rounded := m32.Clone()
			for _, p := range rounded.Params() {
				if p.Var.Value.Dims() == 2 {
					copy(p.Var.Value.Data(), p.Var.Value.BF16().Dense().Data())
				}
			}
			ids := ref[name].IDs
			lb, err := mb.Logits(ids)
			require.NoError(t, err)
			lf, err := frozen.Logits(ids)
			require.NoError(t, err)
			require.Equal(t, lf.Data(), lb.Data(), "loaded in bfloat16 differs from loaded and frozen")
			lr, err := rounded.Logits(ids)
			require.NoError(t, err)
			v := m32.Config.Vocab
			for i := range ids {
				want := lr.Data()[i*v : (i+1)*v]
				scale := 0.0
				for _, w := range want {
					scale = max(scale, math.Abs(float64(w)))
				}
				assert.InDeltaSlice(t, want, lb.Data()[i*v:(i+1)*v], 3e-2*scale, "logits row %d", i)
			}
			gb, err := mb.Generate(ids, 8, nn.NewSampler(1, 0, 0, 0))
			require.NoError(t, err)
			gr, err := rounded.Generate(ids, 8, nn.NewSampler(1, 0, 0, 0))
			require.NoError(t, err)
			assert.Equal(t, gr, gb, "greedy vs float32 of the rounded weights")
			if name == "llama_bf16" {
				want := ref[name].Greedy[:min(8, len(ref[name].Greedy))]
				for i, id := range want {
					if slices.Contains(mb.Config.EOS, id) {
						want = want[:i+1]
						break
					}
				}
				assert.Equal(t, want, gb, "greedy vs the PyTorch reference")
			}
			assert.ErrorIs(t, SaveModel(mb, t.TempDir()), nn.ErrFrozen, "SaveModel of a frozen model")
		})
	}
	m, err := LoadModelWith("testdata/smol_f32", LoadOptions{Dtype: "F16"})
	assert.ErrorContains(t, err, `dtype "F16"`)
	assert.Nil(t, m)
}

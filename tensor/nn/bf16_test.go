package nn

import (
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// bf16Pair returns a frozen copy of m and a float32 copy whose matrices
// are rounded to bfloat16 the same way: the same function, computed
// from the same weight values in two precisions of activation.
func bf16Pair(m *Model) (frozen, rounded *Model) {
	rounded = m.Clone()
	for _, p := range rounded.Params() {
		if p.Var.Value.Dims() == 2 {
			copy(p.Var.Value.Data(), p.Var.Value.BF16().Dense().Data())
		}
	}
	frozen = m.Clone()
	if err := frozen.FreezeBF16(); err != nil {
		panic(err)
	}
	return frozen, rounded
}

func bf16Model(t testing.TB, tied bool) *Model {
	t.Helper()
	// Vocab and Hidden not multiples of the tile, the head large enough
	// to be split among workers.
	m, err := NewModel(Config{Vocab: 301, DModel: 128, Layers: 2, Heads: 4, KVHeads: 2, Context: 32, Hidden: 200,
		QKVBias: true, Tied: tied}, 7)
	if err != nil {
		t.Fatal(err)
	}
	for j, p := range m.Params() {
		d := p.Var.Value.Data()
		switch {
		case p.Var.Value.Dims() == 2:
			for i := range d {
				d[i] *= 10 // attention and logits far from uniform
			}
		case strings.HasSuffix(p.Name, ".bias"): // biases that matter
			for i := range d {
				d[i] = float32(math.Sin(float64(7*i + j)))
			}
		}
	}
	return m
}

// peak returns the largest |x|: the logits' scale, which the tolerances
// below are fractions of.
func peak(x []float32) float64 {
	m := 0.0
	for _, v := range x {
		m = max(m, math.Abs(float64(v)))
	}
	return m
}

// TestFrozenDecoding compares decoding a frozen model with decoding the
// float32 model of the same bfloat16-rounded weights. A step keeps the
// activations exact (the decoder's multi-row kernel), so the two differ only
// in the order of float32 sums: 1e-4 of the row's largest logit. A
// prefill over several tokens runs tensor.GemmMixed, which rounds the
// activations to bfloat16 (2⁻⁹ relative each) before every product:
// 3e-2, fifteen times that rounding, after two blocks of seven products
// on weights scaled to make the logits peaked (measured: 1e-2).
func TestFrozenDecoding(t *testing.T) {
	for _, tied := range []bool{false, true} {
		t.Run(map[bool]string{false: "untied", true: "tied"}[tied], func(t *testing.T) {
			m := bf16Model(t, tied)
			fz, ref := bf16Pair(m)
			v := m.Config.Vocab
			prompt := randTokens(9, v, 3)
			df, dr := fz.NewDecoder(), ref.NewDecoder()
			a, err := df.Prefill(0, prompt)
			require.NoError(t, err)
			b, err := dr.Prefill(0, prompt)
			require.NoError(t, err)
			assert.InDeltaSlice(t, b, a, 3e-2*peak(b), "prefill")
			// Steps from the same cache contents: prefill one token at a time.
			df.Reset()
			dr.Reset()
			for i, tok := range append(prompt, randTokens(12, v, 4)...) {
				a, err := df.Step(tok)
				require.NoError(t, err)
				b, err := dr.Step(tok)
				require.NoError(t, err)
				assert.InDeltaSlice(t, b, a, 1e-4*peak(b), "step %d", i)
			}
			// Logits, a prefill that keeps every row.
			lf, err := fz.Logits(prompt)
			require.NoError(t, err)
			lr, err := ref.Logits(prompt)
			require.NoError(t, err)
			require.Equal(t, lr.Shape(), lf.Shape())
			for i := range prompt {
				want := lr.Data()[i*v : (i+1)*v]
				assert.InDeltaSlice(t, want, lf.Data()[i*v:(i+1)*v], 3e-2*peak(want), "Logits row %d", i)
			}
			// Greedy decoding agrees where the margins allow: the scaled
			// weights keep them wide.
			gf, err := fz.Generate(prompt, 16, NewSampler(1, 0, 0, 0))
			require.NoError(t, err)
			gr, err := ref.Generate(prompt, 16, NewSampler(1, 0, 0, 0))
			require.NoError(t, err)
			assert.Equal(t, gr, gf, "greedy tokens")
		})
	}
}

// TestFrozenBatch checks that a frozen model decodes a sequence bit for
// bit the same alone and in a batch.
func TestFrozenBatch(t *testing.T) {
	fz, _ := bf16Pair(bf16Model(t, true))
	prompts := [][]int32{randTokens(7, 301, 1), {100}, {7, 7, 7}, randTokens(5, 301, 2)}
	mk := func() []*Sampler {
		var ss []*Sampler
		for i := range prompts {
			ss = append(ss, NewSampler(uint64(10+i), 0.9, 0, 0))
		}
		return ss
	}
	batch, err := fz.GenerateBatch(prompts, 12, mk())
	require.NoError(t, err)
	ss := mk()
	for i, p := range prompts {
		one, err := fz.Generate(p, 12, ss[i])
		require.NoError(t, err)
		assert.Equal(t, one, batch[i], "prompt %d", i)
	}
	d1, d4 := fz.NewDecoder(), fz.NewBatchDecoder(3)
	_, err = d1.Prefill(0, prompts[0])
	require.NoError(t, err)
	for i, s := range []int{2, 0, 1} {
		_, err = d4.Prefill(s, prompts[i])
		require.NoError(t, err)
	}
	v := fz.Config.Vocab
	for step, tok := range []int32{9, 4, 300} {
		b, err := d4.StepBatch([]int{0, 2, 1}, []int32{5, tok, 6})
		require.NoError(t, err)
		a, err := d1.Step(tok)
		require.NoError(t, err)
		for j := range a { // bit for bit
			if math.Float32bits(a[j]) != math.Float32bits(b[v+j]) {
				t.Fatalf("step %d logit %d: alone %v, batched %v", step, j, a[j], b[v+j])
			}
		}
	}
}

// TestFrozenAllocs checks that a frozen model's step allocates nothing
// once the caches are reserved, one row and several.
func TestFrozenAllocs(t *testing.T) {
	fz, _ := bf16Pair(bf16Model(t, false))
	d := fz.NewBatchDecoder(3)
	d.Reserve(fz.Config.Context)
	for _, seqs := range [][]int{{1}, {0, 1, 2}} {
		toks := []int32{4, 5, 6}[:len(seqs)]
		_, err := d.StepBatch(seqs, toks)
		require.NoError(t, err)
		assert.Zero(t, testing.AllocsPerRun(10, func() { d.StepBatch(seqs, toks) }), "%d rows: allocations per step", len(seqs))
	}
}

// TestFrozenRefusesFloat32 checks that what needs float32 matrices says
// so, and that the rest of the model's API still holds together.
func TestFrozenRefusesFloat32(t *testing.T) {
	m := bf16Model(t, false)
	fz, ref := bf16Pair(m)
	require.True(t, fz.Frozen())
	require.False(t, m.Frozen())
	assert.ErrorIs(t, fz.Save(filepath.Join(t.TempDir(), "m.safetensors")), ErrFrozen, "Save")
	_, err := fz.PruneFFN(10)
	assert.ErrorIs(t, err, ErrFrozen, "PruneFFN")
	for _, p := range fz.Params() {
		assert.Equal(t, 1, p.Var.Value.Dims(), "Params lists %q", p.Name)
	}
	// Half the bytes of every matrix.
	assert.LessOrEqual(t, fz.WeightBytes(), ref.WeightBytes()/2+int64(8*fz.NumParams()), "WeightBytes")
	require.NoError(t, fz.FreezeBF16(), "freezing again")
	// An adapter must be merged and gone before the base is frozen.
	withLoRA := m.Clone()
	_, err = withLoRA.AddLoRA(LoRAConfig{Rank: 2, Alpha: 4}, 1)
	require.NoError(t, err)
	assert.Error(t, withLoRA.FreezeBF16(), "FreezeBF16 with LoRA")
	assert.False(t, withLoRA.Frozen(), "FreezeBF16 with LoRA")
	// A clone decodes the same, independently of the original.
	c := fz.Clone()
	require.True(t, c.Frozen())
	p := randTokens(6, 301, 9)
	a, err := fz.Logits(p)
	require.NoError(t, err)
	b, err := c.Logits(p)
	require.NoError(t, err)
	assert.Equal(t, a.Data(), b.Data(), "clone decodes differently")
	clear(fz.frozen.w[&fz.Blocks[0].MLP.Up].Data())
	b2, err := c.Logits(p)
	require.NoError(t, err)
	assert.Equal(t, b.Data(), b2.Data(), "clone shares the original's weights")
}

// TestFromTensorsBF16Errors checks that a frozen checkpoint is refused,
// naming the tensor, when a tensor is missing, in the wrong precision,
// unexpected or not finite.
func TestFromTensorsBF16Errors(t *testing.T) {
	m := bf16Model(t, true)
	split := func() ([]Tensor, []TensorBF16) {
		var ts []Tensor
		var mats []TensorBF16
		for _, p := range m.Params() {
			if p.Var.Value.Dims() == 2 {
				mats = append(mats, TensorBF16{p.Name, p.Var.Value.BF16()})
			} else {
				ts = append(ts, Tensor{p.Name, p.Var.Value.Clone()})
			}
		}
		return ts, mats
	}
	ts, mats := split()
	fz, err := FromTensorsBF16(m.Config, ts, mats)
	require.NoError(t, err)
	want, _ := bf16Pair(m)
	p := randTokens(5, 301, 4)
	a, err := fz.Logits(p)
	require.NoError(t, err)
	b, err := want.Logits(p)
	require.NoError(t, err)
	require.Equal(t, b.Data(), a.Data(), "FromTensorsBF16 decodes unlike FreezeBF16")
	for _, c := range []struct {
		name string
		edit func([]Tensor, []TensorBF16) ([]Tensor, []TensorBF16)
		want string
	}{
		{"missing", func(ts []Tensor, ms []TensorBF16) ([]Tensor, []TensorBF16) { return ts, ms[1:] }, `lacks tensor "embed.weight"`},
		{"float32 matrix", func(ts []Tensor, ms []TensorBF16) ([]Tensor, []TensorBF16) {
			return append(ts, Tensor{ms[0].Name, ms[0].Value.Dense()}), ms[1:]
		}, `"embed.weight": want it in bfloat16`},
		{"unexpected", func(ts []Tensor, ms []TensorBF16) ([]Tensor, []TensorBF16) {
			return ts, append(ms, TensorBF16{"extra", ms[0].Value})
		}, `unexpected tensor "extra"`},
		{"NaN", func(ts []Tensor, ms []TensorBF16) ([]Tensor, []TensorBF16) {
			ms[2].Value.Data()[5] = 0x7fc0
			return ts, ms
		}, `element 5 is NaN`},
	} {
		t.Run(c.name, func(t *testing.T) {
			ts, mats := split()
			ts, mats = c.edit(ts, mats)
			m, err := FromTensorsBF16(m.Config, ts, mats)
			assert.ErrorContains(t, err, c.want) // the message names the tensor
			assert.Nil(t, m)
		})
	}
}

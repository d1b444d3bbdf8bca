package nn

import (
	"errors"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/posttrain/posttrain/tensor/autograd"
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
	for _, p := range m.Params() {
		if p.Var.Value.Dims() == 2 {
			for i := range p.Var.Value.Data() {
				p.Var.Value.Data()[i] *= 10 // attention and logits far from uniform
			}
		}
	}
	return m
}

// relErr returns the largest |got−want| over the row's largest |want|.
func relErr(got, want []float32) float64 {
	scale, worst := 0.0, 0.0
	for _, w := range want {
		scale = max(scale, math.Abs(float64(w)))
	}
	for i, w := range want {
		worst = max(worst, math.Abs(float64(got[i]-w)))
	}
	return worst / scale
}

// TestFrozenDecoding compares decoding a frozen model with decoding the
// float32 model of the same bfloat16-rounded weights. A step keeps the
// activations exact (tensor.MatVecBF16's kernel), so the two differ only
// in the order of float32 sums: 1e-4 of the row's largest logit. A
// prefill over several tokens runs tensor.GemmMixed, which rounds the
// activations to bfloat16 (2⁻⁹ relative each) before every product:
// 3e-2, fifteen times that rounding, after two blocks of seven products
// on weights scaled to make the logits peaked (measured: 1e-2).
func TestFrozenDecoding(t *testing.T) {
	for _, tied := range []bool{false, true} {
		m := bf16Model(t, tied)
		fz, ref := bf16Pair(m)
		v := m.Config.Vocab
		prompt := randTokens(9, v, 3)
		df, dr := fz.NewDecoder(), ref.NewDecoder()
		a, err := df.Prefill(0, prompt)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := dr.Prefill(0, prompt)
		if e := relErr(a, b); e > 3e-2 {
			t.Fatalf("tied %v: prefill logits off by %.2g of the largest", tied, e)
		} else {
			t.Logf("tied %v: prefill %.2g", tied, e)
		}
		// Steps from the same cache contents: prefill one token at a time.
		df.Reset()
		dr.Reset()
		worst := 0.0
		for _, tok := range append(prompt, randTokens(12, v, 4)...) {
			a, _ := df.Step(tok)
			b, _ := dr.Step(tok)
			worst = max(worst, relErr(a, b))
		}
		if worst > 1e-4 {
			t.Fatalf("tied %v: step logits off by %.2g of the largest", tied, worst)
		}
		t.Logf("tied %v: steps %.2g", tied, worst)
		// Logits, a prefill that keeps every row.
		lf, err := fz.Logits(prompt)
		if err != nil {
			t.Fatal(err)
		}
		lr, _ := ref.Logits(prompt)
		if !slices.Equal(lf.Shape(), lr.Shape()) {
			t.Fatalf("Logits shape %v, want %v", lf.Shape(), lr.Shape())
		}
		for i := range prompt {
			if e := relErr(lf.Data()[i*v:(i+1)*v], lr.Data()[i*v:(i+1)*v]); e > 3e-2 {
				t.Fatalf("tied %v: Logits row %d off by %.2g", tied, i, e)
			}
		}
		// Greedy decoding agrees where the margins allow: the scaled
		// weights keep them wide.
		gf, err := fz.Generate(prompt, 16, NewSampler(1, 0, 0, 0))
		if err != nil {
			t.Fatal(err)
		}
		gr, _ := ref.Generate(prompt, 16, NewSampler(1, 0, 0, 0))
		if !slices.Equal(gf, gr) {
			t.Errorf("tied %v: greedy %v, float32 %v", tied, gf, gr)
		}
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
	if err != nil {
		t.Fatal(err)
	}
	ss := mk()
	for i, p := range prompts {
		one, _ := fz.Generate(p, 12, ss[i])
		if !slices.Equal(one, batch[i]) {
			t.Fatalf("prompt %d: batched %v, alone %v", i, batch[i], one)
		}
	}
	d1, d4 := fz.NewDecoder(), fz.NewBatchDecoder(3)
	d1.Prefill(0, prompts[0])
	d4.Prefill(2, prompts[0])
	d4.Prefill(0, prompts[1])
	d4.Prefill(1, prompts[2])
	v := fz.Config.Vocab
	for step, tok := range []int32{9, 4, 300} {
		b, _ := d4.StepBatch([]int{0, 2, 1}, []int32{5, tok, 6})
		a, _ := d1.Step(tok)
		for j := range a {
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
		d.StepBatch(seqs, toks)
		if n := testing.AllocsPerRun(10, func() { d.StepBatch(seqs, toks) }); n != 0 {
			t.Errorf("%d rows: %v allocations per step", len(seqs), n)
		}
	}
}

// TestFrozenRefusesTraining checks that what needs float32 weights says
// so, and that the rest of the model's API still holds together.
func TestFrozenRefusesTraining(t *testing.T) {
	m := bf16Model(t, false)
	fz, ref := bf16Pair(m)
	if !fz.Frozen() || m.Frozen() {
		t.Fatal("Frozen wrong")
	}
	tape := autograd.NewTape()
	if _, err := fz.Forward(tape, randTokens(4, 301, 1), 1); !errors.Is(err, ErrFrozen) {
		t.Fatalf("Forward: %v, want ErrFrozen", err)
	}
	if err := fz.Save(filepath.Join(t.TempDir(), "m.safetensors")); !errors.Is(err, ErrFrozen) {
		t.Fatalf("Save: %v, want ErrFrozen", err)
	}
	if _, err := fz.PruneFFN(10); !errors.Is(err, ErrFrozen) {
		t.Fatalf("PruneFFN: %v, want ErrFrozen", err)
	}
	for _, p := range fz.Params() {
		if p.Var == nil || p.Var.Value.Dims() != 1 {
			t.Fatalf("Params lists %q", p.Name)
		}
	}
	// Half the bytes of every matrix.
	if got, want := fz.WeightBytes(), ref.WeightBytes(); got > want/2+int64(8*fz.NumParams()) {
		t.Fatalf("WeightBytes %d frozen, %d float32", got, want)
	}
	if err := fz.FreezeBF16(); err != nil { // no-op
		t.Fatal(err)
	}
	if _, err := fz.Hidden(tape, randTokens(4, 301, 1), 1); !errors.Is(err, ErrFrozen) {
		t.Fatalf("Hidden: %v, want ErrFrozen", err)
	}
	if _, err := fz.AddLoRA(LoRAConfig{Rank: 2, Alpha: 4}, 1); !errors.Is(err, ErrFrozen) {
		t.Fatalf("AddLoRA: %v, want ErrFrozen", err)
	}
	// An adapter must be merged and gone before the base is frozen.
	withLoRA := m.Clone()
	if _, err := withLoRA.AddLoRA(LoRAConfig{Rank: 2, Alpha: 4}, 1); err != nil {
		t.Fatal(err)
	}
	if err := withLoRA.FreezeBF16(); err == nil || withLoRA.Frozen() {
		t.Fatalf("FreezeBF16 with LoRA: %v", err)
	}
	// A clone decodes the same, independently of the original.
	c := fz.Clone()
	if !c.Frozen() {
		t.Fatal("clone not frozen")
	}
	p := randTokens(6, 301, 9)
	a, _ := fz.Logits(p)
	b, _ := c.Logits(p)
	if !slices.Equal(a.Data(), b.Data()) {
		t.Fatal("clone decodes differently")
	}
	clear(fz.frozen.w[&fz.Blocks[0].MLP.Up].Data())
	b2, _ := c.Logits(p)
	if !slices.Equal(b.Data(), b2.Data()) {
		t.Fatal("clone shares the original's weights")
	}
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
	if err != nil {
		t.Fatal(err)
	}
	want, _ := bf16Pair(m)
	p := randTokens(5, 301, 4)
	a, _ := fz.Logits(p)
	b, _ := want.Logits(p)
	if !slices.Equal(a.Data(), b.Data()) {
		t.Fatal("FromTensorsBF16 decodes unlike FreezeBF16")
	}
	for _, c := range []struct {
		edit func([]Tensor, []TensorBF16) ([]Tensor, []TensorBF16)
		want string
	}{
		{func(ts []Tensor, ms []TensorBF16) ([]Tensor, []TensorBF16) { return ts, ms[1:] }, `lacks tensor "embed.weight"`},
		{func(ts []Tensor, ms []TensorBF16) ([]Tensor, []TensorBF16) {
			return append(ts, Tensor{ms[0].Name, ms[0].Value.Dense()}), ms[1:]
		}, `"embed.weight": want it in bfloat16`},
		{func(ts []Tensor, ms []TensorBF16) ([]Tensor, []TensorBF16) {
			return ts, append(ms, TensorBF16{"extra", ms[0].Value})
		}, `unexpected tensor "extra"`},
		{func(ts []Tensor, ms []TensorBF16) ([]Tensor, []TensorBF16) {
			ms[2].Value.Data()[5] = 0x7fc0 // NaN
			return ts, ms
		}, `element 5 is NaN`},
	} {
		ts, mats := split()
		ts, mats = c.edit(ts, mats)
		if _, err := FromTensorsBF16(m.Config, ts, mats); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want %q", err, c.want)
		}
	}
}

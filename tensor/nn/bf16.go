package nn

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/posttrain/posttrain/tensor"
	"github.com/posttrain/posttrain/tensor/autograd"
	"github.com/posttrain/posttrain/tensor/internal/simd"
)

// A model that is only read — a reference or teacher model, a reward
// scorer, a generator for rejection sampling or online RL — spends its
// decoding time streaming weights from memory: every token reads every
// weight once. FreezeBF16 holds those weights as bfloat16, half the
// bytes, and the decoder reads them as they are, with a multi-row kernel
// for a few tokens at a time (the activations stay float32 and exact)
// and tensor.GemmMixed for a prompt's rows (the activations rounded to
// bfloat16 once per product).

// ErrFrozen is returned by the operations that need float32 matrices —
// Save, PruneFFN — on a model frozen in bfloat16.
var ErrFrozen = errors.New("model is frozen in bfloat16 (FreezeBF16): its matrices are not float32")

// frozen holds a model's matrices in bfloat16: every Linear's weight
// (the untied head's too) and the embedding, which is the head when
// Config.Tied. The layers point at them too (Linear.w16, Embedding.w16),
// for the recorded forward pass.
type frozen struct {
	w     map[*Linear]*tensor.BF16
	embed *tensor.BF16

	once sync.Once
	head *tensor.Dense // the head widened, made by HeadWeight
}

// attach makes f the model's frozen matrices, in place of the float32
// ones.
func (m *Model) attach(f *frozen) {
	m.frozen = f
	m.Embed.W, m.Embed.w16 = nil, f.embed
	for l, w := range f.w {
		l.W, l.w16 = nil, w
	}
}

// embed16 returns the rows of a bfloat16 table for ids, widened, as a
// constant: a frozen table takes no gradient. An id outside the table
// panics with a *tensor.ShapeError, as in Tape.Embedding.
func embed16(w *tensor.BF16, ids []int32) *autograd.Var {
	v, d := w.Dim(0), w.Dim(1)
	out := tensor.New(len(ids), d)
	for i, id := range ids {
		if id < 0 || int(id) >= v {
			panic(&tensor.ShapeError{Op: "Embedding", Msg: fmt.Sprintf("id %d at position %d outside a table of %d rows", id, i, v)})
		}
		tensor.FromBF16(out.Data()[i*d:(i+1)*d], w.Data()[int(id)*d:(int(id)+1)*d])
	}
	return autograd.Const(out)
}

// dims returns the layer's output and input sizes.
func (l *Linear) dims() (out, in int) {
	if l.W == nil && l.w16 != nil {
		return l.w16.Dim(0), l.w16.Dim(1)
	}
	return l.W.Value.Dim(0), l.W.Value.Dim(1)
}

// HeadWeight returns the output head's weight [Vocab, DModel] in
// float32: Head.W's value (the embedding's when tied), or, for a model
// frozen in bfloat16, the head's bfloat16 values widened — made on the
// first call and kept, Vocab·DModel floats, since the fused log-prob
// heads of training read float32 weights. Decoding never makes it.
func (m *Model) HeadWeight() *tensor.Dense {
	f := m.frozen
	if f == nil {
		return m.Head.W.Value
	}
	f.once.Do(func() { f.head = f.w[&m.Head].Dense() })
	return f.head
}

// FreezeBF16 rounds the model's matrices — the embedding, every
// projection of every block and the untied head — to bfloat16 (nearest,
// ties to even) and drops their float32 copies, so that the model takes
// about half the memory and decodes reading half the bytes. Norm weights
// and biases, a few thousand values, stay float32. A checkpoint stored
// in bfloat16 loses nothing: its words come back as they were.
//
// A frozen model decodes (NewDecoder, Generate, GenerateBatch) and scores
// (Logits), and Clone copies it frozen. Its matrices do not train, but
// AddLoRA puts adapters on it, and Forward and Hidden record passes
// through the bfloat16 layers with gradients to their inputs: LoRA on a
// bfloat16 base. Save and PruneFFN return ErrFrozen, and Params lists
// only the float32 parameters left. FreezeBF16 returns an error,
// changing nothing, on a model that carries LoRA adapters (merge them
// first with Adapter.Merge and detach them, or freeze before adding
// them); freezing a frozen model does nothing.
func (m *Model) FreezeBF16() error {
	if m.frozen != nil {
		return nil
	}
	if m.LoRA() != nil {
		return fmt.Errorf("nn: FreezeBF16: the model carries LoRA adapters")
	}
	f := &frozen{w: map[*Linear]*tensor.BF16{}, embed: m.Embed.W.Value.BF16()}
	for i := range m.Blocks {
		for _, ml := range m.Blocks[i].linears() {
			f.w[ml.l] = ml.l.W.Value.BF16()
		}
	}
	if m.Config.Tied {
		f.w[&m.Head] = f.embed
	} else {
		f.w[&m.Head] = m.Head.W.Value.BF16()
	}
	m.attach(f)
	return nil
}

// Frozen reports whether the model's matrices are held in bfloat16.
func (m *Model) Frozen() bool { return m.frozen != nil }

// WeightBytes returns the bytes of weights one decoding step reads at
// most: every matrix but the embedding (whose one row per token is
// read), counted once when tied, at 2 bytes per element when frozen and
// 4 otherwise, plus the float32 norms and biases.
func (m *Model) WeightBytes() int64 {
	c := m.Config
	var n int64
	for _, p := range c.specs() {
		e := int64(1)
		for _, d := range p.shape {
			e *= int64(d)
		}
		size := int64(4)
		if m.frozen != nil && len(p.shape) == 2 {
			size = 2
		}
		if p.name == "embed.weight" && !c.Tied {
			continue
		}
		n += e * size
	}
	return n
}

// cloneFrozen is Clone for a frozen model: the bfloat16 matrices and the
// float32 parameters left, copied.
func (m *Model) cloneFrozen() *Model {
	left := map[string]*autograd.Var{}
	for _, p := range m.Params() {
		left[p.Name] = p.Var
	}
	c := build(m.Config.withDefaults(), func(s spec) *autograd.Var {
		if v := left[s.name]; v != nil {
			return autograd.Param(v.Value.Clone())
		}
		return nil
	})
	copyBF16 := func(t *tensor.BF16) *tensor.BF16 {
		return tensor.FromSliceBF16(append([]uint16(nil), t.Data()...), t.Shape()...)
	}
	f := &frozen{w: map[*Linear]*tensor.BF16{}, embed: copyBF16(m.frozen.embed)}
	for i := range m.Blocks {
		dst := c.Blocks[i].linears()
		for j, ml := range m.Blocks[i].linears() {
			f.w[dst[j].l] = copyBF16(m.frozen.w[ml.l])
		}
	}
	if c.Config.Tied {
		f.w[&c.Head] = f.embed
	} else {
		f.w[&c.Head] = copyBF16(m.frozen.w[&m.Head])
	}
	c.attach(f)
	return c
}

// logitsFrozen is Logits for a frozen model: a prefill that keeps every
// row's logits.
func (m *Model) logitsFrozen(ids []int32) (*tensor.Dense, error) {
	d := m.NewDecoder()
	d.all = true
	l, err := d.Prefill(0, ids)
	if err != nil {
		return nil, fmt.Errorf("nn: Logits: %v", err)
	}
	return tensor.FromSlice(append([]float32(nil), l...), len(ids), m.Config.Vocab), nil
}

// embedRow writes token t's embedding into dst, widening a frozen one.
func (m *Model) embedRow(dst []float32, t int32) {
	if m.frozen != nil {
		d := m.Config.DModel
		tensor.FromBF16(dst, m.frozen.embed.Data()[int(t)*d:(int(t)+1)*d])
		return
	}
	copy(dst, m.Embed.W.Value.Row(int(t)))
}

// lin16 is the decoder's product y = x·Wᵀ + b for nr rows x through a
// frozen layer w [out, in]: GemmMixed for a prompt, else one streaming
// pass over w for every row. It reports false for a float32 layer.
func (d *Decoder) lin16(y []float32, l *Linear, x []float32, nr int, prefill bool) bool {
	f := d.m.frozen
	if f == nil {
		return false
	}
	w := f.w[l]
	var b []float32
	if l.B != nil {
		b = l.B.Value.Data()
	}
	out, in := w.Dim(0), w.Dim(1)
	if prefill && nr > 1 {
		tensor.GemmMixed(false, true, 1, tensor.FromSlice(x[:nr*in], nr, in), w, 0, tensor.FromSlice(y[:nr*out], nr, out))
		if b != nil {
			for r := range nr {
				yr := y[r*out : (r+1)*out]
				tensor.Add(yr, yr, b)
			}
		}
		return true
	}
	d.dots16(y, x, w.Data(), b, nr, in, out)
	return true
}

// dot16Job is one worker's share of a frozen product: outputs [o0, o1)
// of every row, against the input rows split once for all shares.
type dot16Job struct {
	dotJob
	w []uint16
}

func (j *dot16Job) run() {
	simd.K.DotsBF16(j.y[j.o0:], j.out, j.w[j.o0*j.in:], j.in, j.x, simd.SplitLen(j.in), j.rows, j.o1-j.o0, j.in)
	j.addBias()
}

// dots16 is dots for bfloat16 weights: y[r, o] = W[o]·x[r] + b[o], x
// exact. The kernel reads each input row with its even and odd columns
// apart (simd.SplitBF16), reordered here once per product.
func (d *Decoder) dots16(y, x []float32, w []uint16, b []float32, rows, in, out int) {
	if len(d.jobs16) != len(d.jobs) {
		d.jobs16 = make([]dot16Job, len(d.jobs))
	}
	ls := simd.SplitLen(in)
	d.split = fit(d.split, rows*ls)
	for r := range rows {
		simd.SplitBF16(d.split[r*ls:(r+1)*ls], x[r*in:(r+1)*in])
	}
	per := d.share(out, out*in*rows, 16)
	n := 0
	for o0 := 0; o0 < out; o0 += per {
		d.jobs16[n] = dot16Job{dotJob{y: y, x: d.split, b: b, rows: rows, in: in, out: out, o0: o0, o1: min(out, o0+per)}, w}
		d.tasks[n] = &d.jobs16[n]
		n++
	}
	d.fanout(d.tasks[:n])
}

// TensorBF16 is a named bfloat16 tensor, as a loader reads a checkpoint's
// matrices for FromTensorsBF16.
type TensorBF16 struct {
	Name  string
	Value *tensor.BF16
}

// FromTensorsBF16 is FromTensors for a frozen model: the matrices (the
// parameters of two dimensions, named as Params names them) come as
// bfloat16 in mats and everything else, the norms and biases, as float32
// in ts. The model takes ownership of both, so a checkpoint stored in
// bfloat16 is held at its own size, never widened. The checks and errors
// are FromTensors's, with any non-finite bfloat16 element refused too.
func FromTensorsBF16(cfg Config, ts []Tensor, mats []TensorBF16) (*Model, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	byName := make(map[string][]int, len(ts)+len(mats))
	for _, t := range ts {
		if _, dup := byName[t.Name]; dup {
			return nil, fmt.Errorf("nn: checkpoint has tensor %q twice", t.Name)
		}
		byName[t.Name] = t.Value.Shape()
	}
	mat := make(map[string]*tensor.BF16, len(mats))
	for _, t := range mats {
		if _, dup := byName[t.Name]; dup {
			return nil, fmt.Errorf("nn: checkpoint has tensor %q twice", t.Name)
		}
		byName[t.Name] = t.Value.Shape()
		mat[t.Name] = t.Value
	}
	ss := cfg.specs()
	for _, s := range ss {
		shape, ok := byName[s.name]
		if !ok {
			return nil, fmt.Errorf("nn: checkpoint lacks tensor %q", s.name)
		}
		if !slices.Equal(shape, s.shape) {
			return nil, fmt.Errorf("nn: checkpoint tensor %q has shape %v, model needs %v", s.name, shape, s.shape)
		}
		if _, isMat := mat[s.name]; isMat != (len(s.shape) == 2) {
			return nil, fmt.Errorf("nn: checkpoint tensor %q: want it in %s", s.name, map[bool]string{true: "bfloat16", false: "float32"}[len(s.shape) == 2])
		}
		delete(byName, s.name)
	}
	first := ""
	for n := range byName { // the first in order, for a reproducible error
		if first == "" || n < first {
			first = n
		}
	}
	if first != "" {
		return nil, fmt.Errorf("nn: checkpoint has unexpected tensor %q", first)
	}
	for _, t := range mats {
		for i, u := range t.Value.Data() {
			if u&0x7f80 == 0x7f80 {
				return nil, fmt.Errorf("nn: checkpoint tensor %q element %d is %v", t.Name, i, tensor.FromSliceBF16([]uint16{u}, 1).Dense().Data()[0])
			}
		}
	}
	float := map[string]*tensor.Dense{}
	for _, t := range ts {
		if i := NonFinite(t.Value.Data()); i >= 0 {
			return nil, fmt.Errorf("nn: checkpoint tensor %q element %d is %v", t.Name, i, t.Value.Data()[i])
		}
		float[t.Name] = t.Value
	}
	m := build(cfg, func(s spec) *autograd.Var {
		if d := float[s.name]; d != nil {
			return autograd.Param(d)
		}
		return nil
	})
	f := &frozen{w: map[*Linear]*tensor.BF16{}, embed: mat["embed.weight"]}
	for i := range m.Blocks {
		for _, ml := range m.Blocks[i].linears() {
			f.w[ml.l] = mat[fmt.Sprintf("layers.%d.%s.weight", i, ml.path)]
		}
	}
	if cfg.Tied {
		f.w[&m.Head] = f.embed
	} else {
		f.w[&m.Head] = mat["head.weight"]
	}
	m.attach(f)
	return m, nil
}

package nn

import (
	"math/rand/v2"

	"github.com/posttrain/posttrain/tensor"
	"github.com/posttrain/posttrain/tensor/autograd"
)

// Named is a parameter with its checkpoint name.
type Named struct {
	Name string
	Var  *autograd.Var
}

func normal(rng *rand.Rand, std float64, shape ...int) *autograd.Var {
	d := tensor.New(shape...)
	for i := range d.Data() {
		d.Data()[i] = float32(rng.NormFloat64() * std)
	}
	return autograd.Param(d)
}

func ones(n int) *autograd.Var {
	d := tensor.New(n)
	for i := range d.Data() {
		d.Data()[i] = 1
	}
	return autograd.Param(d)
}

// Linear is y = x·Wᵀ + B; W is [out, in] as in PyTorch, and B [out] is
// nil for a layer without bias. LoRA, when set, adds a low-rank update
// (see AddLoRA). In a model frozen in bfloat16 (Model.FreezeBF16) W is
// nil and the layer multiplies by its bfloat16 weights.
type Linear struct {
	W, B *autograd.Var
	LoRA *LoRA

	w16 *tensor.BF16 // the weights when frozen in bfloat16, else nil
}

// Forward applies the layer to x [N, in].
func (l *Linear) Forward(t *autograd.Tape, x *autograd.Var) *autograd.Var {
	var y *autograd.Var
	if l.W == nil && l.w16 != nil {
		y = t.MatMulTBF16(x, l.w16)
	} else {
		y = t.MatMulT(x, l.W)
	}
	if l.B != nil {
		y = t.Add(y, l.B)
	}
	if l.LoRA != nil {
		y = l.LoRA.forward(t, x, y)
	}
	return y
}

// Embedding maps token ids to rows of W [vocab, d]. In a model frozen in
// bfloat16 W is nil and the rows are read from the bfloat16 table.
type Embedding struct {
	W *autograd.Var

	w16 *tensor.BF16 // the table when frozen in bfloat16, else nil
}

// Forward returns the rows of W for ids, shape [len(ids), d].
func (e *Embedding) Forward(t *autograd.Tape, ids []int32) *autograd.Var {
	if e.W == nil && e.w16 != nil {
		return embed16(e.w16, ids)
	}
	return t.Embedding(e.W, ids)
}

// RMSNorm scales each row to unit root-mean-square, then by W.
type RMSNorm struct {
	W   *autograd.Var
	Eps float64
}

// Forward normalizes the rows of x.
func (n *RMSNorm) Forward(t *autograd.Tape, x *autograd.Var) *autograd.Var {
	return t.RMSNorm(x, n.W, n.Eps)
}

// Attention is causal grouped-query self-attention with rotary position
// embeddings on queries and keys (Vaswani et al. 2017; Su et al. 2021;
// Ainslie et al. 2023): Heads query heads of size HeadDim share KVHeads
// key/value heads in blocks, query head h reading key/value head
// h/(Heads/KVHeads) — transformers' repeat_kv. Scores are scaled by
// HeadDim^−½.
type Attention struct {
	Q, K, V, O Linear
	Heads      int
	KVHeads    int
	HeadDim    int
}

// Forward attends within each of batch sequences of x [batch·T, D],
// with RoPE tables cos, sin [T, HeadDim/2]: the projections stay in
// their [batch·T, heads·HeadDim] rows, and autograd's fused Attention
// rotates, groups and masks the heads.
func (a *Attention) Forward(t *autograd.Tape, x *autograd.Var, batch int, cos, sin *tensor.Dense) *autograd.Var {
	o := t.Attention(a.Q.Forward(t, x), a.K.Forward(t, x), a.V.Forward(t, x), batch, cos, sin)
	return a.O.Forward(t, o)
}

// ForwardPacked is Forward on packed sequences, one per entry of starts:
// starts[b] lists where the documents of sequence b begin (0 first,
// increasing), each attending only to itself with RoPE positions from 0
// (autograd's PackedAttention).
func (a *Attention) ForwardPacked(t *autograd.Tape, x *autograd.Var, starts [][]int, cos, sin *tensor.Dense) *autograd.Var {
	o := t.PackedAttention(a.Q.Forward(t, x), a.K.Forward(t, x), a.V.Forward(t, x), starts, cos, sin)
	return a.O.Forward(t, o)
}

// MLP is the SwiGLU feed-forward block: Down(SiLU(Gate·x) ∘ Up·x)
// (Shazeer 2020).
type MLP struct{ Gate, Up, Down Linear }

// Forward applies the block to x [N, D].
func (m *MLP) Forward(t *autograd.Tape, x *autograd.Var) *autograd.Var {
	return m.Down.Forward(t, t.SwiGLU(m.Gate.Forward(t, x), m.Up.Forward(t, x)))
}

// Block is a pre-norm decoder block: x + Attn(Norm1 x), then + MLP(Norm2 x).
type Block struct {
	Norm1, Norm2 RMSNorm
	Attn         Attention
	MLP          MLP
}

// Forward applies the block to x [batch·T, D]: ForwardMLP(ForwardAttn(x)).
func (b *Block) Forward(t *autograd.Tape, x *autograd.Var, batch int, cos, sin *tensor.Dense) *autograd.Var {
	return b.ForwardMLP(t, b.ForwardAttn(t, x, batch, cos, sin))
}

// ForwardAttn is the block's first half, x + Attn(Norm1 x): with
// ForwardMLP, gradient checkpointing can recompute and differentiate a
// block half by half, holding one half's activations at a time.
func (b *Block) ForwardAttn(t *autograd.Tape, x *autograd.Var, batch int, cos, sin *tensor.Dense) *autograd.Var {
	return t.Add(x, b.Attn.Forward(t, b.Norm1.Forward(t, x), batch, cos, sin))
}

// ForwardPacked is Forward on packed sequences (Attention.ForwardPacked).
func (b *Block) ForwardPacked(t *autograd.Tape, x *autograd.Var, starts [][]int, cos, sin *tensor.Dense) *autograd.Var {
	return b.ForwardMLP(t, b.ForwardAttnPacked(t, x, starts, cos, sin))
}

// ForwardAttnPacked is ForwardAttn on packed sequences.
func (b *Block) ForwardAttnPacked(t *autograd.Tape, x *autograd.Var, starts [][]int, cos, sin *tensor.Dense) *autograd.Var {
	return t.Add(x, b.Attn.ForwardPacked(t, b.Norm1.Forward(t, x), starts, cos, sin))
}

// ForwardMLP is the block's second half, x + MLP(Norm2 x).
func (b *Block) ForwardMLP(t *autograd.Tape, x *autograd.Var) *autograd.Var {
	return t.Add(x, b.MLP.Forward(t, b.Norm2.Forward(t, x)))
}

package nn

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/posttrain/posttrain/tensor"
	"github.com/posttrain/posttrain/tensor/autograd"
)

// Config sizes a TinyLM.
type Config struct {
	Vocab   int     // vocabulary size (256 for ByteTokenizer)
	DModel  int     // width of the residual stream
	Layers  int     // decoder blocks
	Heads   int     // attention heads; DModel/Heads must be even (RoPE)
	Context int     // longest sequence
	Hidden  int     // SwiGLU hidden size; 0 means 2·DModel
	Eps     float64 // RMSNorm epsilon; 0 means 1e-6
	RoPE    float64 // rotary base; 0 means 10000
}

// AnchorConfig is the model of the PyTorch anchor this package is
// benchmarked against: vocabulary 256, width 128, 4 layers of 4 heads,
// context 128, SwiGLU hidden 256.
var AnchorConfig = Config{Vocab: 256, DModel: 128, Layers: 4, Heads: 4, Context: 128, Hidden: 256}

func (c Config) withDefaults() Config {
	if c.Hidden == 0 {
		c.Hidden = 2 * c.DModel
	}
	if c.Eps == 0 {
		c.Eps = 1e-6
	}
	if c.RoPE == 0 {
		c.RoPE = 10000
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.Vocab <= 0, c.DModel <= 0, c.Layers < 0, c.Heads <= 0, c.Context <= 0, c.Hidden <= 0:
		return fmt.Errorf("nn: config %+v: sizes must be positive", c)
	case c.DModel%c.Heads != 0:
		return fmt.Errorf("nn: config: DModel %d not divisible by Heads %d", c.DModel, c.Heads)
	case (c.DModel/c.Heads)%2 != 0:
		return fmt.Errorf("nn: config: head size %d must be even for RoPE", c.DModel/c.Heads)
	case c.Eps < 0 || c.RoPE <= 0 || math.IsNaN(c.Eps) || math.IsNaN(c.RoPE):
		return fmt.Errorf("nn: config: bad Eps %v or RoPE base %v", c.Eps, c.RoPE)
	}
	return nil
}

// TinyLM is a decoder-only language model: token embedding, pre-norm
// blocks of RoPE attention and SwiGLU MLP, a final RMSNorm and an untied
// output head — the LLaMA layout at toy scale.
type TinyLM struct {
	Config Config
	Embed  Embedding
	Blocks []Block
	Norm   RMSNorm
	Head   Linear

	cos, sin *tensor.Dense // RoPE tables for positions 0…Context−1
}

// NewTinyLM returns a model with weights drawn from seed: N(0, 0.02),
// residual output projections scaled by 1/√(2·Layers) (GPT-2), norms 1.
func NewTinyLM(cfg Config, seed uint64) (*TinyLM, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	d, h := cfg.DModel, cfg.Hidden
	const std = 0.02
	res := std / math.Sqrt(2*float64(max(1, cfg.Layers)))
	m := &TinyLM{Config: cfg}
	m.Embed.W = normal(rng, std, cfg.Vocab, d)
	m.Blocks = make([]Block, cfg.Layers)
	for i := range m.Blocks {
		b := &m.Blocks[i]
		b.Norm1 = RMSNorm{W: ones(d), Eps: cfg.Eps}
		b.Norm2 = RMSNorm{W: ones(d), Eps: cfg.Eps}
		b.Attn.Heads = cfg.Heads
		b.Attn.Q.W = normal(rng, std, d, d)
		b.Attn.K.W = normal(rng, std, d, d)
		b.Attn.V.W = normal(rng, std, d, d)
		b.Attn.O.W = normal(rng, res, d, d)
		b.MLP.Gate.W = normal(rng, std, h, d)
		b.MLP.Up.W = normal(rng, std, h, d)
		b.MLP.Down.W = normal(rng, res, d, h)
	}
	m.Norm = RMSNorm{W: ones(d), Eps: cfg.Eps}
	m.Head.W = normal(rng, std, cfg.Vocab, d)
	m.initRoPE()
	return m, nil
}

func (m *TinyLM) initRoPE() {
	c := m.Config
	m.cos, m.sin = autograd.RoPETables(0, c.Context, c.DModel/c.Heads, c.RoPE)
}

// Params returns the parameters with their checkpoint names, in a fixed
// order (the order AdamW and Save use).
func (m *TinyLM) Params() []Named {
	ps := []Named{{"embed.weight", m.Embed.W}}
	for i := range m.Blocks {
		b := &m.Blocks[i]
		p := fmt.Sprintf("layers.%d.", i)
		ps = append(ps,
			Named{p + "norm1.weight", b.Norm1.W},
			Named{p + "attn.q.weight", b.Attn.Q.W},
			Named{p + "attn.k.weight", b.Attn.K.W},
			Named{p + "attn.v.weight", b.Attn.V.W},
			Named{p + "attn.o.weight", b.Attn.O.W},
			Named{p + "norm2.weight", b.Norm2.W},
			Named{p + "mlp.gate.weight", b.MLP.Gate.W},
			Named{p + "mlp.up.weight", b.MLP.Up.W},
			Named{p + "mlp.down.weight", b.MLP.Down.W},
		)
	}
	return append(ps, Named{"norm.weight", m.Norm.W}, Named{"head.weight", m.Head.W})
}

// NumParams returns the number of scalar parameters.
func (m *TinyLM) NumParams() int {
	n := 0
	for _, p := range m.Params() {
		n += p.Var.Value.Len()
	}
	return n
}

// ZeroGrad clears every parameter's gradient.
func (m *TinyLM) ZeroGrad() {
	for _, p := range m.Params() {
		p.Var.ZeroGrad()
	}
}

// CheckTokens returns an error naming the first id outside the vocabulary.
func (m *TinyLM) CheckTokens(ids []int32) error {
	for i, id := range ids {
		if id < 0 || int(id) >= m.Config.Vocab {
			return fmt.Errorf("nn: token %d at position %d outside vocabulary of %d", id, i, m.Config.Vocab)
		}
	}
	return nil
}

// Forward runs batch sequences of equal length, laid end to end in
// tokens, through the model on tape t and returns the logits [batch·T,
// Vocab]: row b·T+i predicts token i+1 of sequence b.
//
// Sequences of different lengths are padded at the end: causal attention
// keeps padding from affecting earlier positions, and a target of −1 in
// CrossEntropy leaves the padded rows out of the loss.
//
// It returns an error, recording nothing, for a bad token id, a length not
// divisible by batch, or sequences longer than the context.
func (m *TinyLM) Forward(t *autograd.Tape, tokens []int32, batch int) (*autograd.Var, error) {
	if batch <= 0 || len(tokens) == 0 || len(tokens)%batch != 0 {
		return nil, fmt.Errorf("nn: Forward: %d tokens do not split into %d sequences", len(tokens), batch)
	}
	tt := len(tokens) / batch
	if tt > m.Config.Context {
		return nil, fmt.Errorf("nn: Forward: sequence length %d exceeds context %d", tt, m.Config.Context)
	}
	if err := m.CheckTokens(tokens); err != nil {
		return nil, err
	}
	h := m.Config.DModel / m.Config.Heads / 2
	cos := tensor.FromSlice(m.cos.Data()[:tt*h], tt, h)
	sin := tensor.FromSlice(m.sin.Data()[:tt*h], tt, h)
	x := m.Embed.Forward(t, tokens)
	for i := range m.Blocks {
		x = m.Blocks[i].Forward(t, x, batch, cos, sin)
	}
	return m.Head.Forward(t, m.Norm.Forward(t, x)), nil
}

// Clone returns a deep copy of m with fresh (zero) gradients: a frozen
// reference for DPO-style objectives, or a starting point for a student.
func (m *TinyLM) Clone() *TinyLM {
	c, err := NewTinyLM(m.Config, 0)
	if err != nil {
		panic(err) // m's config was validated when m was made
	}
	src, dst := m.Params(), c.Params()
	for i := range src {
		copy(dst[i].Var.Value.Data(), src[i].Var.Value.Data())
	}
	return c
}

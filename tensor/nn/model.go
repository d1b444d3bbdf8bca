package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/posttrain/posttrain/tensor"
	"github.com/posttrain/posttrain/tensor/autograd"
)

// Config sizes a Model. The zero values of the optional fields give the
// byte-level TinyLM layout of the first stage: multi-head attention, head
// size DModel/Heads, no biases, an untied head, plain RoPE.
type Config struct {
	Vocab   int     // vocabulary size (256 for ByteTokenizer)
	DModel  int     // width of the residual stream (hidden_size)
	Layers  int     // decoder blocks
	Heads   int     // query heads
	KVHeads int     // key/value heads (grouped-query attention); 0 means Heads
	HeadDim int     // size of one head, even (RoPE); 0 means DModel/Heads
	Context int     // longest sequence
	Hidden  int     // SwiGLU hidden size (intermediate_size); 0 means 2·DModel
	Eps     float64 // RMSNorm epsilon; 0 means 1e-6
	RoPE    float64 // rotary base (rope_theta); 0 means 10000
	Scaling Scaling // RoPE frequency scaling; the zero value is none
	QKVBias bool    // the q, k and v projections carry a bias (Qwen2)
	OBias   bool    // the output projection carries a bias (Llama's attention_bias)
	Tied    bool    // the output head is the embedding matrix (tie_word_embeddings)
	EOS     []int32 // tokens that end generation; none when empty
}

// Scaling is a RoPE frequency scaling as in transformers'
// rope_scaling: Type "linear" divides every frequency by Factor
// (Chen et al. 2023, position interpolation); Type "llama3" divides the
// low frequencies by Factor, keeps the high ones and interpolates
// smoothly between wavelengths OriginalContext/LowFreqFactor and
// OriginalContext/HighFreqFactor (Llama 3.1).
type Scaling struct {
	Type            string // "", "linear" or "llama3"
	Factor          float64
	LowFreqFactor   float64
	HighFreqFactor  float64
	OriginalContext int // original_max_position_embeddings
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
	if c.KVHeads == 0 {
		c.KVHeads = c.Heads
	}
	if c.HeadDim == 0 && c.Heads > 0 && c.DModel%c.Heads == 0 {
		c.HeadDim = c.DModel / c.Heads
	}
	c.EOS = slices.Clone(c.EOS)
	return c
}

// maxDim bounds every size a config may ask for, so that products of
// sizes cannot overflow and a corrupt config fails before allocating.
const maxDim = 1 << 24

func (c Config) validate() error {
	switch {
	case c.HeadDim == 0 && c.Heads > 0:
		return fmt.Errorf("nn: config: DModel %d not divisible by Heads %d and no HeadDim given", c.DModel, c.Heads)
	case c.Vocab <= 0, c.DModel <= 0, c.Layers < 0, c.Heads <= 0, c.KVHeads <= 0, c.HeadDim <= 0, c.Context <= 0, c.Hidden <= 0:
		return fmt.Errorf("nn: config %+v: sizes must be positive", c)
	case c.Vocab > maxDim, c.DModel > maxDim, c.Layers > maxDim, c.Heads > maxDim, c.HeadDim > maxDim, c.Hidden > maxDim, c.Context > 1<<30:
		return fmt.Errorf("nn: config %+v: a size exceeds %d", c, maxDim)
	case c.Heads%c.KVHeads != 0:
		return fmt.Errorf("nn: config: %d query heads not divisible by %d key/value heads", c.Heads, c.KVHeads)
	case c.HeadDim%2 != 0:
		return fmt.Errorf("nn: config: head size %d must be even for RoPE", c.HeadDim)
	case c.Heads*c.HeadDim > maxDim:
		return fmt.Errorf("nn: config: %d heads of %d exceed %d", c.Heads, c.HeadDim, maxDim)
	case !(c.Eps >= 0) || math.IsInf(c.Eps, 0) || !(c.RoPE > 0) || math.IsInf(c.RoPE, 0):
		return fmt.Errorf("nn: config: bad Eps %v or RoPE base %v", c.Eps, c.RoPE)
	}
	for _, e := range c.EOS {
		if e < 0 || int(e) >= c.Vocab {
			return fmt.Errorf("nn: config: EOS id %d outside vocabulary of %d", e, c.Vocab)
		}
	}
	s := c.Scaling
	switch s.Type {
	case "":
	case "linear":
		if !(s.Factor > 0) || math.IsInf(s.Factor, 0) {
			return fmt.Errorf("nn: config: linear RoPE scaling factor %v", s.Factor)
		}
	case "llama3":
		if !(s.Factor > 0) || math.IsInf(s.Factor, 0) || !(s.LowFreqFactor > 0) || !(s.HighFreqFactor > s.LowFreqFactor) ||
			math.IsInf(s.HighFreqFactor, 0) || s.OriginalContext <= 0 {
			return fmt.Errorf("nn: config: llama3 RoPE scaling %+v: need factor > 0, 0 < low_freq_factor < high_freq_factor, original_max_position_embeddings > 0", s)
		}
	default:
		return fmt.Errorf("nn: config: RoPE scaling type %q not implemented (have linear, llama3)", s.Type)
	}
	return nil
}

// invFreq returns the rotary frequency of each of the HeadDim/2 pairs,
// after scaling, as transformers' modeling_rope_utils computes them.
func (c Config) invFreq() []float64 {
	h := c.HeadDim / 2
	f := make([]float64, h)
	for i := range f {
		f[i] = 1 / math.Pow(c.RoPE, float64(2*i)/float64(c.HeadDim))
	}
	s := c.Scaling
	switch s.Type {
	case "linear":
		for i := range f {
			f[i] /= s.Factor
		}
	case "llama3":
		old := float64(s.OriginalContext)
		lowWave, highWave := old/s.LowFreqFactor, old/s.HighFreqFactor
		for i, v := range f {
			wave := 2 * math.Pi / v
			switch {
			case wave < highWave: // high frequency: kept
			case wave > lowWave: // low frequency: interpolated
				f[i] = v / s.Factor
			default: // in between: a smooth mix of the two
				t := (old/wave - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor)
				f[i] = (1-t)*v/s.Factor + t*v
			}
		}
	}
	return f
}

// ropeRow writes the cosines and sines of position p for frequencies f.
func ropeRow(cos, sin []float32, f []float64, p int) {
	for i, v := range f {
		s, c := math.Sincos(float64(p) * v)
		cos[i], sin[i] = float32(c), float32(s)
	}
}

// Model is the Llama-family decoder — Llama 2/3.x, Qwen2/2.5,
// SmolLM/SmolLM2, dense Mistral — with the semantics of transformers'
// LlamaForCausalLM: token embedding, pre-norm blocks of grouped-query
// RoPE attention and SwiGLU MLP, a final RMSNorm and an output head that
// is the embedding matrix or its own. TinyLM is a small config of it.
type Model struct {
	Config Config
	Embed  Embedding
	Blocks []Block
	Norm   RMSNorm
	Head   Linear // Head.W is Embed.W when Config.Tied

	freq   []float64 // rotary frequencies, HeadDim/2
	frozen *frozen   // the matrices in bfloat16 after FreezeBF16, else nil
}

// TinyLM is the first stage's name for Model, kept for its users.
type TinyLM = Model

// NewTinyLM is NewModel under the first stage's name.
func NewTinyLM(cfg Config, seed uint64) (*Model, error) { return NewModel(cfg, seed) }

// NewModel returns a model with weights drawn from seed: N(0, 0.02),
// residual output projections scaled by 1/√(2·Layers) (GPT-2), norms 1,
// biases 0.
func NewModel(cfg Config, seed uint64) (*Model, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	const std = 0.02
	res := std / math.Sqrt(2*float64(max(1, cfg.Layers)))
	return build(cfg, func(s spec) *autograd.Var {
		switch s.init {
		case initOnes:
			return ones(s.shape[0])
		case initZero:
			return autograd.Param(tensor.New(s.shape...))
		case initResidual:
			return normal(rng, res, s.shape...)
		}
		return normal(rng, std, s.shape...)
	}), nil
}

type initKind int

const (
	initNormal initKind = iota
	initResidual
	initOnes
	initZero
)

// spec is one parameter: its checkpoint name, shape and initialization.
type spec struct {
	name  string
	shape []int
	init  initKind
}

// specs lists the parameters of a model of config c in Params order.
func (c Config) specs() []spec {
	d, h, q, kv := c.DModel, c.Hidden, c.Heads*c.HeadDim, c.KVHeads*c.HeadDim
	ss := []spec{{"embed.weight", []int{c.Vocab, d}, initNormal}}
	for i := range c.Layers {
		p := fmt.Sprintf("layers.%d.", i)
		ss = append(ss, spec{p + "norm1.weight", []int{d}, initOnes})
		for _, l := range []struct {
			n    string
			out  int
			bias bool
			init initKind
		}{{"q", q, c.QKVBias, initNormal}, {"k", kv, c.QKVBias, initNormal}, {"v", kv, c.QKVBias, initNormal}} {
			ss = append(ss, spec{p + "attn." + l.n + ".weight", []int{l.out, d}, l.init})
			if l.bias {
				ss = append(ss, spec{p + "attn." + l.n + ".bias", []int{l.out}, initZero})
			}
		}
		ss = append(ss, spec{p + "attn.o.weight", []int{d, q}, initResidual})
		if c.OBias {
			ss = append(ss, spec{p + "attn.o.bias", []int{d}, initZero})
		}
		ss = append(ss,
			spec{p + "norm2.weight", []int{d}, initOnes},
			spec{p + "mlp.gate.weight", []int{h, d}, initNormal},
			spec{p + "mlp.up.weight", []int{h, d}, initNormal},
			spec{p + "mlp.down.weight", []int{d, h}, initResidual})
	}
	ss = append(ss, spec{"norm.weight", []int{d}, initOnes})
	if !c.Tied {
		ss = append(ss, spec{"head.weight", []int{c.Vocab, d}, initNormal})
	}
	return ss
}

// build assembles a model of the validated config c, taking each
// parameter, in specs order, from get.
func build(c Config, get func(spec) *autograd.Var) *Model {
	ss := c.specs()
	m := &Model{Config: c, freq: c.invFreq()}
	next := func(want string) *autograd.Var {
		s := ss[0]
		if s.name != want {
			panic("nn: build: parameter order out of step with specs: " + s.name + " vs " + want)
		}
		ss = ss[1:]
		return get(s)
	}
	maybe := func(ok bool, name string) *autograd.Var {
		if !ok {
			return nil
		}
		return next(name)
	}
	m.Embed.W = next("embed.weight")
	m.Blocks = make([]Block, c.Layers)
	for i := range m.Blocks {
		b := &m.Blocks[i]
		p := fmt.Sprintf("layers.%d.", i)
		b.Norm1 = RMSNorm{W: next(p + "norm1.weight"), Eps: c.Eps}
		a := &b.Attn
		a.Heads, a.KVHeads, a.HeadDim = c.Heads, c.KVHeads, c.HeadDim
		a.Q.W = next(p + "attn.q.weight")
		a.Q.B = maybe(c.QKVBias, p+"attn.q.bias")
		a.K.W = next(p + "attn.k.weight")
		a.K.B = maybe(c.QKVBias, p+"attn.k.bias")
		a.V.W = next(p + "attn.v.weight")
		a.V.B = maybe(c.QKVBias, p+"attn.v.bias")
		a.O.W = next(p + "attn.o.weight")
		a.O.B = maybe(c.OBias, p+"attn.o.bias")
		b.Norm2 = RMSNorm{W: next(p + "norm2.weight"), Eps: c.Eps}
		b.MLP.Gate.W = next(p + "mlp.gate.weight")
		b.MLP.Up.W = next(p + "mlp.up.weight")
		b.MLP.Down.W = next(p + "mlp.down.weight")
	}
	m.Norm = RMSNorm{W: next("norm.weight"), Eps: c.Eps}
	if c.Tied {
		m.Head.W = m.Embed.W
	} else {
		m.Head.W = next("head.weight")
	}
	return m
}

// Params returns the parameters with their checkpoint names, in a fixed
// order (the order AdamW and Save use). A tied head is listed once, as
// embed.weight.
func (m *Model) Params() []Named {
	var ps []Named
	add := func(name string, v *autograd.Var) {
		if v != nil { // nil: a bias the config omits, or a frozen matrix
			ps = append(ps, Named{name, v})
		}
	}
	add("embed.weight", m.Embed.W)
	for i := range m.Blocks {
		b := &m.Blocks[i]
		p := fmt.Sprintf("layers.%d.", i)
		add(p+"norm1.weight", b.Norm1.W)
		for _, l := range []struct {
			n string
			l *Linear
		}{{"q", &b.Attn.Q}, {"k", &b.Attn.K}, {"v", &b.Attn.V}, {"o", &b.Attn.O}} {
			add(p+"attn."+l.n+".weight", l.l.W)
			add(p+"attn."+l.n+".bias", l.l.B)
		}
		add(p+"norm2.weight", b.Norm2.W)
		add(p+"mlp.gate.weight", b.MLP.Gate.W)
		add(p+"mlp.up.weight", b.MLP.Up.W)
		add(p+"mlp.down.weight", b.MLP.Down.W)
	}
	add("norm.weight", m.Norm.W)
	if !m.Config.Tied {
		add("head.weight", m.Head.W)
	}
	return ps
}

// NumParams returns the number of scalar parameters.
func (m *Model) NumParams() int {
	n := 0
	for _, p := range m.Params() {
		n += p.Var.Value.Len()
	}
	return n
}

// ZeroGrad clears every parameter's gradient, the adapters' included.
func (m *Model) ZeroGrad() {
	for _, p := range m.Params() {
		p.Var.ZeroGrad()
	}
	if a := m.LoRA(); a != nil {
		a.ZeroGrad()
	}
}

// CheckTokens returns an error naming the first id outside the vocabulary.
func (m *Model) CheckTokens(ids []int32) error {
	for i, id := range ids {
		if id < 0 || int(id) >= m.Config.Vocab {
			return fmt.Errorf("nn: token %d at position %d outside vocabulary of %d", id, i, m.Config.Vocab)
		}
	}
	return nil
}

// ropeTables returns cos and sin [n, HeadDim/2] for positions 0…n−1.
func (m *Model) ropeTables(n int) (cos, sin *tensor.Dense) {
	h := len(m.freq)
	cos, sin = tensor.New(n, h), tensor.New(n, h)
	for p := range n {
		ropeRow(cos.Data()[p*h:(p+1)*h], sin.Data()[p*h:(p+1)*h], m.freq, p)
	}
	return cos, sin
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
func (m *Model) Forward(t *autograd.Tape, tokens []int32, batch int) (*autograd.Var, error) {
	h, err := m.hidden("Forward", t, tokens, batch)
	if err != nil {
		return nil, err
	}
	return m.Head.Forward(t, h), nil
}

// Hidden is Forward without the output head: the final normalized hidden
// states [batch·T, DModel], row b·T+i after token i of sequence b. A
// reward model puts its own head on them; the fused log-probs of
// prefopt and distill take them with Head.W instead of the logits.
func (m *Model) Hidden(t *autograd.Tape, tokens []int32, batch int) (*autograd.Var, error) {
	return m.hidden("Hidden", t, tokens, batch)
}

// ForwardPacked is Forward on packed sequences, one per entry of
// starts: sequence b holds documents laid end to end, starting at the
// positions starts[b] (0 first, strictly increasing; empty is one
// document). Each document attends only to itself and takes RoPE
// positions from 0 at its start, so its logits are those Forward gives
// it alone, up to float32 rounding — several short examples then share
// one row of a batch instead of each padding a row of their own. A
// target of −1 at the last position of each document keeps it from
// predicting the next one's first token.
//
// It returns an error, recording nothing, for what Forward rejects and
// for starts out of order.
func (m *Model) ForwardPacked(t *autograd.Tape, tokens []int32, starts [][]int) (*autograd.Var, error) {
	h, err := m.HiddenPacked(t, tokens, starts)
	if err != nil {
		return nil, err
	}
	return m.Head.Forward(t, h), nil
}

// HiddenPacked is ForwardPacked without the output head, as Hidden is
// Forward without it.
func (m *Model) HiddenPacked(t *autograd.Tape, tokens []int32, starts [][]int) (*autograd.Var, error) {
	const op = "HiddenPacked"
	if err := checkStarts(op, len(tokens), starts); err != nil {
		return nil, err
	}
	return m.hiddenOf(op, t, tokens, len(starts), starts)
}

// CheckStarts reports whether starts describes packed sequences of n
// tokens in all: one entry per sequence, the tokens splitting evenly
// among them, each entry 0 first (or empty), strictly increasing and
// below the sequences' length.
func CheckStarts(n int, starts [][]int) error { return checkStarts("CheckStarts", n, starts) }

func checkStarts(op string, n int, starts [][]int) error {
	b := len(starts)
	if b == 0 || n == 0 || n%b != 0 {
		return fmt.Errorf("nn: %s: %d tokens do not split into %d sequences", op, n, b)
	}
	tt := n / b
	for i, st := range starts {
		for j, s := range st {
			if (j == 0 && s != 0) || (j > 0 && s <= st[j-1]) || s >= tt {
				return fmt.Errorf("nn: %s: sequence %d: document starts %v: need 0 first, strictly increasing, below the length %d", op, i, st, tt)
			}
		}
	}
	return nil
}

func (m *Model) hidden(op string, t *autograd.Tape, tokens []int32, batch int) (*autograd.Var, error) {
	return m.hiddenOf(op, t, tokens, batch, nil)
}

// hiddenOf runs the body on batch sequences, packed when starts is not nil.
func (m *Model) hiddenOf(op string, t *autograd.Tape, tokens []int32, batch int, starts [][]int) (*autograd.Var, error) {
	if batch <= 0 || len(tokens) == 0 || len(tokens)%batch != 0 {
		return nil, fmt.Errorf("nn: %s: %d tokens do not split into %d sequences", op, len(tokens), batch)
	}
	tt := len(tokens) / batch
	if tt > m.Config.Context {
		return nil, fmt.Errorf("nn: %s: sequence length %d exceeds context %d", op, tt, m.Config.Context)
	}
	if err := m.CheckTokens(tokens); err != nil {
		return nil, err
	}
	cos, sin := m.ropeTables(tt)
	x := m.Embed.Forward(t, tokens)
	for i := range m.Blocks {
		if starts != nil {
			x = m.Blocks[i].ForwardPacked(t, x, starts, cos, sin)
		} else {
			x = m.Blocks[i].Forward(t, x, batch, cos, sin)
		}
	}
	return m.Norm.Forward(t, x), nil
}

// Logits returns the logits [len(ids), Vocab] of one sequence, without
// recording a tape: row i predicts token i+1. It runs Forward's
// operations a block at a time, so that only one block's activations
// are held at once.
func (m *Model) Logits(ids []int32) (*tensor.Dense, error) {
	if len(ids) == 0 {
		return nil, fmt.Errorf("nn: Logits: empty sequence")
	}
	if len(ids) > m.Config.Context {
		return nil, fmt.Errorf("nn: Logits: sequence length %d exceeds context %d", len(ids), m.Config.Context)
	}
	if err := m.CheckTokens(ids); err != nil {
		return nil, err
	}
	if m.frozen != nil {
		return m.logitsFrozen(ids)
	}
	t := autograd.NewTape()
	t.NoGrad = true
	cos, sin := m.ropeTables(len(ids))
	x := m.Embed.Forward(t, ids).Value.Clone()
	for i := range m.Blocks {
		t.Reset()
		y := m.Blocks[i].Forward(t, autograd.Const(x), 1, cos, sin)
		copy(x.Data(), y.Value.Data())
	}
	t.Reset()
	return m.Head.Forward(t, m.Norm.Forward(t, autograd.Const(x))).Value.Clone(), nil
}

// Clone returns a deep copy of m with fresh (zero) gradients: a frozen
// reference for DPO-style objectives, or a starting point for a student.
func (m *Model) Clone() *Model {
	if m.frozen != nil {
		return m.cloneFrozen()
	}
	src := m.Params()
	i := 0
	return build(m.Config.withDefaults(), func(spec) *autograd.Var {
		v := autograd.Param(src[i].Var.Value.Clone())
		i++
		return v
	})
}

// ParamSpec is a parameter's checkpoint name and shape.
type ParamSpec struct {
	Name  string
	Shape []int
}

// Specs returns the parameters a model of config c has, in Params order,
// after filling c's defaults and validating it — without allocating
// them, so a loader can check a checkpoint against a config first.
func (c Config) Specs() ([]ParamSpec, error) {
	c = c.withDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	ss := c.specs()
	out := make([]ParamSpec, len(ss))
	for i, s := range ss {
		out[i] = ParamSpec{s.name, s.shape}
	}
	return out, nil
}

// Validate reports whether c, with its defaults filled, describes a
// model this package can build: sizes positive and bounded, heads that
// group evenly, an even head size, a known RoPE scaling, EOS ids inside
// the vocabulary.
func (c Config) Validate() error { return c.withDefaults().validate() }

package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/posttrain/posttrain/tensor"
	"github.com/posttrain/posttrain/tensor/autograd"
)

// LoRAConfig chooses where low-rank adapters go and how they are scaled,
// with the meaning of PEFT's LoraConfig.
type LoRAConfig struct {
	Rank    int     // r, the inner dimension of B·A
	Alpha   float64 // lora_alpha; the update is scaled by Alpha/Rank (Alpha/√Rank with RSLoRA)
	Dropout float64 // lora_dropout: dropout on the adapter's input while training, in [0, 1)
	RSLoRA  bool    // use_rslora: scale by Alpha/√Rank (Kalajdzievski 2023)
	// Targets are the projections to adapt: q, k, v, o, gate, up, down
	// (PEFT's q_proj … down_proj are accepted too). Empty means q and v,
	// PEFT's default for Llama-family models.
	Targets []string
	// Layers restricts the adapters to these decoder blocks
	// (layers_to_transform); empty means every block.
	Layers []int
}

// LoRAModules lists the projections a LoRAConfig may target, in the order
// adapters are attached within a block.
var LoRAModules = []string{"q", "k", "v", "o", "gate", "up", "down"}

// LoRAModule returns the short name (q … down) of a target given as a
// short name or as transformers' module name (q_proj … down_proj).
func LoRAModule(name string) (string, bool) {
	s := strings.TrimSuffix(name, "_proj")
	if slices.Contains(LoRAModules, s) {
		return s, true
	}
	return "", false
}

// Scale returns the factor the adapter's product B·A is multiplied by.
func (c LoRAConfig) Scale() float64 {
	if c.RSLoRA {
		return c.Alpha / math.Sqrt(float64(c.Rank))
	}
	return c.Alpha / float64(c.Rank)
}

// LoRA is a low-rank adapter on one Linear layer (Hu et al. 2021, "LoRA:
// Low-Rank Adaptation of Large Language Models"): the layer computes
//
//	y = x·Wᵀ + b + Scale·(drop(x)·Aᵀ)·Bᵀ
//
// with A [r, in] and B [out, r], as PEFT's lora.Linear does, W staying
// frozen.
type LoRA struct {
	Name    string        // the layer's parameter prefix, such as "layers.3.attn.q"
	A, B    *autograd.Var // lora_A [r, in], lora_B [out, r]
	Scale   float64       // Alpha/Rank, or Alpha/√Rank with rsLoRA
	Dropout float64       // probability of zeroing an input of the adapter while training

	ad    *Adapter
	index int
	base  *Linear
}

// Adapter is the set of LoRAs attached to a model by AddLoRA. It switches
// them on and off together (off, the model is its base: a DPO reference
// without a second copy of the weights), merges them into the base
// weights, and lists their parameters for an optimizer.
type Adapter struct {
	Config  LoRAConfig
	Modules []*LoRA // in model order: block by block, q k v o gate up down
	// Seed and Pass draw the dropout masks: pass p of module i draws from
	// a generator seeded by (Seed, i, p), so a run is reproducible and a
	// resumed run draws the masks an uninterrupted one would. Trainers
	// set Pass before each forward pass; nothing advances it implicitly.
	Seed uint64
	Pass uint64

	off, merged bool
}

// AddLoRA attaches adapters to the layers cfg names and freezes every base
// parameter (no gradient buffer, no optimizer state): after it, the
// model's trainable parameters are the adapters' (TrainableParams). A is
// drawn Kaiming-uniform as PEFT draws it — U(−1/√in, 1/√in), which is
// kaiming_uniform_ with a = √5 — from seed, and B is zero, so the model
// computes exactly what the base did until B is trained.
//
// It returns an error, changing nothing, for a bad config or a model that
// already carries adapters.
func (m *Model) AddLoRA(cfg LoRAConfig, seed uint64) (*Adapter, error) {
	a, err := m.newAdapter(cfg, seed, func(rows, cols int, kind string, rng *rand.Rand) *tensor.Dense {
		d := tensor.New(rows, cols)
		if kind == "A" {
			bound := 1 / math.Sqrt(float64(cols))
			for i := range d.Data() {
				d.Data()[i] = float32((2*rng.Float64() - 1) * bound)
			}
		}
		return d
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// newAdapter validates cfg, builds the adapters with weights from init and
// attaches them.
func (m *Model) newAdapter(cfg LoRAConfig, seed uint64, init func(rows, cols int, kind string, rng *rand.Rand) *tensor.Dense) (*Adapter, error) {
	cfg.Targets = slices.Clone(cfg.Targets)
	cfg.Layers = slices.Clone(cfg.Layers)
	if len(cfg.Targets) == 0 {
		cfg.Targets = []string{"q", "v"}
	}
	switch {
	case m.LoRA() != nil:
		return nil, fmt.Errorf("nn: AddLoRA: the model already carries adapters")
	case cfg.Rank <= 0 || cfg.Rank > maxDim:
		return nil, fmt.Errorf("nn: AddLoRA: rank %d, need ≥ 1", cfg.Rank)
	case !(cfg.Alpha > 0) || math.IsInf(cfg.Alpha, 0):
		return nil, fmt.Errorf("nn: AddLoRA: alpha %v, need a finite value > 0", cfg.Alpha)
	case !(cfg.Dropout >= 0 && cfg.Dropout < 1):
		return nil, fmt.Errorf("nn: AddLoRA: dropout %v, need 0 ≤ p < 1", cfg.Dropout)
	}
	want := map[string]bool{}
	for i, t := range cfg.Targets {
		s, ok := LoRAModule(t)
		if !ok {
			return nil, fmt.Errorf("nn: AddLoRA: target %q is not one of %v (or their _proj names)", t, LoRAModules)
		}
		cfg.Targets[i] = s
		want[s] = true
	}
	layers := map[int]bool{}
	for _, l := range cfg.Layers {
		if l < 0 || l >= len(m.Blocks) {
			return nil, fmt.Errorf("nn: AddLoRA: layer %d outside the model's %d", l, len(m.Blocks))
		}
		layers[l] = true
	}
	a := &Adapter{Config: cfg, Seed: seed}
	rng := rand.New(rand.NewPCG(seed, 0x107a))
	for i := range m.Blocks {
		if len(layers) > 0 && !layers[i] {
			continue
		}
		for _, ml := range m.Blocks[i].linears() {
			if !want[ml.kind] {
				continue
			}
			out, in := ml.l.dims()
			l := &LoRA{
				Name:    fmt.Sprintf("layers.%d.%s", i, ml.path),
				A:       autograd.Param(init(cfg.Rank, in, "A", rng)),
				B:       autograd.Param(init(out, cfg.Rank, "B", rng)),
				Scale:   cfg.Scale(),
				Dropout: cfg.Dropout,
				ad:      a,
				index:   len(a.Modules),
				base:    ml.l,
			}
			a.Modules = append(a.Modules, l)
		}
	}
	if len(a.Modules) == 0 {
		return nil, fmt.Errorf("nn: AddLoRA: targets %v on layers %v match no layer", cfg.Targets, cfg.Layers)
	}
	for _, l := range a.Modules {
		l.base.LoRA = l
	}
	m.SetFrozen(true)
	return a, nil
}

type moduleRef struct {
	kind, path string
	l          *Linear
}

// linears returns the block's projections with their short and
// parameter-path names, in LoRAModules order.
func (b *Block) linears() []moduleRef {
	return []moduleRef{
		{"q", "attn.q", &b.Attn.Q}, {"k", "attn.k", &b.Attn.K}, {"v", "attn.v", &b.Attn.V}, {"o", "attn.o", &b.Attn.O},
		{"gate", "mlp.gate", &b.MLP.Gate}, {"up", "mlp.up", &b.MLP.Up}, {"down", "mlp.down", &b.MLP.Down},
	}
}

// LoRA returns the model's adapters, or nil if it carries none.
func (m *Model) LoRA() *Adapter {
	for i := range m.Blocks {
		for _, ml := range m.Blocks[i].linears() {
			if ml.l.LoRA != nil {
				return ml.l.LoRA.ad
			}
		}
	}
	return nil
}

// RemoveLoRA detaches the adapters and unfreezes the base. The base
// weights are left as they are: after Merge, this is PEFT's
// merge_and_unload; without it, the base model comes back unchanged.
func (m *Model) RemoveLoRA() {
	a := m.LoRA()
	if a == nil {
		return
	}
	for _, l := range a.Modules {
		l.base.LoRA = nil
	}
	m.SetFrozen(false)
}

// SetFrozen freezes (or unfreezes) every base parameter: frozen, they keep
// no gradient buffers and the backward pass computes nothing for them.
func (m *Model) SetFrozen(frozen bool) {
	for _, p := range m.Params() {
		p.Var.SetRequiresGrad(!frozen)
	}
}

// TrainableParams returns the parameters that take gradients, with their
// names: the base parameters that are not frozen, then the adapters'
// (Adapter.Params). This is what an optimizer should be given.
func (m *Model) TrainableParams() []Named {
	var ps []Named
	for _, p := range m.Params() {
		if p.Var.RequiresGrad() {
			ps = append(ps, p)
		}
	}
	if a := m.LoRA(); a != nil {
		ps = append(ps, a.Params()...)
	}
	return ps
}

// Params returns the adapters' parameters, named as the layer's prefix
// followed by .lora_A and .lora_B ("layers.3.attn.q.lora_A").
func (a *Adapter) Params() []Named {
	ps := make([]Named, 0, 2*len(a.Modules))
	for _, l := range a.Modules {
		ps = append(ps, Named{l.Name + ".lora_A", l.A}, Named{l.Name + ".lora_B", l.B})
	}
	return ps
}

// NumParams returns the number of scalar adapter parameters.
func (a *Adapter) NumParams() int {
	n := 0
	for _, l := range a.Modules {
		n += l.A.Value.Len() + l.B.Value.Len()
	}
	return n
}

// ZeroGrad clears the adapters' gradients.
func (a *Adapter) ZeroGrad() {
	for _, l := range a.Modules {
		l.A.ZeroGrad()
		l.B.ZeroGrad()
	}
}

// Enable switches the adapters on or off. Off, the model computes its base
// exactly (a DPO reference, as TRL's disable_adapter).
func (a *Adapter) Enable(on bool) { a.off = !on }

// Enabled reports whether the adapters are on.
func (a *Adapter) Enabled() bool { return !a.off }

// Merged reports whether the adapters are folded into the base weights.
func (a *Adapter) Merged() bool { return a.merged }

// Merge folds every adapter into its base weight, W ← W + Scale·B·A, so
// that inference costs what the base does; the adapters then add nothing
// until Unmerge. Switching a merged adapter off is not possible: Enable
// does not change the merged weights, so Merge and Unmerge are for
// inference and export. A base frozen in bfloat16 takes the sum rounded
// to bfloat16, as PEFT merges into a bfloat16 model.
func (a *Adapter) Merge() {
	if a.merged {
		return
	}
	for _, l := range a.Modules {
		l.fold(float32(l.Scale))
	}
	a.merged = true
}

// Unmerge subtracts what Merge added, W ← W − Scale·B·A. The base weights
// come back up to float32 rounding (bfloat16 rounding for a base frozen
// in bfloat16), not bit for bit.
func (a *Adapter) Unmerge() {
	if !a.merged {
		return
	}
	for _, l := range a.Modules {
		l.fold(-float32(l.Scale))
	}
	a.merged = false
}

// fold adds alpha·B·A to the base weight, in float32, rounding the sum
// back to bfloat16 for a frozen base.
func (l *LoRA) fold(alpha float32) {
	if w := l.base.w16; l.base.W == nil && w != nil {
		d := w.Dense()
		tensor.Gemm(false, false, alpha, l.B.Value, l.A.Value, 1, d)
		tensor.ToBF16(w.Data(), d.Data())
		return
	}
	tensor.Gemm(false, false, alpha, l.B.Value, l.A.Value, 1, l.base.W.Value)
}

func (l *LoRA) active() bool { return !l.ad.off && !l.ad.merged }

// forward adds the adapter's update of x to y on tape t. Dropout applies
// only while the tape records gradients.
func (l *LoRA) forward(t *autograd.Tape, x, y *autograd.Var) *autograd.Var {
	if !l.active() {
		return y
	}
	in := x
	if l.Dropout > 0 && !t.NoGrad {
		in = t.Mul(x, autograd.Const(l.mask(x.Value.Len(), x.Shape())))
	}
	u := t.Scale(t.MatMulT(in, l.A), float32(l.Scale))
	return t.Add(y, t.MatMulT(u, l.B))
}

// mask returns an inverted-dropout mask: 0 with probability Dropout, else
// 1/(1−Dropout), drawn for this module and the adapter's Pass.
func (l *LoRA) mask(n int, shape []int) *tensor.Dense {
	rng := rand.New(rand.NewPCG(l.ad.Seed^(uint64(l.index)+1)*0x9e3779b97f4a7c15, l.ad.Pass))
	d := tensor.New(shape...)
	keep := float32(1 / (1 - l.Dropout))
	for i := range n {
		if rng.Float64() >= l.Dropout {
			d.Data()[i] = keep
		}
	}
	return d
}

// addRows adds the adapter's update of x [nr, in] to y [nr, out] with the
// operations forward uses, for KV-cache decoding.
func (l *LoRA) addRows(y, x []float32, nr int) {
	if !l.active() {
		return
	}
	r, in, out := l.A.Value.Dim(0), l.A.Value.Dim(1), l.B.Value.Dim(0)
	u := tensor.New(nr, r)
	tensor.Gemm(false, true, 1, tensor.FromSlice(x[:nr*in], nr, in), l.A.Value, 0, u)
	tensor.Scale(u.Data(), float32(l.Scale), u.Data())
	tensor.Gemm(false, true, 1, u, l.B.Value, 1, tensor.FromSlice(y[:nr*out], nr, out))
}

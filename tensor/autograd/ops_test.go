package autograd

import (
	"encoding/json"
	"math"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/posttrain/posttrain/tensor"
)

type goldenArray struct {
	Shape []int     `json:"shape"`
	Data  []float64 `json:"data"`
}

type goldenCase struct {
	Name   string                 `json:"name"`
	Params map[string]any         `json:"params"`
	Inputs map[string]goldenArray `json:"inputs"`
	Out    goldenArray            `json:"out"`
	W      []float64              `json:"w"`
	Grads  map[string][]float64   `json:"grads"`
}

func loadGolden(t *testing.T) []goldenCase {
	t.Helper()
	b, err := os.ReadFile("testdata/golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		Cases []goldenCase `json:"cases"`
	}
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return g.Cases
}

func f32(x []float64) []float32 {
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = float32(v)
	}
	return out
}

func ints(v any) []int32 {
	var out []int32
	for _, x := range v.([]any) {
		out = append(out, int32(x.(float64)))
	}
	return out
}

// builders make each golden case's computation from its named inputs.
func builder(c goldenCase, in map[string]*Var) func(t *Tape) *Var {
	p := c.Params
	num := func(k string) float64 { return p[k].(float64) }
	switch c.Name {
	case "matmul":
		return func(t *Tape) *Var { return t.MatMul(in["a"], in["b"]) }
	case "matmul_t":
		return func(t *Tape) *Var { return t.MatMulT(in["a"], in["b"]) }
	case "bmm":
		return func(t *Tape) *Var { return t.BatchMatMul(in["a"], in["b"], false) }
	case "bmm_t":
		return func(t *Tape) *Var { return t.BatchMatMul(in["a"], in["b"], true) }
	case "add_same", "add_row":
		return func(t *Tape) *Var { return t.Add(in["a"], in["b"]) }
	case "mul":
		return func(t *Tape) *Var { return t.Mul(in["a"], in["b"]) }
	case "scale":
		return func(t *Tape) *Var { return t.Scale(in["a"], float32(num("s"))) }
	case "silu":
		return func(t *Tape) *Var { return t.SiLU(in["a"]) }
	case "swiglu":
		return func(t *Tape) *Var { return t.SwiGLU(in["g"], in["u"]) }
	case "gelu":
		return func(t *Tape) *Var { return t.GELU(in["a"]) }
	case "sum":
		return func(t *Tape) *Var { return t.Sum(in["a"]) }
	case "mean":
		return func(t *Tape) *Var { return t.Mean(in["a"]) }
	case "rmsnorm":
		return func(t *Tape) *Var { return t.RMSNorm(in["x"], in["w"], num("eps")) }
	case "layernorm":
		return func(t *Tape) *Var { return t.LayerNorm(in["x"], in["w"], in["b"], num("eps")) }
	case "transpose12":
		return func(t *Tape) *Var { return t.Transpose(in["x"], 1, 2) }
	case "permute201":
		return func(t *Tape) *Var { return t.Permute(in["x"], 2, 0, 1) }
	case "causal_softmax", "causal_softmax_offset":
		return func(t *Tape) *Var { return t.CausalSoftmax(in["x"], float32(num("scale"))) }
	case "rope", "rope_offset":
		s := in["x"].Shape()
		cos, sin := RoPETables(int(num("p0")), s[len(s)-2], s[len(s)-1], num("base"))
		return func(t *Tape) *Var { return t.RoPE(in["x"], cos, sin) }
	case "attention_gqa", "attention_mha":
		s := in["q"].Shape()
		batch, heads := int(num("batch")), int(num("heads"))
		cos, sin := RoPETables(0, s[0]/batch, s[1]/heads, num("base"))
		return func(t *Tape) *Var { return t.Attention(in["q"], in["k"], in["v"], batch, cos, sin) }
	case "attention_packed":
		s := in["q"].Shape()
		var starts [][]int
		for _, st := range p["starts"].([]any) {
			var row []int
			for _, x := range st.([]any) {
				row = append(row, int(x.(float64)))
			}
			starts = append(starts, row)
		}
		heads := int(num("heads"))
		cos, sin := RoPETables(0, s[0]/len(starts), s[1]/heads, num("base"))
		return func(t *Tape) *Var { return t.PackedAttention(in["q"], in["k"], in["v"], starts, cos, sin) }
	case "embedding":
		ids := ints(p["ids"])
		return func(t *Tape) *Var { return t.Embedding(in["table"], ids) }
	case "log_probs":
		tg := ints(p["targets"])
		return func(t *Tape) *Var {
			v, err := t.LogProbs(in["logits"], tg)
			if err != nil {
				panic(err)
			}
			return v
		}
	case "cross_entropy", "cross_entropy_1e4":
		tg := ints(p["targets"])
		return func(t *Tape) *Var {
			v, err := t.CrossEntropy(in["logits"], tg)
			if err != nil {
				panic(err)
			}
			return v
		}
	}
	return nil
}

func makeInputs(c goldenCase) map[string]*Var {
	in := map[string]*Var{}
	for k, a := range c.Inputs {
		in[k] = Param(tensor.FromSlice(f32(a.Data), a.Shape...))
	}
	return in
}

// TestGolden checks every op's value and its gradients against PyTorch.
func TestGolden(t *testing.T) {
	for _, c := range loadGolden(t) {
		t.Run(c.Name, func(t *testing.T) {
			in := makeInputs(c)
			f := builder(c, in)
			if f == nil {
				t.Fatalf("no builder for %s", c.Name)
			}
			tp := NewTape()
			out := f(tp)
			if out.Value.Len() != len(c.Out.Data) {
				t.Fatalf("output has %d elements, want %d", out.Value.Len(), len(c.Out.Data))
			}
			for i, want := range c.Out.Data {
				got := out.Value.Data()[i]
				assert.InDelta(t, want, float64(got), 2e-6*max(1, math.Abs(want)), "out[%d] = %v, want %v", i, got, want)
			}
			tp.Backward(out, tensor.FromSlice(f32(c.W), out.Shape()...))
			for k, want := range c.Grads {
				g := in[k].Grad.Data()
				for i := range want {
					assert.InDelta(t, want[i], float64(g[i]), 2e-5*max(1, math.Abs(want[i])), "grad %s[%d] = %v, want %v", k, i, g[i], want[i])
				}
			}
		})
	}
}

// TestGradCheck checks every op's backward against finite differences.
func TestGradCheck(t *testing.T) {
	for _, c := range loadGolden(t) {
		if c.Name == "cross_entropy_1e4" {
			continue // steps of 1e-2 on logits of 1e4 are below float32 resolution
		}
		t.Run(c.Name, func(t *testing.T) {
			in := makeInputs(c)
			var list []*Var
			for _, k := range []string{"a", "b", "g", "u", "x", "w", "table", "logits", "q", "k", "v"} {
				if v, ok := in[k]; ok {
					list = append(list, v)
				}
			}
			if err := GradCheckWith(builder(c, in), list, GradCheckOptions{Tol: 2e-3, Seed: 1}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

package nn

import (
	"math"
	"testing"

	"github.com/posttrain/posttrain/tensor/autograd"
)

var loraTestConfig = Config{Vocab: 40, DModel: 24, Layers: 2, Heads: 4, KVHeads: 2, Context: 16, Hidden: 32, QKVBias: true}

// TestLoRAZeroB: freshly attached adapters (B = 0) leave the logits equal
// to the base's bit for bit, through Forward and KV-cache decoding.
func TestLoRAZeroB(t *testing.T) {
	m, err := NewModel(loraTestConfig, 1)
	if err != nil {
		t.Fatal(err)
	}
	ids := []int32{1, 5, 9, 30, 2, 7, 7, 39}
	want, _ := m.Logits(ids)
	a, err := m.AddLoRA(LoRAConfig{Rank: 4, Alpha: 8, Targets: LoRAModules}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Modules) != 14 {
		t.Fatalf("%d modules, want 14", len(a.Modules))
	}
	got, _ := m.Logits(ids)
	for i, x := range got.Data() {
		if x != want.Data()[i] {
			t.Fatalf("logit %d: %v with zero-B adapters, %v without", i, x, want.Data()[i])
		}
	}
	for _, l := range a.Modules {
		bound := 1 / math.Sqrt(float64(l.A.Value.Dim(1)))
		nz := 0
		for _, v := range l.A.Value.Data() {
			if math.Abs(float64(v)) > bound {
				t.Fatalf("%s: A entry %v outside ±%v", l.Name, v, bound)
			}
			if v != 0 {
				nz++
			}
		}
		if nz == 0 {
			t.Fatalf("%s: A is zero", l.Name)
		}
	}
}

// TestLoRAGradients checks the adapters' gradients against finite
// differences, with dropout on, and that the frozen base gets none.
func TestLoRAGradients(t *testing.T) {
	m, _ := NewModel(loraTestConfig, 3)
	a, err := m.AddLoRA(LoRAConfig{Rank: 3, Alpha: 5, RSLoRA: true, Dropout: 0.3, Targets: []string{"q", "v_proj", "o", "down"}, Layers: []int{1}}, 4)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range a.Modules { // B as if trained, so A's gradient is not zero
		for i := range l.B.Value.Data() {
			l.B.Value.Data()[i] = float32(math.Cos(float64(i))) / 3
		}
	}
	a.Pass = 9
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
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range m.Params() {
		if p.Var.Grad != nil || p.Var.RequiresGrad() {
			t.Fatalf("base parameter %s is not frozen", p.Name)
		}
	}
	if n := len(m.TrainableParams()); n != 8 {
		t.Fatalf("%d trainable parameters, want 8", n)
	}
	// Dropout masks depend on Pass only: the same pass gives the same
	// logits, another pass others.
	fwd := func(pass uint64) []float32 {
		a.Pass = pass
		tp := autograd.NewTape()
		out, _ := m.Forward(tp, ids, 2)
		return append([]float32(nil), out.Value.Data()...)
	}
	x, y, z := fwd(1), fwd(1), fwd(2)
	same, diff := true, false
	for i := range x {
		same = same && x[i] == y[i]
		diff = diff || x[i] != z[i]
	}
	if !same || !diff {
		t.Fatalf("dropout: same pass equal %v, other pass differs %v", same, diff)
	}
	m.RemoveLoRA()
	if m.LoRA() != nil || len(m.TrainableParams()) != len(m.Params()) {
		t.Fatal("RemoveLoRA left adapters or a frozen base")
	}
}

func TestLoRAErrors(t *testing.T) {
	m, _ := NewModel(loraTestConfig, 1)
	for _, c := range []LoRAConfig{
		{Rank: 0, Alpha: 1},
		{Rank: 2, Alpha: 0},
		{Rank: 2, Alpha: 1, Dropout: 1},
		{Rank: 2, Alpha: 1, Targets: []string{"lm_head"}},
		{Rank: 2, Alpha: 1, Layers: []int{2}},
	} {
		if _, err := m.AddLoRA(c, 1); err == nil {
			t.Errorf("AddLoRA(%+v) accepted", c)
		}
		if m.LoRA() != nil || len(m.TrainableParams()) != len(m.Params()) {
			t.Fatalf("failed AddLoRA(%+v) changed the model", c)
		}
	}
	if _, err := m.AddLoRA(LoRAConfig{Rank: 2, Alpha: 1}, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := m.AddLoRA(LoRAConfig{Rank: 2, Alpha: 1}, 1); err == nil {
		t.Error("second AddLoRA accepted")
	}
}

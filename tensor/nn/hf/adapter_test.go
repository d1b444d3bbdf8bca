package hf

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/posttrain/posttrain/tensor/nn"
)

type adapterReference struct {
	IDs       []int32   `json:"ids"`
	Base      []float64 `json:"base"`
	AllLinear []float64 `json:"all_linear"`
	RSLoRA    []float64 `json:"rslora_f16"`
}

// maxRelErr is the largest |got − want| over the logits, relative to the
// row's largest |want|.
func maxRelErr(got []float32, want []float64, v int) float64 {
	worst := 0.0
	for i := 0; i < len(want); i += v {
		scale := 0.0
		for _, w := range want[i : i+v] {
			scale = max(scale, math.Abs(w))
		}
		for j := i; j < i+v; j++ {
			worst = max(worst, math.Abs(float64(got[j])-want[j])/scale)
		}
	}
	return worst
}

// TestLoadAdapter applies the PEFT adapters written by
// testdata/adapter/gen_adapter.py (float64 PyTorch from PEFT's lora.Linear)
// and compares the logits; then checks that KV-cache decoding, Merge and
// switching the adapter off agree.
func TestLoadAdapter(t *testing.T) {
	b, err := os.ReadFile("testdata/adapter/reference.json")
	if err != nil {
		t.Fatal(err)
	}
	var ref adapterReference
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		dir  string
		want []float64
	}{{"all_linear", ref.AllLinear}, {"rslora_f16", ref.RSLoRA}} {
		t.Run(c.dir, func(t *testing.T) {
			m, err := LoadModel("testdata/smol_f32")
			if err != nil {
				t.Fatal(err)
			}
			v := m.Config.Vocab
			if err := LoadAdapter(m, filepath.Join("testdata/adapter", c.dir)); err != nil {
				t.Fatal(err)
			}
			got, err := m.Logits(ref.IDs)
			if err != nil {
				t.Fatal(err)
			}
			if e := maxRelErr(got.Data(), c.want, v); e > 1e-4 {
				t.Errorf("adapted logits off by %.3g of the row's scale", e)
			}
			if e := maxRelErr(got.Data(), ref.Base, v); e < 1e-2 {
				t.Errorf("adapted logits within %.3g of the base: the adapter did nothing", e)
			}
			// KV-cache decoding sees the adapter too.
			d := m.NewDecoder()
			for i, id := range ref.IDs {
				row, err := d.Step(id)
				if err != nil {
					t.Fatal(err)
				}
				if e := maxRelErr(row, c.want[i*v:(i+1)*v], v); e > 1e-4 {
					t.Fatalf("decode step %d off by %.3g", i, e)
				}
			}
			a := m.LoRA()
			a.Enable(false)
			base, _ := m.Logits(ref.IDs)
			if e := maxRelErr(base.Data(), ref.Base, v); e > 1e-4 {
				t.Errorf("adapter off: logits off the base by %.3g", e)
			}
			a.Enable(true)
			a.Merge()
			merged, _ := m.Logits(ref.IDs)
			if e := maxRelErr(merged.Data(), c.want, v); e > 1e-4 {
				t.Errorf("merged logits off by %.3g", e)
			}
			a.Unmerge()
			again, _ := m.Logits(ref.IDs)
			if e := maxRelErr(again.Data(), c.want, v); e > 1e-4 {
				t.Errorf("unmerged logits off by %.3g", e)
			}
		})
	}
}

// TestAdapterRoundTrip saves a trained-looking adapter and loads it into a
// fresh copy of the base: the logits agree bit for bit, and the files
// carry PEFT's names.
func TestAdapterRoundTrip(t *testing.T) {
	m, err := LoadModel("testdata/smol_f32")
	if err != nil {
		t.Fatal(err)
	}
	a, err := m.AddLoRA(nn.LoRAConfig{Rank: 2, Alpha: 4, RSLoRA: true, Targets: []string{"q", "o_proj", "down"}, Layers: []int{1}}, 7)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range a.Modules {
		for j := range l.B.Value.Data() {
			l.B.Value.Data()[j] = float32(math.Sin(float64(i*100+j))) / 4
		}
	}
	ids := []int32{0, 3, 14, 15, 92, 65}
	want, _ := m.Logits(ids)
	dir := t.TempDir()
	if err := SaveAdapter(m, dir, "smol"); err != nil {
		t.Fatal(err)
	}
	ts, _, err := nn.LoadSafetensors(filepath.Join(dir, AdapterWeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, x := range ts {
		names[x.Name] = true
	}
	for _, n := range []string{
		"base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight",
		"base_model.model.model.layers.1.self_attn.o_proj.lora_B.weight",
		"base_model.model.model.layers.1.mlp.down_proj.lora_A.weight",
	} {
		if !names[n] {
			t.Errorf("adapter file lacks %s; has %v", n, names)
		}
	}
	if len(names) != 6 {
		t.Errorf("%d tensors, want 6", len(names))
	}
	m2, _ := LoadModel("testdata/smol_f32")
	if err := LoadAdapter(m2, dir); err != nil {
		t.Fatal(err)
	}
	got, _ := m2.Logits(ids)
	for i, x := range got.Data() {
		if x != want.Data()[i] {
			t.Fatalf("logit %d: %v after the round trip, %v before", i, x, want.Data()[i])
		}
	}
	if c := m2.LoRA().Config; c.Rank != 2 || c.Alpha != 4 || !c.RSLoRA || len(c.Layers) != 1 || c.Layers[0] != 1 {
		t.Errorf("config after the round trip: %+v", c)
	}
}

// TestLoadAdapterErrors: adapters this package cannot apply are refused
// with an error naming the cause, and the model is left without adapters.
func TestLoadAdapterErrors(t *testing.T) {
	src := "testdata/adapter/all_linear"
	cfg, err := os.ReadFile(filepath.Join(src, AdapterConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	weights, _ := os.ReadFile(filepath.Join(src, AdapterWeightsFile))
	edit := func(f func(map[string]any)) []byte {
		var c map[string]any
		json.Unmarshal(cfg, &c)
		f(c)
		b, _ := json.Marshal(c)
		return b
	}
	for _, c := range []struct {
		name    string
		cfg     []byte
		weights []byte
		want    string
	}{
		{"dora", edit(func(c map[string]any) { c["use_dora"] = true }), weights, "use_dora"},
		{"regex", edit(func(c map[string]any) { c["target_modules"] = ".*attn.*" }), weights, "regular expression"},
		{"type", edit(func(c map[string]any) { c["peft_type"] = "IA3" }), weights, "peft_type"},
		{"rank", edit(func(c map[string]any) { c["r"] = 5 }), weights, "shape"},
		{"missing", edit(func(c map[string]any) { c["layers_to_transform"] = nil }), weights, "layers.1.self_attn.q_proj.lora_A.weight missing"},
		{"extra", edit(func(c map[string]any) { c["target_modules"] = []string{"q_proj"} }), weights, "does not belong"},
		{"bias", edit(func(c map[string]any) { c["bias"] = "all" }), weights, "bias"},
		{"pattern", edit(func(c map[string]any) { c["rank_pattern"] = map[string]int{"q_proj": 8} }), weights, "rank_pattern"},
		{"torn", cfg, weights[:len(weights)/2], AdapterWeightsFile},
		{"json", []byte("{"), weights, AdapterConfigFile},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, AdapterConfigFile), c.cfg, 0o644)
			os.WriteFile(filepath.Join(dir, AdapterWeightsFile), c.weights, 0o644)
			m, err := LoadModel("testdata/smol_f32")
			if err != nil {
				t.Fatal(err)
			}
			err = LoadAdapter(m, dir)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one mentioning %q", err, c.want)
			}
			if m.LoRA() != nil {
				t.Error("a failed load left adapters on the model")
			}
			if len(m.TrainableParams()) != len(m.Params()) {
				t.Error("a failed load left the base frozen")
			}
		})
	}
}

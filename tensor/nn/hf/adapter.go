package hf

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/posttrain/posttrain/internal/atomicfile"
	"github.com/posttrain/posttrain/tensor/nn"
)

// The files of a PEFT LoRA adapter directory.
const (
	// AdapterConfigFile is PEFT's adapter_config.json: rank, alpha and
	// the target modules.
	AdapterConfigFile = "adapter_config.json"
	// AdapterWeightsFile holds the A and B matrices under PEFT's names.
	AdapterWeightsFile = "adapter_model.safetensors"
)

// adapterConfig is the part of PEFT's LoraConfig (adapter_config.json)
// this package reads and writes. Fields that change the computation and
// are not implemented are read so that an adapter using them is refused
// rather than silently mis-applied.
type adapterConfig struct {
	PeftType          string          `json:"peft_type"`
	TaskType          string          `json:"task_type,omitempty"`
	BaseModel         string          `json:"base_model_name_or_path,omitempty"`
	R                 int             `json:"r"`
	LoraAlpha         float64         `json:"lora_alpha"`
	LoraDropout       float64         `json:"lora_dropout"`
	UseRSLoRA         bool            `json:"use_rslora"`
	TargetModules     json.RawMessage `json:"target_modules"`
	LayersToTransform json.RawMessage `json:"layers_to_transform"`
	Bias              string          `json:"bias"`
	FanInFanOut       bool            `json:"fan_in_fan_out"`
	UseDoRA           bool            `json:"use_dora"`
	ModulesToSave     json.RawMessage `json:"modules_to_save"`
	RankPattern       map[string]any  `json:"rank_pattern"`
	AlphaPattern      map[string]any  `json:"alpha_pattern"`
	InitLoraWeights   bool            `json:"init_lora_weights"`
	InferenceMode     bool            `json:"inference_mode"`
	LoraBias          bool            `json:"lora_bias"`
}

// peftPrefix is what PEFT's PeftModelForCausalLM puts before the
// transformers parameter names in an adapter's state dict.
const peftPrefix = "base_model.model."

// peftName returns the PEFT tensor name of adapter module l's A or B
// ("base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight").
func peftName(l *nn.LoRA, ab string) string {
	return peftPrefix + strings.TrimSuffix(fromNN(l.Name+".weight"), ".weight") + ".lora_" + ab + ".weight"
}

// SaveAdapter writes m's LoRA adapters to dir in PEFT's format —
// adapter_config.json and adapter_model.safetensors (F32), with PEFT's
// tensor names — so that PEFT's PeftModel.from_pretrained and vLLM load
// them unchanged. base names the base model in the config (it may be
// empty). Each file is written atomically; an error names the file.
func SaveAdapter(m *nn.Model, dir, base string) error {
	a := m.LoRA()
	if a == nil {
		return fmt.Errorf("hf: SaveAdapter: the model carries no LoRA adapters")
	}
	c := a.Config
	targets := make([]string, len(c.Targets))
	for i, t := range c.Targets {
		targets[i] = t + "_proj"
	}
	slices.Sort(targets)
	tm, _ := json.Marshal(targets)
	layers := json.RawMessage("null")
	if len(c.Layers) > 0 {
		layers, _ = json.Marshal(c.Layers)
	}
	cfg := adapterConfig{
		PeftType: "LORA", TaskType: "CAUSAL_LM", BaseModel: base,
		R: c.Rank, LoraAlpha: c.Alpha, LoraDropout: c.Dropout, UseRSLoRA: c.RSLoRA,
		TargetModules: tm, LayersToTransform: layers, Bias: "none",
		ModulesToSave: json.RawMessage("null"), RankPattern: map[string]any{}, AlphaPattern: map[string]any{},
		InitLoraWeights: true, InferenceMode: true,
	}
	cb, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return fmt.Errorf("hf: SaveAdapter: %v", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("hf: SaveAdapter: %v", err)
	}
	ts := make([]nn.Tensor, 0, 2*len(a.Modules))
	for _, l := range a.Modules {
		ts = append(ts, nn.Tensor{Name: peftName(l, "A"), Value: l.A.Value}, nn.Tensor{Name: peftName(l, "B"), Value: l.B.Value})
	}
	if err := nn.SaveSafetensors(filepath.Join(dir, AdapterWeightsFile), ts, map[string]string{"format": "pt"}); err != nil {
		return fmt.Errorf("hf: SaveAdapter: %v", err)
	}
	if err := atomicfile.Write(filepath.Join(dir, AdapterConfigFile), append(cb, '\n')); err != nil {
		return fmt.Errorf("hf: SaveAdapter: %s: %v", AdapterConfigFile, err)
	}
	return nil
}

// LoadAdapter applies the PEFT LoRA adapter in dir (adapter_config.json
// and adapter_model.safetensors, F32/BF16/F16) to m: it attaches adapters
// as the config describes (r, lora_alpha, lora_dropout, use_rslora,
// target_modules, layers_to_transform), fills them from the file and
// freezes the base, as nn.Model.AddLoRA does. Call Adapter.Merge after it
// for inference at the base's cost.
//
// Adapters whose computation this package does not implement are refused
// with an error naming the field: DoRA, fan_in_fan_out, trained biases,
// modules_to_save, rank_pattern and alpha_pattern, target_modules given
// as a regular expression, other PEFT types. A tensor missing, left over
// or of the wrong shape is an error naming it. On error m is unchanged.
func LoadAdapter(m *nn.Model, dir string) error {
	cpath := filepath.Join(dir, AdapterConfigFile)
	cb, err := readSmall(cpath, 1<<20)
	if err != nil {
		return fmt.Errorf("hf: LoadAdapter: %v", err)
	}
	cfg, err := parseAdapterConfig(cb)
	if err != nil {
		return fmt.Errorf("hf: LoadAdapter: %s: %v", cpath, err)
	}
	wpath := filepath.Join(dir, AdapterWeightsFile)
	ts, _, err := nn.LoadSafetensors(wpath)
	if err != nil {
		return fmt.Errorf("hf: LoadAdapter: %v", err)
	}
	byName := make(map[string]nn.Tensor, len(ts))
	for _, t := range ts {
		// Older PEFT versions and some exporters keep the adapter's name
		// ("default") between lora_A and weight.
		n := strings.Replace(t.Name, ".lora_A.default.weight", ".lora_A.weight", 1)
		n = strings.Replace(n, ".lora_B.default.weight", ".lora_B.weight", 1)
		byName[n] = t
	}
	if m.LoRA() != nil {
		return fmt.Errorf("hf: LoadAdapter: %s: the model already carries adapters", dir)
	}
	a, err := m.AddLoRA(cfg, 0)
	if err != nil {
		return fmt.Errorf("hf: LoadAdapter: %s: %v", cpath, err)
	}
	fail := func(format string, args ...any) error {
		m.RemoveLoRA()
		return fmt.Errorf("hf: LoadAdapter: %s: "+format, append([]any{wpath}, args...)...)
	}
	used := 0
	for _, l := range a.Modules {
		for _, p := range []struct {
			ab  string
			dst []float32
			sh  []int
		}{{"A", l.A.Value.Data(), l.A.Shape()}, {"B", l.B.Value.Data(), l.B.Shape()}} {
			name := peftName(l, p.ab)
			t, ok := byName[name]
			if !ok {
				return fail("tensor %s missing (config targets %v)", name, cfg.Targets)
			}
			if !slices.Equal(t.Value.Shape(), p.sh) {
				return fail("tensor %s has shape %v, the model needs %v (r = %d)", name, t.Value.Shape(), p.sh, cfg.Rank)
			}
			for i, v := range t.Value.Data() {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					return fail("tensor %s holds %v at %d", name, v, i)
				}
			}
			copy(p.dst, t.Value.Data())
			used++
		}
	}
	if used != len(byName) {
		for n := range byName {
			if !strings.Contains(n, ".lora_A.") && !strings.Contains(n, ".lora_B.") {
				return fail("tensor %s is not a LoRA weight this package applies", n)
			}
		}
		var extra []string
		want := map[string]bool{}
		for _, l := range a.Modules {
			want[peftName(l, "A")], want[peftName(l, "B")] = true, true
		}
		for n := range byName {
			if !want[n] {
				extra = append(extra, n)
			}
		}
		slices.Sort(extra)
		return fail("tensor %s does not belong to a module the config targets", extra[0])
	}
	return nil
}

// parseAdapterConfig reads adapter_config.json into an nn.LoRAConfig,
// refusing what LoadAdapter cannot apply.
func parseAdapterConfig(b []byte) (nn.LoRAConfig, error) {
	var c adapterConfig
	d := json.NewDecoder(bytes.NewReader(b))
	if err := d.Decode(&c); err != nil {
		return nn.LoRAConfig{}, err
	}
	isNull := func(r json.RawMessage) bool { return len(r) == 0 || string(r) == "null" }
	switch {
	case c.PeftType != "LORA":
		return nn.LoRAConfig{}, fmt.Errorf("peft_type %q, only LORA is implemented", c.PeftType)
	case c.UseDoRA:
		return nn.LoRAConfig{}, fmt.Errorf("use_dora: DoRA is not implemented")
	case c.FanInFanOut:
		return nn.LoRAConfig{}, fmt.Errorf("fan_in_fan_out: transposed base weights are not implemented")
	case c.Bias != "" && c.Bias != "none":
		return nn.LoRAConfig{}, fmt.Errorf("bias %q: trained biases are not implemented", c.Bias)
	case c.LoraBias:
		return nn.LoRAConfig{}, fmt.Errorf("lora_bias: a bias on lora_B is not implemented")
	case len(c.RankPattern) > 0:
		return nn.LoRAConfig{}, fmt.Errorf("rank_pattern: per-module ranks are not implemented")
	case len(c.AlphaPattern) > 0:
		return nn.LoRAConfig{}, fmt.Errorf("alpha_pattern: per-module alphas are not implemented")
	}
	if !isNull(c.ModulesToSave) {
		var mods []string
		if err := json.Unmarshal(c.ModulesToSave, &mods); err != nil || len(mods) > 0 {
			return nn.LoRAConfig{}, fmt.Errorf("modules_to_save %s: fully trained extra modules are not implemented", c.ModulesToSave)
		}
	}
	out := nn.LoRAConfig{Rank: c.R, Alpha: c.LoraAlpha, Dropout: c.LoraDropout, RSLoRA: c.UseRSLoRA}
	var targets []string
	if err := json.Unmarshal(c.TargetModules, &targets); err != nil {
		var one string
		if json.Unmarshal(c.TargetModules, &one) != nil {
			return nn.LoRAConfig{}, fmt.Errorf("target_modules %s: need a list of module names", c.TargetModules)
		}
		if one == "all-linear" {
			targets = slices.Clone(nn.LoRAModules)
		} else if _, ok := nn.LoRAModule(one); ok {
			targets = []string{one}
		} else {
			return nn.LoRAConfig{}, fmt.Errorf("target_modules %q: a regular expression is not implemented; list the modules", one)
		}
	}
	if len(targets) == 0 {
		return nn.LoRAConfig{}, fmt.Errorf("target_modules is empty")
	}
	for _, t := range targets {
		if _, ok := nn.LoRAModule(t); !ok {
			return nn.LoRAConfig{}, fmt.Errorf("target_modules: %q is not one of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj", t)
		}
	}
	out.Targets = targets
	if !isNull(c.LayersToTransform) {
		var layers []int
		if err := json.Unmarshal(c.LayersToTransform, &layers); err != nil {
			var one int
			if json.Unmarshal(c.LayersToTransform, &one) != nil {
				return nn.LoRAConfig{}, fmt.Errorf("layers_to_transform %s: need an integer or a list of them", c.LayersToTransform)
			}
			layers = []int{one}
		}
		out.Layers = layers
	}
	return out, nil
}

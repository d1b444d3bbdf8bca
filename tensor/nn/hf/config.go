package hf

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/posttrain/posttrain/tensor/nn"
)

// architectures maps the transformers classes LoadModel implements to
// their model_type.
var architectures = map[string]string{
	"LlamaForCausalLM":   "llama",
	"MistralForCausalLM": "mistral",
	"Qwen2ForCausalLM":   "qwen2",
}

// maxConfig bounds config.json; real ones are a few kilobytes.
const maxConfig = 1 << 20

// config is the part of a transformers config.json the decoder needs.
// Pointers tell a missing field from a zero one.
type config struct {
	Architectures         []string        `json:"architectures"`
	ModelType             string          `json:"model_type"`
	VocabSize             int             `json:"vocab_size"`
	HiddenSize            int             `json:"hidden_size"`
	IntermediateSize      int             `json:"intermediate_size"`
	NumHiddenLayers       int             `json:"num_hidden_layers"`
	NumAttentionHeads     int             `json:"num_attention_heads"`
	NumKeyValueHeads      *int            `json:"num_key_value_heads"`
	HeadDim               *int            `json:"head_dim"`
	MaxPositionEmbeddings *int            `json:"max_position_embeddings"`
	RMSNormEps            *float64        `json:"rms_norm_eps"`
	RopeTheta             *float64        `json:"rope_theta"`
	RopeScaling           json.RawMessage `json:"rope_scaling"`
	RopeParameters        json.RawMessage `json:"rope_parameters"`
	TieWordEmbeddings     *bool           `json:"tie_word_embeddings"`
	AttentionBias         bool            `json:"attention_bias"`
	MLPBias               bool            `json:"mlp_bias"`
	HiddenAct             string          `json:"hidden_act"`
	EOSTokenID            json.RawMessage `json:"eos_token_id"`
	SlidingWindow         *int            `json:"sliding_window"`
	UseSlidingWindow      *bool           `json:"use_sliding_window"`
	PartialRotaryFactor   *float64        `json:"partial_rotary_factor"`
}

// rope is rope_scaling or rope_parameters.
type rope struct {
	RopeType        string   `json:"rope_type"`
	Type            string   `json:"type"` // the older spelling of rope_type
	RopeTheta       *float64 `json:"rope_theta"`
	Factor          float64  `json:"factor"`
	LowFreqFactor   float64  `json:"low_freq_factor"`
	HighFreqFactor  float64  `json:"high_freq_factor"`
	OriginalContext int      `json:"original_max_position_embeddings"`
}

// parseConfig turns config.json into the decoder's config, refusing
// architectures and settings the decoder does not implement by name.
func parseConfig(b []byte) (nn.Config, error) {
	var c config
	if err := json.Unmarshal(b, &c); err != nil {
		return nn.Config{}, fmt.Errorf("%v", err)
	}
	arch := c.ModelType
	switch len(c.Architectures) {
	case 0:
		if !slices.Contains([]string{"llama", "mistral", "qwen2"}, c.ModelType) {
			return nn.Config{}, fmt.Errorf("model_type %q not implemented and no architectures given (have %s)", c.ModelType, archList())
		}
	case 1:
		mt, ok := architectures[c.Architectures[0]]
		if !ok {
			return nn.Config{}, fmt.Errorf("architecture %q not implemented (have %s)", c.Architectures[0], archList())
		}
		arch = mt
	default:
		return nn.Config{}, fmt.Errorf("architectures %q: want exactly one", c.Architectures)
	}
	if c.HiddenAct != "" && c.HiddenAct != "silu" {
		return nn.Config{}, fmt.Errorf("hidden_act %q not implemented (have silu)", c.HiddenAct)
	}
	if c.MLPBias {
		return nn.Config{}, fmt.Errorf("mlp_bias true not implemented")
	}
	if c.PartialRotaryFactor != nil && *c.PartialRotaryFactor != 1 {
		return nn.Config{}, fmt.Errorf("partial_rotary_factor %v not implemented (have 1)", *c.PartialRotaryFactor)
	}
	cfg := nn.Config{
		Vocab:   c.VocabSize,
		DModel:  c.HiddenSize,
		Layers:  c.NumHiddenLayers,
		Heads:   c.NumAttentionHeads,
		KVHeads: c.NumAttentionHeads,
		Hidden:  c.IntermediateSize,
		Eps:     1e-6,
		RoPE:    10000,
		Context: 2048,
	}
	if arch == "qwen2" {
		cfg.QKVBias = true
		cfg.Context = 32768
	} else if c.AttentionBias {
		cfg.QKVBias, cfg.OBias = true, true
	}
	if c.NumKeyValueHeads != nil {
		cfg.KVHeads = *c.NumKeyValueHeads
	}
	if c.HeadDim != nil {
		cfg.HeadDim = *c.HeadDim
	}
	if c.MaxPositionEmbeddings != nil {
		cfg.Context = *c.MaxPositionEmbeddings
	}
	// A sliding window only changes attention past its width: within it
	// the model is the dense decoder, so the context stops there.
	if c.SlidingWindow != nil && (arch == "mistral" || (c.UseSlidingWindow != nil && *c.UseSlidingWindow)) {
		cfg.Context = min(cfg.Context, *c.SlidingWindow)
	}
	if c.RMSNormEps != nil {
		cfg.Eps = *c.RMSNormEps
		if cfg.Eps == 0 {
			return nn.Config{}, fmt.Errorf("rms_norm_eps 0 not supported")
		}
	}
	if c.RopeTheta != nil {
		cfg.RoPE = *c.RopeTheta
	}
	cfg.Tied = c.TieWordEmbeddings != nil && *c.TieWordEmbeddings
	for _, f := range []struct {
		key string
		raw json.RawMessage
	}{{"rope_parameters", c.RopeParameters}, {"rope_scaling", c.RopeScaling}} {
		if len(f.raw) == 0 || string(f.raw) == "null" {
			continue
		}
		var r rope
		if err := json.Unmarshal(f.raw, &r); err != nil {
			return nn.Config{}, fmt.Errorf("%s: %v", f.key, err)
		}
		if r.RopeTheta != nil {
			cfg.RoPE = *r.RopeTheta
		}
		kind := r.RopeType
		if kind == "" {
			kind = r.Type
		}
		switch kind {
		case "", "default":
		case "linear":
			cfg.Scaling = nn.Scaling{Type: "linear", Factor: r.Factor}
		case "llama3":
			cfg.Scaling = nn.Scaling{Type: "llama3", Factor: r.Factor, LowFreqFactor: r.LowFreqFactor,
				HighFreqFactor: r.HighFreqFactor, OriginalContext: r.OriginalContext}
		default:
			return nn.Config{}, fmt.Errorf("%s: rope type %q not implemented (have default, linear, llama3)", f.key, kind)
		}
	}
	eos, err := parseEOS(c.EOSTokenID)
	if err != nil {
		return nn.Config{}, err
	}
	cfg.EOS = eos
	if err := cfg.Validate(); err != nil {
		return nn.Config{}, err
	}
	return cfg, nil
}

// parseEOS reads eos_token_id: absent, null, an int or a list of ints.
func parseEOS(raw json.RawMessage) ([]int32, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var one float64
	if err := json.Unmarshal(raw, &one); err == nil {
		raw = []byte("[" + string(raw) + "]")
	}
	var ids []float64
	if err := json.Unmarshal(raw, &ids); err != nil {
		return nil, fmt.Errorf("eos_token_id %s: want an int or a list of ints", raw)
	}
	out := make([]int32, len(ids))
	for i, v := range ids {
		if v != math.Trunc(v) || v < 0 || v > math.MaxInt32 {
			return nil, fmt.Errorf("eos_token_id %v: not a token id", v)
		}
		out[i] = int32(v)
	}
	return out, nil
}

func archList() string {
	var names []string
	for a := range architectures {
		names = append(names, a)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// writeConfig returns the config.json of a model of config c, in
// transformers' fields: Qwen2ForCausalLM for q/k/v biases without an
// output bias, LlamaForCausalLM otherwise.
func writeConfig(c nn.Config, dtype string) ([]byte, error) {
	arch, mt := "LlamaForCausalLM", "llama"
	out := map[string]any{}
	switch {
	case c.QKVBias && !c.OBias:
		arch, mt = "Qwen2ForCausalLM", "qwen2"
		out["use_sliding_window"] = false
		out["sliding_window"] = nil
	case c.QKVBias != c.OBias:
		return nil, fmt.Errorf("an output-projection bias without q/k/v biases has no transformers architecture")
	default:
		out["attention_bias"] = c.OBias
		out["mlp_bias"] = false
	}
	out["architectures"] = []string{arch}
	out["model_type"] = mt
	out["vocab_size"] = c.Vocab
	out["hidden_size"] = c.DModel
	out["intermediate_size"] = c.Hidden
	out["num_hidden_layers"] = c.Layers
	out["num_attention_heads"] = c.Heads
	out["num_key_value_heads"] = c.KVHeads
	out["head_dim"] = c.HeadDim
	out["max_position_embeddings"] = c.Context
	out["rms_norm_eps"] = c.Eps
	out["rope_theta"] = c.RoPE
	out["hidden_act"] = "silu"
	out["tie_word_embeddings"] = c.Tied
	out["torch_dtype"] = map[string]string{"F32": "float32", "BF16": "bfloat16", "F16": "float16"}[dtype]
	switch s := c.Scaling; s.Type {
	case "linear":
		out["rope_scaling"] = map[string]any{"rope_type": "linear", "factor": s.Factor}
	case "llama3":
		out["rope_scaling"] = map[string]any{"rope_type": "llama3", "factor": s.Factor, "low_freq_factor": s.LowFreqFactor,
			"high_freq_factor": s.HighFreqFactor, "original_max_position_embeddings": s.OriginalContext}
	default:
		out["rope_scaling"] = nil
	}
	switch len(c.EOS) {
	case 0:
	case 1:
		out["eos_token_id"] = c.EOS[0]
	default:
		out["eos_token_id"] = c.EOS
	}
	return json.MarshalIndent(out, "", "  ")
}

package hf

import (
	"reflect"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/posttrain/posttrain/tensor/nn"
)

func TestParseConfig(t *testing.T) {
	base := `"vocab_size": 100, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4`
	for _, tc := range []struct {
		name, json string
		check      func(c nn.Config) bool
		err        string
	}{
		{"mistral sliding window caps the context", `{"architectures": ["MistralForCausalLM"], ` + base + `, "max_position_embeddings": 32768, "sliding_window": 4096, "num_key_value_heads": 2}`,
			func(c nn.Config) bool { return c.Context == 4096 && c.KVHeads == 2 && !c.QKVBias }, ""},
		{"qwen2 without sliding window", `{"architectures": ["Qwen2ForCausalLM"], ` + base + `, "max_position_embeddings": 32768, "sliding_window": 4096, "use_sliding_window": false, "tie_word_embeddings": true}`,
			func(c nn.Config) bool { return c.Context == 32768 && c.QKVBias && !c.OBias && c.Tied }, ""},
		{"llama attention_bias", `{"model_type": "llama", ` + base + `, "attention_bias": true}`,
			func(c nn.Config) bool {
				return c.QKVBias && c.OBias && c.Context == 2048 && c.RoPE == 10000 && c.Eps == 1e-6
			}, ""},
		{"v5 rope_parameters llama3", `{"architectures": ["LlamaForCausalLM"], ` + base + `, "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000, "factor": 32, "low_freq_factor": 1, "high_freq_factor": 4, "original_max_position_embeddings": 8192}}`,
			func(c nn.Config) bool {
				return c.RoPE == 500000 && c.Scaling == nn.Scaling{Type: "llama3", Factor: 32, LowFreqFactor: 1, HighFreqFactor: 4, OriginalContext: 8192}
			}, ""},
		{"legacy rope_scaling type", `{"architectures": ["LlamaForCausalLM"], ` + base + `, "rope_theta": 1e4, "rope_scaling": {"type": "linear", "factor": 4}}`,
			func(c nn.Config) bool { return c.Scaling == nn.Scaling{Type: "linear", Factor: 4} }, ""},
		{"eos list and null", `{"architectures": ["LlamaForCausalLM"], ` + base + `, "eos_token_id": [7, 9]}`,
			func(c nn.Config) bool { return reflect.DeepEqual(c.EOS, []int32{7, 9}) }, ""},
		{"eos null", `{"architectures": ["LlamaForCausalLM"], ` + base + `, "eos_token_id": null}`,
			func(c nn.Config) bool { return c.EOS == nil }, ""},
		{"dynamic rope", `{"architectures": ["LlamaForCausalLM"], ` + base + `, "rope_scaling": {"type": "dynamic", "factor": 2}}`, nil, `"dynamic"`},
		{"gelu", `{"architectures": ["LlamaForCausalLM"], ` + base + `, "hidden_act": "gelu"}`, nil, `"gelu"`},
		{"mlp bias", `{"architectures": ["LlamaForCausalLM"], ` + base + `, "mlp_bias": true}`, nil, "mlp_bias"},
		{"partial rotary", `{"architectures": ["LlamaForCausalLM"], ` + base + `, "partial_rotary_factor": 0.5}`, nil, "partial_rotary_factor"},
		{"two architectures", `{"architectures": ["LlamaForCausalLM", "Qwen2ForCausalLM"], ` + base + `}`, nil, "exactly one"},
		{"unknown model_type", `{"model_type": "gemma", ` + base + `}`, nil, `"gemma"`},
		{"eos outside vocabulary", `{"architectures": ["LlamaForCausalLM"], ` + base + `, "eos_token_id": 100}`, nil, "EOS id 100"},
		{"heads do not group", `{"architectures": ["LlamaForCausalLM"], ` + base + `, "num_key_value_heads": 3}`, nil, "not divisible"},
		{"not json", `{"architectures": `, nil, "unexpected end"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseConfig([]byte(tc.json))
			if tc.err != "" {
				assert.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			assert.True(t, tc.check(c), "config %+v", c)
		})
	}
}

// TestWriteConfig checks that a saved config reads back as the same
// model, for each architecture SaveModel can name.
func TestWriteConfig(t *testing.T) {
	for _, c := range []nn.Config{
		{Vocab: 10, DModel: 8, Layers: 1, Heads: 2, KVHeads: 1, HeadDim: 4, Context: 16, Hidden: 8, Eps: 1e-5, RoPE: 1e4, QKVBias: true, Tied: true, EOS: []int32{1, 2}},
		{Vocab: 10, DModel: 8, Layers: 1, Heads: 2, KVHeads: 2, HeadDim: 6, Context: 16, Hidden: 8, Eps: 1e-5, RoPE: 5e5, QKVBias: true, OBias: true,
			Scaling: nn.Scaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalContext: 8}, EOS: []int32{3}},
	} {
		b, err := writeConfig(c, "F32")
		if err != nil {
			t.Fatal(err)
		}
		back, err := parseConfig(b)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back, c) {
			t.Errorf("config %+v\nread back %+v\nfrom %s", c, back, b)
		}
	}
	if _, err := writeConfig(nn.Config{OBias: true}, "F32"); err == nil {
		t.Error("output bias without q/k/v bias accepted")
	}
}

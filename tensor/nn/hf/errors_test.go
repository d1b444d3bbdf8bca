package hf

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// copyFixture copies a fixture directory into a temporary one.
func copyFixture(t testing.TB, name string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), name)
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	es, err := os.ReadDir(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		b, err := os.ReadFile(filepath.Join("testdata", name, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// editHeader rewrites the JSON header of a safetensors file through edit,
// keeping the data section as it is.
func editHeader(t *testing.T, path string, edit func(h map[string]json.RawMessage)) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(b)
	var h map[string]json.RawMessage
	if err := json.Unmarshal(b[8:8+n], &h); err != nil {
		t.Fatal(err)
	}
	edit(h)
	hb, _ := json.Marshal(h)
	for len(hb)%8 != 0 {
		hb = append(hb, ' ')
	}
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(hb)))
	out = append(append(out, hb...), b[8+n:]...)
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

func editConfig(t *testing.T, dir string, edit func(c map[string]any)) {
	t.Helper()
	p := filepath.Join(dir, configFile)
	b, _ := os.ReadFile(p)
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	edit(c)
	b, _ = json.Marshal(c)
	os.WriteFile(p, b, 0o644)
}

// TestLoadErrors feeds LoadModel broken checkpoints: each error must name
// the file and the tensor or field at fault.
func TestLoadErrors(t *testing.T) {
	smol := func(t *testing.T) string { return copyFixture(t, "smol_f32") }
	llama := func(t *testing.T) string { return copyFixture(t, "llama_bf16") }
	single := func(dir string) string { return filepath.Join(dir, singleFile) }
	shard2 := func(dir string) string { return filepath.Join(dir, "model-00002-of-00002.safetensors") }
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T) string
		want  []string // substrings of the error; "FILE" stands for the file at fault
		file  func(dir string) string
	}{
		{"unknown architecture", func(t *testing.T) string {
			d := smol(t)
			editConfig(t, d, func(c map[string]any) { c["architectures"] = []string{"GPT2LMHeadModel"} })
			return d
		}, []string{"GPT2LMHeadModel", "not implemented", "FILE"}, func(d string) string { return filepath.Join(d, configFile) }},
		{"unknown rope", func(t *testing.T) string {
			d := smol(t)
			editConfig(t, d, func(c map[string]any) { c["rope_scaling"] = map[string]any{"rope_type": "yarn", "factor": 4} })
			return d
		}, []string{`"yarn"`, "FILE"}, func(d string) string { return filepath.Join(d, configFile) }},
		{"bad eos", func(t *testing.T) string {
			d := smol(t)
			editConfig(t, d, func(c map[string]any) { c["eos_token_id"] = "x" })
			return d
		}, []string{"eos_token_id"}, nil},
		{"missing tensor", func(t *testing.T) string {
			d := smol(t)
			editHeader(t, single(d), func(h map[string]json.RawMessage) {
				// Turn the tensor into one of another name: the data still tiles.
				h["model.layers.9.mlp.up_proj.weight"] = h["model.norm.weight"]
				delete(h, "model.norm.weight")
			})
			return d
		}, []string{`"model.norm.weight"`}, nil},
		{"extra tensor", func(t *testing.T) string {
			d := smol(t)
			editHeader(t, single(d), func(h map[string]json.RawMessage) {
				h["model.layers.0.mlp.extra.weight"] = h["model.norm.weight"]
				delete(h, "model.norm.weight")
			})
			return d
		}, []string{`"model.layers.0.mlp.extra.weight"`, "FILE"}, single},
		{"mis-shaped tensor", func(t *testing.T) string {
			d := smol(t)
			editHeader(t, single(d), func(h map[string]json.RawMessage) {
				h["model.norm.weight"] = []byte(strings.Replace(string(h["model.norm.weight"]), "[48]", "[6,8]", 1))
			})
			return d
		}, []string{`"model.norm.weight"`, "[6 8]", "FILE"}, single},
		{"config disagrees", func(t *testing.T) string {
			d := smol(t)
			editConfig(t, d, func(c map[string]any) { c["num_key_value_heads"] = 3 })
			return d
		}, []string{`"model.layers.0.self_attn.k_proj.weight"`, "FILE"}, single},
		{"truncated shard", func(t *testing.T) string {
			d := llama(t)
			b, _ := os.ReadFile(shard2(d))
			os.WriteFile(shard2(d), b[:len(b)-100], 0o644)
			return d
		}, []string{"FILE", "truncated"}, shard2},
		{"index names a missing file", func(t *testing.T) string {
			d := llama(t)
			p := filepath.Join(d, indexFile)
			b, _ := os.ReadFile(p)
			os.WriteFile(p, bytes.Replace(b, []byte(`"model-00002-of-00002.safetensors"`), []byte(`"model-00003-of-00003.safetensors"`), 1), 0o644)
			return d
		}, []string{"model-00003-of-00003.safetensors", indexFile}, nil},
		{"index path escape", func(t *testing.T) string {
			d := llama(t)
			p := filepath.Join(d, indexFile)
			b, _ := os.ReadFile(p)
			os.WriteFile(p, bytes.Replace(b, []byte(`"model-00002-of-00002.safetensors"`), []byte(`"../x.safetensors"`), 1), 0o644)
			return d
		}, []string{"../x.safetensors", indexFile}, nil},
		{"header lies about offsets", func(t *testing.T) string {
			d := smol(t)
			editHeader(t, single(d), func(h map[string]json.RawMessage) {
				var e struct {
					Dtype   string   `json:"dtype"`
					Shape   []int    `json:"shape"`
					Offsets [2]int64 `json:"data_offsets"`
				}
				json.Unmarshal(h["model.norm.weight"], &e)
				e.Offsets[0] += 4
				e.Offsets[1] += 4
				h["model.norm.weight"], _ = json.Marshal(e)
			})
			return d
		}, []string{"FILE"}, single},
		{"NaN weight", func(t *testing.T) string {
			d := smol(t)
			b, _ := os.ReadFile(single(d))
			n := binary.LittleEndian.Uint64(b)
			// The first tensor in the data is the embedding (written first).
			binary.LittleEndian.PutUint32(b[8+n+4*5:], math.Float32bits(float32(math.NaN())))
			os.WriteFile(single(d), b, 0o644)
			return d
		}, []string{`"model.embed_tokens.weight"`, "element 5", "NaN", "FILE"}, single},
		{"changed after save", func(t *testing.T) string {
			m, err := LoadModel("testdata/smol_f32")
			if err != nil {
				t.Fatal(err)
			}
			d := filepath.Join(t.TempDir(), "saved")
			if err := SaveModel(m, d); err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(single(d))
			b[len(b)-3] ^= 1
			os.WriteFile(single(d), b, 0o644)
			return d
		}, []string{"SHA-256", "FILE"}, single},
		{"no weights", func(t *testing.T) string {
			d := smol(t)
			os.Remove(single(d))
			return d
		}, []string{singleFile, indexFile}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := tc.setup(t)
			m, err := LoadModel(dir)
			if err == nil {
				t.Fatalf("loaded %v", m.Config)
			}
			for _, w := range tc.want {
				if w == "FILE" {
					w = tc.file(dir)
				}
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// TestBigConfigCheap checks that a config with enormous sizes fails on the
// tensors before anything is allocated for it.
func TestBigConfigCheap(t *testing.T) {
	d := copyFixture(t, "smol_f32")
	editConfig(t, d, func(c map[string]any) {
		c["max_position_embeddings"] = 200000000
		c["vocab_size"] = 3000000
		c["num_hidden_layers"] = 30000
	})
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := LoadModel(d)
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "model.layers.29999.input_layernorm.weight") {
		t.Errorf("error %v", err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Errorf("%d bytes allocated", n)
	}
	editConfig(t, d, func(c map[string]any) { c["num_hidden_layers"] = 3 })
	runtime.ReadMemStats(&before)
	_, err = LoadModel(d)
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "model.embed_tokens.weight") {
		t.Errorf("error %v", err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Errorf("%d bytes allocated", n)
	}
}

func FuzzParseIndex(f *testing.F) {
	b, _ := os.ReadFile("testdata/llama_bf16/" + indexFile)
	f.Add(b)
	f.Add([]byte(`{"weight_map":{"a":"../b"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		wm, files, err := parseIndex(b)
		if err != nil {
			return
		}
		for _, fn := range files {
			if fn != filepath.Base(fn) || fn == ".." || fn == "." {
				t.Fatalf("file %q accepted", fn)
			}
		}
		if len(wm) == 0 {
			t.Fatal("empty map accepted")
		}
	})
}

func FuzzParseConfig(f *testing.F) {
	for _, n := range fixtures {
		b, _ := os.ReadFile(filepath.Join("testdata", n, configFile))
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := parseConfig(b)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted config fails validation: %v", err)
		}
	})
}

// FuzzLoadShard loads arbitrary bytes as the single weights file of the
// smol fixture's config: never a panic.
func FuzzLoadShard(f *testing.F) {
	b, _ := os.ReadFile("testdata/qwen_f16/" + singleFile)
	f.Add(b)
	f.Add(b[:200])
	cfg, _ := os.ReadFile("testdata/qwen_f16/" + configFile)
	dir := f.TempDir()
	os.WriteFile(filepath.Join(dir, configFile), cfg, 0o644)
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, singleFile), b, 0o644); err != nil {
			t.Skip()
		}
		LoadModel(dir)
	})
}

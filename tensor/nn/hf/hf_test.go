package hf

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/posttrain/posttrain/tensor/nn"
)

type reference struct {
	IDs    []int32   `json:"ids"`
	Logits []float64 `json:"logits"`
	Greedy []int32   `json:"greedy"`
}

func loadReference(t *testing.T) map[string]reference {
	t.Helper()
	b, err := os.ReadFile("testdata/reference.json")
	if err != nil {
		t.Fatal(err)
	}
	var ref map[string]reference
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	return ref
}

var fixtures = []string{"llama_bf16", "smol_f32", "qwen_f16"}

// TestReference compares the logits of each fixture checkpoint with the
// float64 PyTorch re-implementation of transformers' forward in
// testdata/gen_models.py, within 1e-4 of the row's largest logit, and
// greedy generation with the reference's argmax continuation.
func TestReference(t *testing.T) {
	ref := loadReference(t)
	for _, name := range fixtures {
		t.Run(name, func(t *testing.T) {
			r := ref[name]
			m, err := LoadModel(filepath.Join("testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			logits, err := m.Logits(r.IDs)
			if err != nil {
				t.Fatal(err)
			}
			v := m.Config.Vocab
			if !slices.Equal(logits.Shape(), []int{len(r.IDs), v}) {
				t.Fatalf("logits shape %v", logits.Shape())
			}
			worst := 0.0
			for i := range r.IDs {
				want := r.Logits[i*v : (i+1)*v]
				scale := 0.0
				for _, w := range want {
					scale = max(scale, math.Abs(w))
				}
				for j, w := range want {
					e := math.Abs(float64(logits.Data()[i*v+j])-w) / scale
					worst = max(worst, e)
					if e > 1e-4 {
						t.Fatalf("position %d logit %d: %v, reference %v", i, j, logits.Data()[i*v+j], w)
					}
				}
			}
			t.Logf("worst relative error %.2g", worst)
			got, err := m.Generate(r.IDs, len(r.Greedy), nn.NewSampler(1, 0, 0, 0))
			if err != nil {
				t.Fatal(err)
			}
			want := r.Greedy
			// Generation stops after the first end-of-sequence token.
			for i, id := range want {
				if slices.Contains(m.Config.EOS, id) {
					want = want[:i+1]
					break
				}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("greedy %v, reference %v", got, want)
			}
		})
	}
}

func TestConfigs(t *testing.T) {
	m, err := LoadModel("testdata/llama_bf16")
	if err != nil {
		t.Fatal(err)
	}
	want := nn.Config{Vocab: 128, DModel: 64, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 24, Context: 256, Hidden: 96,
		Eps: 1e-5, RoPE: 500000, Scaling: nn.Scaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalContext: 32},
		EOS: []int32{2}}
	if !reflect.DeepEqual(m.Config, want) {
		t.Errorf("llama config %+v\nwant %+v", m.Config, want)
	}
	q, err := LoadModel("testdata/qwen_f16")
	if err != nil {
		t.Fatal(err)
	}
	if c := q.Config; !c.QKVBias || c.OBias || c.Tied || c.KVHeads != 1 || c.Scaling != (nn.Scaling{Type: "linear", Factor: 2}) || c.RoPE != 1e6 {
		t.Errorf("qwen config %+v", c)
	}
	s, err := LoadModel("testdata/smol_f32")
	if err != nil {
		t.Fatal(err)
	}
	if c := s.Config; !c.Tied || c.RoPE != 1e5 || !slices.Equal(c.EOS, []int32{0, 1}) || s.Head.W != s.Embed.W {
		t.Errorf("smol config %+v", c)
	}
}

// TestGenerationConfig checks that generation_config.json's EOS ids join
// config.json's.
func TestGenerationConfig(t *testing.T) {
	d := copyFixture(t, "smol_f32")
	os.WriteFile(filepath.Join(d, generationFile), []byte(`{"eos_token_id": [1, 5], "bos_token_id": 0}`), 0o644)
	m, err := LoadModel(d)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(m.Config.EOS, []int32{0, 1, 5}) {
		t.Errorf("EOS %v", m.Config.EOS)
	}
	os.WriteFile(filepath.Join(d, generationFile), []byte(`{"eos_token_id": 500}`), 0o644)
	if _, err := LoadModel(d); err == nil || !strings.Contains(err.Error(), generationFile) {
		t.Errorf("EOS outside the vocabulary: %v", err)
	}
}

// TestRoundTrip saves every fixture, single-file and sharded, and loads
// it back bit for bit.
func TestRoundTrip(t *testing.T) {
	for _, name := range fixtures {
		t.Run(name, func(t *testing.T) {
			m, err := LoadModel(filepath.Join("testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			for _, shard := range []int64{ShardSize, 20000} {
				dir := filepath.Join(t.TempDir(), "out")
				if err := SaveModelWith(m, dir, SaveOptions{ShardSize: shard}); err != nil {
					t.Fatal(err)
				}
				_, errIdx := os.Stat(filepath.Join(dir, indexFile))
				if (shard < ShardSize) != (errIdx == nil) {
					t.Fatalf("%s shard %d: index present %v", name, shard, errIdx == nil)
				}
				back, err := LoadModel(dir)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(back.Config, m.Config) {
					t.Fatalf("%s: config %+v, want %+v", name, back.Config, m.Config)
				}
				p, q := m.Params(), back.Params()
				if len(p) != len(q) {
					t.Fatalf("%s: %d params, want %d", name, len(q), len(p))
				}
				for i := range p {
					a, b := p[i].Var.Value.Data(), q[i].Var.Value.Data()
					for j := range a {
						if math.Float32bits(a[j]) != math.Float32bits(b[j]) {
							t.Fatalf("%s: %s[%d] differs", name, p[i].Name, j)
						}
					}
				}
			}
		})
	}
}

// TestSaveHalf saves in BF16 and F16: loading gives the weights rounded
// once, and a second round trip changes nothing.
func TestSaveHalf(t *testing.T) {
	m, err := LoadModel("testdata/llama_bf16")
	if err != nil {
		t.Fatal(err)
	}
	for _, dt := range []string{"BF16", "F16"} {
		dir := filepath.Join(t.TempDir(), dt)
		if err := SaveModelWith(m, dir, SaveOptions{Dtype: dt, ShardSize: 30000}); err != nil {
			t.Fatal(err)
		}
		back, err := LoadModel(dir)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(filepath.Join(dir, configFile))
		if !strings.Contains(string(b), map[string]string{"BF16": `"bfloat16"`, "F16": `"float16"`}[dt]) {
			t.Errorf("%s: config %s", dt, b)
		}
		p, q := m.Params(), back.Params()
		for i := range p {
			for j, v := range p[i].Var.Value.Data() {
				w := q[i].Var.Value.Data()[j]
				// The fixture's weights are bf16 values: BF16 keeps them
				// exactly, F16 within its 11-bit precision.
				if dt == "BF16" && v != w || math.Abs(float64(v-w)) > 1e-3*math.Abs(float64(v))+1e-7 {
					t.Fatalf("%s: %s[%d] = %v, saved %v", dt, p[i].Name, j, w, v)
				}
			}
		}
	}
}

// TestDecoderMatchesLogits checks KV-cache decoding with GQA (prefill and
// single steps) against the full forward.
func TestDecoderMatchesLogits(t *testing.T) {
	ref := loadReference(t)
	for _, name := range fixtures {
		t.Run(name, func(t *testing.T) {
			m, err := LoadModel(filepath.Join("testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			ids := ref[name].IDs
			full, _ := m.Logits(ids)
			v := m.Config.Vocab
			d := m.NewDecoder()
			check := func(pos int, got []float32) {
				want := full.Data()[pos*v : (pos+1)*v]
				for j := range got {
					if math.Abs(float64(got[j]-want[j])) > 1e-4*max(1, math.Abs(float64(want[j]))) {
						t.Fatalf("%s position %d logit %d: cache %v, full %v", name, pos, j, got[j], want[j])
					}
				}
			}
			for i, id := range ids {
				got, err := d.Step(id)
				if err != nil {
					t.Fatal(err)
				}
				check(i, got)
			}
			d.Reset()
			half := len(ids) / 2
			got, err := d.Prefill(0, ids[:half])
			if err != nil {
				t.Fatal(err)
			}
			check(half-1, got)
			got, _ = d.Prefill(0, ids[half:])
			check(len(ids)-1, got)
		})
	}
}

// TestBatchMatchesOneByOne decodes prompts of different lengths together,
// each with its own sampler, and one at a time: the tokens are the same.
func TestBatchMatchesOneByOne(t *testing.T) {
	m, err := LoadModel("testdata/qwen_f16")
	if err != nil {
		t.Fatal(err)
	}
	prompts := [][]int32{{3, 4, 5, 6, 7, 8, 9}, {100}, {7, 7, 7}, {20, 30, 40, 50, 60}}
	mk := func() []*nn.Sampler {
		var ss []*nn.Sampler
		for i := range prompts {
			ss = append(ss, nn.NewSampler(uint64(10+i), 0.9, 0, 0))
		}
		return ss
	}
	batch, err := m.GenerateBatch(prompts, 12, mk())
	if err != nil {
		t.Fatal(err)
	}
	ss := mk()
	for i, p := range prompts {
		one, err := m.Generate(p, 12, ss[i])
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(one, batch[i]) {
			t.Fatalf("prompt %d: batched %v, alone %v", i, batch[i], one)
		}
	}
	// The same holds for the logits, bit for bit, at every step.
	d1, d4 := m.NewDecoder(), m.NewBatchDecoder(2)
	a, _ := d1.Prefill(0, prompts[0])
	a = slices.Clone(a)
	d4.Prefill(1, prompts[0])
	d4.Prefill(0, prompts[1])
	b, _ := d4.StepBatch([]int{0, 1}, []int32{5, 9})
	a, _ = d1.Step(9)
	for j := range a {
		if math.Float32bits(a[j]) != math.Float32bits(b[m.Config.Vocab+j]) {
			t.Fatalf("logit %d: alone %v, batched %v", j, a[j], b[m.Config.Vocab+j])
		}
	}
}

// TestStepAllocs checks that a decoding step allocates nothing once the
// caches are reserved.
func TestStepAllocs(t *testing.T) {
	m, err := LoadModel("testdata/smol_f32")
	if err != nil {
		t.Fatal(err)
	}
	d := m.NewBatchDecoder(3)
	d.Reserve(m.Config.Context)
	seqs, toks := []int{0, 1, 2}, []int32{4, 5, 6}
	d.StepBatch(seqs, toks)
	if n := testing.AllocsPerRun(20, func() { d.StepBatch(seqs, toks) }); n != 0 {
		t.Errorf("%v allocations per step", n)
	}
}

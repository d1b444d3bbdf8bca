package hf

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

// goldens is testdata/tokenizer/goldens.json, written by gen.mjs with
// @huggingface/tokenizers.
type goldens struct {
	Texts      []string
	Tokenizers map[string]struct {
		Encode        [][]int32
		EncodeSpecial [][]int32 `json:"encode_special"`
		Decode        []string
		DecodeIDs     []struct {
			IDs  []int32
			Text string
		} `json:"decode_ids"`
	}
}

var fixtureNames = []string{"gpt2", "llama3", "qwen2", "mistral", "mistral-metaspace"}

var (
	fixtureMu   sync.Mutex
	fixtureToks = map[string]*Tokenizer{}
	fixtureDirs = map[string]string{}
)

// fixtureDir lays out the fixture name as a model directory (tokenizer.json
// unzipped, or the base fixture with override.json laid over it) in a
// folder that lives as long as the test binary.
func fixtureDir(t testing.TB, name string) string {
	fixtureMu.Lock()
	defer fixtureMu.Unlock()
	if d, ok := fixtureDirs[name]; ok {
		return d
	}
	src := filepath.Join("testdata", "tokenizer", name)
	dir, err := os.MkdirTemp("", "hf-tokenizer-"+name)
	if err != nil {
		t.Fatal(err)
	}
	var tj []byte
	if ov, err := os.ReadFile(filepath.Join(src, "override.json")); err == nil {
		var o map[string]json.RawMessage
		if err := json.Unmarshal(ov, &o); err != nil {
			t.Fatal(err)
		}
		var base string
		json.Unmarshal(o["base"], &base)
		delete(o, "base")
		var full map[string]json.RawMessage
		if err := json.Unmarshal(gunzip(t, filepath.Join("testdata", "tokenizer", base, "tokenizer.json.gz")), &full); err != nil {
			t.Fatal(err)
		}
		for k, v := range o {
			full[k] = v
		}
		if tj, err = json.Marshal(full); err != nil {
			t.Fatal(err)
		}
	} else {
		tj = gunzip(t, filepath.Join(src, "tokenizer.json.gz"))
	}
	cfg, err := os.ReadFile(filepath.Join(src, "tokenizer_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), tj, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	fixtureDirs[name] = dir
	return dir
}

func gunzip(t testing.TB, path string) []byte {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fixture returns the loaded tokenizer of a fixture, loaded once.
func fixture(t testing.TB, name string) *Tokenizer {
	dir := fixtureDir(t, name)
	fixtureMu.Lock()
	defer fixtureMu.Unlock()
	if tok, ok := fixtureToks[name]; ok {
		return tok
	}
	tok, err := LoadTokenizer(dir)
	if err != nil {
		t.Fatal(err)
	}
	fixtureToks[name] = tok
	return tok
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, d := range fixtureDirs {
		os.RemoveAll(d)
	}
	os.Exit(code)
}

func loadGoldens(t testing.TB) *goldens {
	b, err := os.ReadFile(filepath.Join("testdata", "tokenizer", "goldens.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g goldens
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return &g
}

func TestTokenizerGoldens(t *testing.T) {
	g := loadGoldens(t)
	for _, name := range fixtureNames {
		t.Run(name, func(t *testing.T) {
			want, ok := g.Tokenizers[name]
			if !ok {
				t.Fatalf("no goldens for %s", name)
			}
			tok := fixture(t, name)
			bad := 0
			for i, text := range g.Texts {
				ids, err := tok.Encode(text)
				if err != nil {
					t.Fatalf("text %d: %v", i, err)
				}
				if !slices.Equal(ids, want.Encode[i]) {
					bad++
					t.Errorf("text %d %q:\n got %v\nwant %v", i, short(text), ids, want.Encode[i])
				}
				if got := tok.AddSpecial(want.Encode[i]); !slices.Equal(got, want.EncodeSpecial[i]) {
					t.Errorf("text %d: AddSpecial: got %v, want %v", i, head(got), head(want.EncodeSpecial[i]))
				}
				s, err := tok.Decode(want.Encode[i])
				if err != nil {
					t.Fatalf("text %d: %v", i, err)
				}
				if s != want.Decode[i] {
					t.Errorf("text %d: Decode:\n got %q\nwant %q", i, short(s), short(want.Decode[i]))
				}
				if bad > 5 {
					t.Fatal("too many differences")
				}
			}
			for i, d := range want.DecodeIDs {
				if w, ok := rustDecode[name][i]; ok {
					d.Text = w
				}
				s, err := tok.Decode(d.IDs)
				if err != nil {
					t.Fatalf("decode_ids %d: %v", i, err)
				}
				if s != d.Text {
					t.Errorf("decode_ids %d %v:\n got %q\nwant %q", i, d.IDs, s, d.Text)
				}
			}
		})
	}
}

// rustDecode holds the decodings where this package follows the tokenizers
// crate (and so transformers) rather than tokenizers.js: the ByteFallback
// decoder of the crate turns a run of byte tokens that is not valid UTF-8
// into one U+FFFD per byte ("you will get � instead for each inconvertible
// byte token", its documentation says), where tokenizers.js runs a
// TextDecoder over the run and gets one U+FFFD per ill-formed subpart.
// Cases 23 and 24 are "▁" and the first two and three bytes of 👋.
var rustDecode = map[string]map[int]string{
	"mistral":           {23: "\uFFFD\uFFFD", 24: "\uFFFD\uFFFD\uFFFD"},
	"mistral-metaspace": {23: "\uFFFD\uFFFD", 24: "\uFFFD\uFFFD\uFFFD"},
}

func short(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

func head(ids []int32) []int32 {
	if len(ids) > 8 {
		return ids[:8]
	}
	return ids
}

var _ = bytes.Equal

package hf

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// opticks reads the Opticks text that Go ships for its own compression
// benchmarks, the text bench/tokenizer_compare.sh times tokenizers.js on.
func opticks(tb testing.TB) string {
	b, err := os.ReadFile(filepath.Join(runtime.GOROOT(), "src", "testdata", "Isaac.Newton-Opticks.txt"))
	if err != nil {
		tb.Skip("no Opticks text in GOROOT:", err)
	}
	return string(b)
}

// BenchmarkEncode measures throughput on the Opticks text (567 kB) once the
// pre-token cache is warm, as in a training run: the whole text in one
// call, and paragraph by paragraph (about 1900 calls of 300 bytes, the
// shape of a dataset of short documents).
func BenchmarkEncode(b *testing.B) {
	text := opticks(b)
	paras := strings.Split(text, "\n\n")
	for _, name := range []string{"gpt2", "llama3", "qwen2", "mistral", "gpt4o"} {
		tok := fixture(b, name)
		b.Run(name+"/opticks", func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			for b.Loop() {
				if _, err := tok.Encode(text); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/paragraphs", func(b *testing.B) {
			b.SetBytes(int64(len(text) - 2*(len(paras)-1)))
			for b.Loop() {
				for _, p := range paras {
					if _, err := tok.Encode(p); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	text := opticks(b)
	for _, name := range []string{"gpt2", "mistral"} {
		tok := fixture(b, name)
		ids, err := tok.Encode(text)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name+"/opticks", func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			for b.Loop() {
				if _, err := tok.Decode(ids); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestOpticksIDs compares the ids of the whole Opticks text with those
// tokenizers.js produced, which bench/tokenizer_compare.sh writes to the
// folder HF_TOKENIZER_IDS names (a run of about a second per tokenizer, so
// opt-in).
func TestOpticksIDs(t *testing.T) {
	dir := os.Getenv("HF_TOKENIZER_IDS")
	if dir == "" {
		t.Skip("HF_TOKENIZER_IDS not set")
	}
	text := opticks(t)
	for _, name := range []string{"gpt2", "llama3", "qwen2", "mistral", "gpt4o"} {
		b, err := os.ReadFile(filepath.Join(dir, name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		var want []int32
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatal(err)
		}
		got, err := fixture(t, name).Encode(text)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			i := 0
			for i < min(len(got), len(want)) && got[i] == want[i] {
				i++
			}
			t.Errorf("%s: %d ids, tokenizers.js %d; first difference at %d", name, len(got), len(want), i)
		}
	}
}

func BenchmarkLoadTokenizer(b *testing.B) {
	for _, name := range []string{"gpt2", "llama3"} {
		dir := fixtureDir(b, name)
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, err := LoadTokenizer(dir); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestOpticksRoundTrip decodes the byte-level encodings of the whole
// Opticks text back to the text.
func TestOpticksRoundTrip(t *testing.T) {
	text := opticks(t)
	for _, name := range []string{"gpt2", "llama3", "gpt4o"} {
		tok := fixture(t, name)
		ids, err := tok.Encode(text)
		if err != nil {
			t.Fatal(err)
		}
		back, err := tok.Decode(ids)
		if err != nil || back != text {
			t.Errorf("%s: %d ids decode to %d bytes of %d, %v", name, len(ids), len(back), len(text), err)
		}
	}
}

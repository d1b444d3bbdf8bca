// Package labtest holds the fixtures of the examples' -model smoke
// tests: a tiny random checkpoint in Hugging Face layout and small JSONL
// data sets, written to a test's temporary directories.
package labtest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/posttrain/posttrain/examples/internal/lab"
	"github.com/posttrain/posttrain/tensor/nn"
)

// Tokenizer is the directory of recipe's test tokenizer (a byte-level
// BPE with ChatML tokens and SmolLM2's chat template), relative to an
// example's directory, where its tests run.
var Tokenizer = filepath.Join("..", "..", "recipe", "testdata", "tok")

// Checkpoint writes a random model of cfg (lab.TinyConfig, say) with
// the test tokenizer to a temporary directory and returns it.
func Checkpoint(t testing.TB, cfg nn.Config, seed uint64) string {
	t.Helper()
	dir := t.TempDir()
	if err := lab.TinyCheckpoint(dir, Tokenizer, cfg, seed); err != nil {
		t.Fatal(err)
	}
	return dir
}

// File writes text to a file named name in a temporary directory and
// returns its path.
func File(t testing.TB, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Chat writes lab.ChatRecords(n) to a JSONL file and returns its path.
func Chat(t testing.TB, n int) string { return File(t, "chat.jsonl", lab.ChatRecords(n)) }

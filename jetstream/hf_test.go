package jetstream

import (
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/posttrain/posttrain/itec"
	"github.com/posttrain/posttrain/tensor/nn"
	"github.com/posttrain/posttrain/tensor/nn/hf"
)

// hfCheckpoint writes a small random Llama-layout model with GPT-2's
// tokenizer (from package hf's test data) as a transformers directory.
func hfCheckpoint(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join("..", "tensor", "nn", "hf", "testdata", "tokenizer", "gpt2")
	zf, err := os.Open(filepath.Join(src, "tokenizer.json.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer zf.Close()
	zr, err := gzip.NewReader(zf)
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(filepath.Join(dir, "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, zr); err != nil {
		t.Fatal(err)
	}
	out.Close()
	cfg, err := os.ReadFile(filepath.Join(src, "tokenizer_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), cfg, 0o644)
	tok, err := hf.LoadTokenizer(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := nn.NewModel(nn.Config{Vocab: tok.VocabSize(), DModel: 16, Layers: 1, Heads: 2, Context: 64, Hidden: 32}, 7)
	if err != nil {
		t.Fatal(err)
	}
	if err := hf.SaveModel(m, dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// A transformers checkpoint directory serves a committee member on a
// worker (HF loader) exactly as the same loader does in process.
func TestHFMember(t *testing.T) {
	dir := hfCheckpoint(t)
	ld := HF{Len: 6, Temperature: 1}
	local, err := ld.Generator(context.Background(), Model{ModelRef: ModelRef{Ref: dir, Dir: true}, File: dir})
	if err != nil {
		t.Fatal(err)
	}
	prompts := []string{"The light", "Colours of the rainbow"}
	committee := []itec.Member{{Name: "hf", Ref: dir, Model: local}}
	want, err := itec.Collect(context.Background(), committee, prompts, itec.SampleOptions{N: 3, Seed: 2, Round: 1, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "")
	ex := open(t, connect(t, s), Options{Run: "hf"})
	serve(t, connect(t, s), "hf", &Worker{Loader: ld, Concurrency: 2})
	got, err := itec.Collect(context.Background(), committee, prompts, itec.SampleOptions{N: 3, Seed: 2, Round: 1, Workers: 2, Executor: ex})
	if err != nil {
		t.Fatal(err)
	}
	for p := range want {
		for i := range want[p] {
			if got[p][i] != want[p][i] {
				t.Fatalf("prompt %d sample %d: worker %+v, in process %+v", p, i, got[p][i], want[p][i])
			}
		}
	}
	t.Logf("%q", got[0][0].Text)
}

package jetstream

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/posttrain/posttrain/itec"
	"github.com/posttrain/posttrain/tensor/nn"
	"github.com/posttrain/posttrain/tensor/nn/hf"
)

// hfCheckpoint writes a small random Llama-layout model with a cut of
// GPT-2's tokenizer (testdata/gen_tokenizer.py) as a transformers
// directory.
func hfCheckpoint(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	b, err := os.ReadFile(filepath.Join("testdata", "tiny-gpt2", "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
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

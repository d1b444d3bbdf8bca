package hf_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/posttrain/posttrain/tensor/nn"
	"github.com/posttrain/posttrain/tensor/nn/hf"
)

// Load a transformers checkpoint (here a tiny random SmolLM2-like one),
// score a sequence and continue it greedily (the float64 PyTorch reference
// of testdata/gen_models.py continues it the same way).
func ExampleLoadModel() {
	m, err := hf.LoadModel("testdata/smol_f32")
	if err != nil {
		log.Fatal(err)
	}
	c := m.Config
	fmt.Printf("%d layers, %d query heads sharing %d key/value heads, tied head: %v\n", c.Layers, c.Heads, c.KVHeads, c.Tied)
	ids := []int32{0, 5, 9, 13}
	logits, err := m.Logits(ids)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("logits shape", logits.Shape())
	out, err := m.Generate(ids, 4, nn.NewSampler(1, 0, 0, 0))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("greedy continuation", out)
	// Output:
	// 3 layers, 6 query heads sharing 2 key/value heads, tied head: true
	// logits shape [4 96]
	// greedy continuation [37 22 75 92]
}

// Save a model in transformers' layout and read it back unchanged.
func ExampleSaveModel() {
	m, err := nn.NewModel(nn.Config{Vocab: 64, DModel: 32, Layers: 2, Heads: 4, KVHeads: 2, Context: 128, Hidden: 64, QKVBias: true, Tied: true}, 1)
	if err != nil {
		log.Fatal(err)
	}
	dir, _ := os.MkdirTemp("", "model")
	defer os.RemoveAll(dir)
	if err := hf.SaveModel(m, dir); err != nil {
		log.Fatal(err)
	}
	names, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, n := range names {
		fmt.Println(filepath.Base(n))
	}
	back, err := hf.LoadModel(dir)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(back.NumParams() == m.NumParams(), back.Params()[1].Var.Value.Data()[0] == m.Params()[1].Var.Value.Data()[0])
	// Output:
	// config.json
	// model.safetensors
	// true true
}

package nn_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/posttrain/posttrain/tensor/autograd"
	"github.com/posttrain/posttrain/tensor/nn"
)

// Train a TinyLM on one line of text, then let it recite the line from its
// first byte with greedy KV-cache decoding.
func Example() {
	var tok nn.ByteTokenizer
	text := tok.Encode("hello, world!")
	in, target := text[:len(text)-1], text[1:]

	m, err := nn.NewTinyLM(nn.Config{Vocab: tok.Vocab(), DModel: 32, Layers: 1, Heads: 2, Context: 16}, 1)
	if err != nil {
		panic(err)
	}
	opt := nn.NewAdamW(m.Params(), 0)
	tp := autograd.NewTape()
	const steps = 35
	sched := nn.CosineSchedule{Warmup: 5, Total: steps, Peak: 1e-2, Floor: 1e-3}
	for step := range steps {
		tp.Reset() // reuse the tape's buffers
		m.ZeroGrad()
		logits, err := m.Forward(tp, in, 1) // [len(in), 256]
		if err != nil {
			panic(err)
		}
		loss, err := tp.CrossEntropy(logits, target)
		if err != nil {
			panic(err)
		}
		tp.Backward(loss, nil)
		opt.LR = sched.LR(step)
		if _, err := opt.Step(); err != nil {
			panic(err)
		}
	}
	out, err := m.Generate(text[:1], len(text)-1, nn.NewSampler(0, 0, 0, 0))
	if err != nil {
		panic(err)
	}
	s, _ := tok.Decode(out)
	fmt.Printf("h%s\n", s)
	// Output: hello, world!
}

// Save a model as safetensors and load it back.
func ExampleLoadTinyLM() {
	m, _ := nn.NewTinyLM(nn.Config{Vocab: 256, DModel: 16, Layers: 2, Heads: 2, Context: 8}, 7)
	dir, _ := os.MkdirTemp("", "tinylm")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "model.safetensors")
	if err := m.Save(path); err != nil {
		panic(err)
	}
	back, err := nn.LoadTinyLM(path)
	if err != nil {
		panic(err)
	}
	fmt.Println(back.Config.Layers, back.NumParams() == m.NumParams())
	// Output: 2 true
}

// A schedule's settings by name: four warmup steps up to the peak, then a
// cosine down to the floor at step 14 (its midpoint, step 9, is halfway
// between peak and floor), and the floor after.
func ExampleCosineSchedule() {
	sched := nn.CosineSchedule{Warmup: 4, Total: 14, Peak: 1, Floor: 0.1}
	for _, step := range []int{0, 1, 3, 9, 14, 20} {
		fmt.Printf("step %2d: %.3f\n", step, sched.LR(step))
	}
	// Output:
	// step  0: 0.250
	// step  1: 0.500
	// step  3: 1.000
	// step  9: 0.550
	// step 14: 0.100
	// step 20: 0.100
}

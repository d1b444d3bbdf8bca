package nn_test

import (
	"fmt"
	"math"
	"slices"

	"github.com/posttrain/posttrain/tensor/autograd"
	"github.com/posttrain/posttrain/tensor/nn"
)

// A reference model held in bfloat16 decodes reading half the bytes; its
// matrices are no longer float32, so it cannot be saved as such. (Per token: 2 layers of 10,240 weights
// and the 2,048 of the head, 4 or 2 bytes each, plus 160 float32 norm
// weights; the embedding is read a row at a time.)
func ExampleModel_FreezeBF16() {
	m, err := nn.NewModel(nn.Config{Vocab: 64, DModel: 32, Layers: 2, Heads: 4, Context: 32}, 1)
	if err != nil {
		panic(err)
	}
	ref := m.Clone()
	before := ref.WeightBytes()
	if err := ref.FreezeBF16(); err != nil {
		panic(err)
	}
	fmt.Printf("weights read per token: %d → %d bytes\n", before, ref.WeightBytes())

	prompt := []int32{1, 2, 3}
	a, _ := m.Generate(prompt, 8, nn.NewSampler(1, 0, 0, 0))
	b, _ := ref.Generate(prompt, 8, nn.NewSampler(1, 0, 0, 0))
	fmt.Println("same greedy tokens:", slices.Equal(a, b))

	fmt.Println(ref.Save("ref.safetensors"))
	// Output:
	// weights read per token: 90752 → 45696 bytes
	// same greedy tokens: true
	// nn: Save: model is frozen in bfloat16 (FreezeBF16): its matrices are not float32
}

// LoRA on a base held in bfloat16 (QLoRA's recipe with bfloat16 storage):
// the base's matrices take half the bytes and never train; the float32
// adapters learn through them as they would on the float32 base.
func ExampleModel_FreezeBF16_lora() {
	var tok nn.ByteTokenizer
	text := tok.Encode("hello, bfloat16!")
	in, target := text[:len(text)-1], text[1:]
	base, err := nn.NewModel(nn.Config{Vocab: tok.Vocab(), DModel: 32, Layers: 1, Heads: 2, Context: 32}, 1)
	if err != nil {
		panic(err)
	}
	// train runs 30 AdamW steps on adapters over every projection and
	// returns the losses.
	train := func(m *nn.Model) []float32 {
		if _, err := m.AddLoRA(nn.LoRAConfig{Rank: 8, Alpha: 16, Targets: nn.LoRAModules}, 2); err != nil {
			panic(err)
		}
		opt := nn.NewAdamW(m.TrainableParams(), 3e-2)
		tp := autograd.NewTape()
		var losses []float32
		for range 30 {
			tp.Reset()
			m.ZeroGrad()
			logits, err := m.Forward(tp, in, 1)
			if err != nil {
				panic(err)
			}
			loss, err := tp.CrossEntropy(logits, target)
			if err != nil {
				panic(err)
			}
			losses = append(losses, loss.Value.Data()[0])
			tp.Backward(loss, nil)
			if _, err := opt.Step(); err != nil {
				panic(err)
			}
		}
		return losses
	}
	frozen, rounded := base.Clone(), base.Clone()
	if err := frozen.FreezeBF16(); err != nil {
		panic(err)
	}
	for _, p := range rounded.Params() { // float32, with the frozen model's values
		if w := p.Var.Value; w.Dims() == 2 {
			copy(w.Data(), w.BF16().Dense().Data())
		}
	}
	b, r, f := train(frozen), train(rounded), train(base)
	same := true
	for i := range b {
		same = same && math.Abs(float64(b[i]-r[i])) <= 1e-4*float64(r[i])
	}
	// Adapters of rank 8: A [8, in] and B [out, 8] on q, k, v, o (32×32)
	// and gate, up (64×32), down (32×64): 4·512 + 3·768.
	fmt.Printf("trainable: %d adapter parameters; float32 parameters left in the base: %d\n",
		frozen.LoRA().NumParams(), frozen.NumParams())
	fmt.Printf("first loss %.1f (log 256), within 1e-3 of the float32 base's: %v\n", b[0], math.Abs(float64(b[0]-f[0])) < 1e-3*float64(f[0]))
	fmt.Printf("loss fell by more than 0.1: %v\n", b[29] < b[0]-0.1)
	// The activations stay exact: the run is the float32 run on the
	// rounded weights, step for step.
	fmt.Printf("every step's loss as on the rounded float32 base: %v\n", same)
	// Output:
	// trainable: 4352 adapter parameters; float32 parameters left in the base: 96
	// first loss 5.5 (log 256), within 1e-3 of the float32 base's: true
	// loss fell by more than 0.1: true
	// every step's loss as on the rounded float32 base: true
}

package nn_test

import (
	"fmt"
	"slices"

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

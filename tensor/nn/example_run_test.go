package nn_test

import (
	"fmt"

	"github.com/posttrain/posttrain/tensor"
	"github.com/posttrain/posttrain/tensor/autograd"
	"github.com/posttrain/posttrain/tensor/nn"
)

// AdamW minimizes (w − 3)² from w = 0. Adam's first step moves each
// parameter by the learning rate whatever the gradient's size (m̂/√v̂ is
// its sign); later steps shrink as the gradient does. Any backward pass
// may fill the gradients: here they are written by hand.
func ExampleAdamW() {
	w := autograd.Param(tensor.New(1))
	opt := nn.NewAdamW([]nn.Named{{Name: "w", Var: w}}, 0.1)
	for step := 1; step <= 300; step++ {
		w.Grad.Data()[0] = 2 * (w.Value.Data()[0] - 3) // d/dw (w − 3)²
		if _, err := opt.Step(); err != nil {
			fmt.Println(err)
			return
		}
		if step == 1 || step == 300 {
			fmt.Printf("step %d: w = %.4f\n", step, w.Value.Data()[0])
		}
	}
	// Output:
	// step 1: w = 0.1000
	// step 300: w = 3.0000
}

// NewSamplerWith names its settings; the zero SamplerOptions is greedy.
func ExampleNewSamplerWith() {
	logits := []float32{0.5, 3, 1, 2.5}
	greedy := nn.NewSamplerWith(1, nn.SamplerOptions{})
	top2 := nn.NewSamplerWith(1, nn.SamplerOptions{Temperature: 1, TopK: 2})
	seen := map[int32]bool{}
	for range 200 {
		id, err := top2.Sample(logits)
		if err != nil {
			fmt.Println(err)
			return
		}
		seen[id] = true
	}
	id, _ := greedy.Sample(logits)
	fmt.Println("greedy:", id, "top-2 draws:", seen)
	// Output: greedy: 1 top-2 draws: map[1:true 3:true]
}

package autograd_test

import (
	"fmt"

	"github.com/posttrain/posttrain/tensor"
	"github.com/posttrain/posttrain/tensor/autograd"
)

// A linear model y = x·wᵀ with a gradient seeded from outside, as a fused
// loss would give it.
func Example() {
	w := autograd.Param(tensor.FromSlice([]float32{1, 2, 3}, 1, 3))
	x := autograd.Const(tensor.FromSlice([]float32{1, 0, -1, 2, 1, 0}, 2, 3))
	tp := autograd.NewTape()
	y := tp.MatMulT(x, w) // [2, 1]
	fmt.Println("y:", y.Value.Data())
	tp.Backward(y, tensor.FromSlice([]float32{1, -1}, 2, 1)) // dLoss/dy
	fmt.Println("dL/dw:", w.Grad.Data())
	// Output:
	// y: [-2 4]
	// dL/dw: [-1 -1 -1]
}

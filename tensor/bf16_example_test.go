package tensor_test

import (
	"fmt"

	"github.com/posttrain/posttrain/tensor"
)

// A frozen layer held in bfloat16: weights [out, in] as a checkpoint
// stores them, one token's activations through MatVecBF16, a batch through
// GemmMixed.
func ExampleMatVecBF16() {
	w := tensor.FromSlice([]float32{
		1, 2, 3,
		0.5, -1, 3.140625, // 3.140625 is a bfloat16; 3.14159 would round to it
	}, 2, 3).BF16()
	x := []float32{1, 1, 2}
	y := make([]float32, 2)
	tensor.MatVecBF16(y, w, x)
	fmt.Println(y)

	xs := tensor.FromSlice([]float32{1, 1, 2, 0, 1, 0}, 2, 3) // two tokens
	ys := tensor.New(2, 2)
	tensor.GemmMixed(false, true, 1, xs, w, 0, ys) // ys = xs·wᵀ
	fmt.Println(ys.Data())
	// Output:
	// [9 5.78125]
	// [9 5.78125 2 -1]
}

// Dense.BF16 rounds to the nearest bfloat16 (8 significant bits); Dense
// widens back exactly.
func ExampleDense_BF16() {
	x := tensor.FromSlice([]float32{3.14159, 1e-3, 65504}, 3)
	fmt.Println(x.BF16().Dense().Data())
	// Output:
	// [3.140625 0.0009994507 65536]
}

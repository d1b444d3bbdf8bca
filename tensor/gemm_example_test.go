package tensor_test

import (
	"fmt"

	"github.com/posttrain/posttrain/tensor"
)

func ExampleMatMul() {
	a := tensor.FromSlice([]float32{1, 2, 3, 4, 5, 6}, 2, 3) // 2×3
	b := tensor.FromSlice([]float32{1, 0, 0, 1, 1, 1}, 3, 2) // 3×2
	c := tensor.New(2, 2)
	tensor.MatMul(c, a, b)
	fmt.Println(c.Data())
	// Output: [4 5 10 11]
}

// A linear layer stores its weight as [out, in], so y = x·Wᵀ: Gemm
// transposes W while packing it, without a copy.
func ExampleGemm() {
	x := tensor.FromSlice([]float32{1, 2, 3}, 1, 3)           // one input row
	w := tensor.FromSlice([]float32{1, 1, 1, 0, 1, -1}, 2, 3) // 2 outputs × 3 inputs
	y := tensor.FromSlice([]float32{10, 20}, 1, 2)            // bias, kept by beta = 1
	tensor.Gemm(false, true, 1, x, w, 1, y)
	fmt.Println(y.Data())
	// Output: [16 19]
}

func ExampleBatchedMatMul() {
	// Two independent 1×2 · 2×1 products, as attention does per head.
	q := tensor.FromSlice([]float32{1, 2, 3, 4}, 2, 1, 2)
	k := tensor.FromSlice([]float32{1, 1, 2, 0}, 2, 2, 1)
	s := tensor.New(2, 1, 1)
	tensor.BatchedMatMul(s, q, k)
	fmt.Println(s.Data())
	// Output: [3 6]
}

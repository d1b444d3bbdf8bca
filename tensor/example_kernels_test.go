package tensor_test

import (
	"fmt"

	"github.com/posttrain/posttrain/tensor"
)

// Softmax subtracts the maximum first, so logits of any magnitude give
// the same probabilities as their shifts.
func ExampleSoftmax() {
	p := make([]float32, 3)
	tensor.Softmax(p, []float32{1, 2, 3})
	fmt.Printf("%.4f\n", p)
	tensor.Softmax(p, []float32{1001, 1002, 1003}) // exp(1001) overflows float32
	fmt.Printf("%.4f\n", p)
	// Output:
	// [0.0900 0.2447 0.6652]
	// [0.0900 0.2447 0.6652]
}

// LogSoftmax gives log-probabilities without forming the probabilities:
// x − max − log Σ exp(x − max).
func ExampleLogSoftmax() {
	lp := make([]float32, 3)
	tensor.LogSoftmax(lp, []float32{1, 2, 3})
	fmt.Printf("%.4f\n", lp)
	tensor.LogSoftmax(lp, []float32{-1e4, 0, 1e4})
	fmt.Printf("%.4f\n", lp)
	// Output:
	// [-2.4076 -1.4076 -0.4076]
	// [-20000.0000 -10000.0000 0.0000]
}

// TopK returns the largest elements in descending order, ties by lower
// index first; TopKTo does the same into caller-owned slices.
func ExampleTopK() {
	idx, val := tensor.TopK([]float32{0.1, 0.7, 0.2, 0.7, -1}, 3)
	fmt.Println(idx, val)
	// Output: [1 3 2] [0.7 0.7 0.2]
}

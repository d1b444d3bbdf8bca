package distill_test

import (
	"fmt"
	"math"

	"github.com/posttrain/posttrain/distill"
	"github.com/posttrain/posttrain/tensor"
)

// Sparse names SparseKL's settings. With the leftover kept as a bucket the
// teacher's (0.6, 0.2, leftover 0.2) meets a uniform student's (0.2, 0.2,
// 0.6 off the support): KL = 0.6·ln 3 + 0.2·ln(1/3) = 0.4·ln 3.
func ExampleSparse() {
	teacher := distill.TopK{
		IDs:      []int32{0, 1},
		LogProbs: []float32{float32(math.Log(0.6)), float32(math.Log(0.2))},
		K:        2,
	}
	loss, err := distill.Sparse{Leftover: distill.Bucket, Alpha: 1}.Loss(nil, tensor.New(1, 5), nil, teacher)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("loss %.4f = 0.4·ln 3 = %.4f\n", loss, 0.4*math.Log(3))
	// Output: loss 0.4394 = 0.4·ln 3 = 0.4394
}

package distill_test

import (
	"fmt"

	"github.com/posttrain/posttrain/distill"
	"github.com/posttrain/posttrain/tensor"
)

// Two tokens over a four-word vocabulary. For the first, the true next
// token is 0 and the teacher predicts 1; for the second, both say 3.
func ExampleConvexCombination() {
	logits := tensor.FromSlice([]float32{
		2, 1, 0.5, 0,
		0, 0, 0, 0,
	}, 2, 4)
	labels := []int32{0, 3}
	teacherTop1 := []int32{1, 3}
	grad := tensor.New(2, 4)

	loss, err := distill.ConvexCombination(grad, logits, labels, teacherTop1, distill.DefaultTeacherWeight)
	if err != nil {
		panic(err)
	}
	fmt.Printf("loss %.4f\n", loss)
	for i := range 2 {
		fmt.Printf("grad row %d: %.4f\n", i, grad.Row(i))
	}
	// Output:
	// loss 1.4162
	// grad row 0: [0.2396 -0.3435 0.0646 0.0392]
	// grad row 1: [0.1250 0.1250 0.1250 -0.3750]
}

// With w = 0 the loss is plain cross-entropy, and no teacher is needed.
// A negative label ignores its row.
func ExampleCrossEntropy() {
	logits := tensor.FromSlice([]float32{
		0, 0, 0, 0,
		9, 9, 9, 9,
	}, 2, 4)
	loss, err := distill.CrossEntropy(nil, logits, []int32{2, -100})
	if err != nil {
		panic(err)
	}
	fmt.Printf("loss %.4f (log 4 = 1.3863)\n", loss)
	// Output:
	// loss 1.3863 (log 4 = 1.3863)
}

// Bad data is an error that names the input, never a panic or a NaN loss.
func ExampleConvexCombination_errors() {
	logits := tensor.New(2, 4)
	_, err := distill.ConvexCombination(nil, logits, []int32{0, 4}, []int32{1, 1}, 0.9)
	fmt.Println(err)
	// Output:
	// distill: ConvexCombination: labels[1] = 4 outside [0, 4)
}

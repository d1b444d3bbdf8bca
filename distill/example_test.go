package distill_test

import (
	"fmt"
	"math"

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

// Sparse distillation from a teacher's stored top-2: probabilities 0.6
// and 0.2 on tokens 0 and 1. Dropping the leftover 0.2 renormalizes them
// to 0.75 and 0.25; the student, uniform over the same two tokens, pays
// KL = 0.75·ln 1.5 + 0.25·ln 0.5.
func ExampleSparseKL() {
	logits := tensor.New(1, 5) // a uniform student
	teacher := distill.TopK{
		IDs:      []int32{0, 1},
		LogProbs: []float32{float32(math.Log(0.6)), float32(math.Log(0.2))},
		K:        2,
	}
	grad := tensor.New(1, 5)
	loss, err := distill.SparseKL(grad, logits, nil, teacher, distill.Drop, 1)
	if err != nil {
		panic(err)
	}
	fmt.Printf("drop:   loss %.4f grad %.2f\n", loss, grad.Data())

	// Keeping the leftover as a bucket compares 0.6, 0.2 and 0.2 with the
	// student's 0.2, 0.2 and 0.6 (its three other tokens).
	loss, err = distill.SparseKL(grad, logits, nil, teacher, distill.Bucket, 1)
	if err != nil {
		panic(err)
	}
	fmt.Printf("bucket: loss %.4f grad %.2f\n", loss, grad.Data())
	// Output:
	// drop:   loss 0.1308 grad [-0.25 0.25 0.00 0.00 0.00]
	// bucket: loss 0.4394 grad [-0.40 0.00 0.13 0.13 0.13]
}

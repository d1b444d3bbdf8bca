package distill_test

import (
	"fmt"

	"github.com/posttrain/posttrain/distill"
	"github.com/posttrain/posttrain/tensor"
)

// One GKD step: a coin with probability λ decides whether the student
// generates the completions; then the teacher scores them and the loss is
// the reverse KL (β = 1) at the completion positions. The prompt rows
// (label −100) are ignored.
func ExampleGKD() {
	gkd := distill.GKD{Lambda: 0.5, Beta: 1, Temperature: 1, Seed: 7}
	var onPolicy []bool
	for step := range 4 {
		onPolicy = append(onPolicy, gkd.OnPolicy(step))
	}
	fmt.Println("on-policy steps:", onPolicy)
	student := tensor.FromSlice([]float32{
		0, 0, 0, // prompt position
		2, 0, 0,
		0, 1, 3,
	}, 3, 3)
	teacher := tensor.FromSlice([]float32{
		5, 0, 0,
		2, 0, 0,
		0, 3, 1,
	}, 3, 3)
	grad := tensor.New(3, 3)
	loss, err := gkd.Loss(grad, student, teacher, []int32{-100, 0, 2})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("loss %.4f\n", loss)
	for i := range 3 {
		fmt.Printf("grad row %d: %.4f\n", i, grad.Row(i))
	}
	// Output:
	// on-policy steps: [false true true false]
	// loss 0.7296
	// grad row 0: [0.0000 0.0000 0.0000]
	// grad row 1: [0.0000 0.0000 0.0000]
	// grad row 2: [-0.0307 -0.1975 0.2282]
}

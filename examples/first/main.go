// Command first is the README's first program: one distillation loss and
// one DPO loss, their gradients, and an error naming bad input.
package main

import (
	"fmt"
	"log"

	"github.com/posttrain/posttrain/distill"
	"github.com/posttrain/posttrain/prefopt"
	"github.com/posttrain/posttrain/tensor"
)

func main() {
	// Distillation: logits of two tokens over a vocabulary of four, the
	// true next tokens and the teacher's top-1 guesses.
	logits := tensor.FromSlice([]float32{
		2, 1, 0, -1,
		0, 3, 1, 0,
	}, 2, 4)
	labels := []int32{0, 2}
	teacherTop1 := []int32{0, 1}
	grad := tensor.New(2, 4) // dLoss/dlogits lands here
	loss, err := distill.ConvexCombination(grad, logits, labels, teacherTop1, distill.DefaultTeacherWeight)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("distillation loss %.4f, gradient row 1 %.3f\n", loss, grad.Row(1))

	// DPO on summed completion log-probs of two preference pairs.
	res, err := prefopt.DPO{Beta: 0.1}.Loss(prefopt.Batch{
		PolicyChosen: []float64{-12, -30}, PolicyRejected: []float64{-15, -28},
		RefChosen: []float64{-13, -31}, RefRejected: []float64{-14, -29},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("DPO loss %.4f, accuracy %.2f, dLoss/dchosen %.4f\n", res.Loss, res.Stats.Accuracy, res.GradChosen)

	// Bad data is an error naming the input, never a NaN loss.
	_, err = distill.ConvexCombination(grad, logits, []int32{0, 9}, teacherTop1, 0.9)
	fmt.Println(err)
}

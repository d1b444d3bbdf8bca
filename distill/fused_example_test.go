package distill_test

import (
	"context"
	"fmt"

	"github.com/posttrain/posttrain/distill"
	"github.com/posttrain/posttrain/tensor"
)

// The cross-entropy of an LM head without its logits. One position with
// hidden state h = (1, 0) and a head W whose rows give the logits
// z = (2, 0, −1): with label 0 the loss is log(1 + e⁻² + e⁻³) = 0.16985,
// the gradient on the logits is softmax(z) − onehot(0) =
// (−0.15621, 0.11420, 0.04201), and dL/dh = that·W = (−0.35442, 0).
func ExampleFused_CrossEntropy() {
	head := distill.Head{
		H: tensor.FromSlice([]float32{1, 0}, 1, 2),
		W: tensor.FromSlice([]float32{2, 0, 0, 0, -1, 0}, 3, 2),
	}
	grad := distill.HeadGrad{H: tensor.New(1, 2), W: tensor.New(3, 2)}
	var f distill.Fused
	loss, err := f.CrossEntropy(context.Background(), grad, head, []int32{0})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("loss %.5f\n", loss)
	fmt.Printf("dL/dh %.5f\n", grad.H.Data())
	fmt.Printf("dL/dW column 0 %.5f\n", []float32{grad.W.Data()[0], grad.W.Data()[2], grad.W.Data()[4]})
	// Output:
	// loss 0.16985
	// dL/dh [-0.35442 0.00000]
	// dL/dW column 0 [-0.15621 0.11420 0.04201]
}

package prefopt_test

import (
	"context"
	"fmt"

	"github.com/posttrain/posttrain/prefopt"
	"github.com/posttrain/posttrain/tensor"
)

// Per-token log-probs from an LM head, and their backward pass, without
// the logits. Position 0 has hidden state (1, 0), so logits (2, 0, −1):
// log p(0) = −log(1 + e⁻² + e⁻³) = −0.16985. Position 1 is a prompt
// token (label Ignore): log-prob 0, zero gradient. With dL/dlogp = 1 the
// gradient on the logits is onehot(0) − softmax(z), and dL/dh is that·W.
func ExampleFused_TokenLogProbs() {
	head := prefopt.Head{
		H: tensor.FromSlice([]float32{1, 0, 0, 1}, 2, 2),
		W: tensor.FromSlice([]float32{2, 0, 0, 0, -1, 0}, 3, 2),
	}
	labels := []int32{0, prefopt.Ignore}
	var f prefopt.Fused
	logp := make([]float32, 2)
	if err := f.TokenLogProbs(context.Background(), logp, head, labels); err != nil {
		fmt.Println(err)
		return
	}
	grad := prefopt.HeadGrad{H: tensor.New(2, 2), W: tensor.New(3, 2)}
	if err := f.TokenLogProbsBackward(context.Background(), grad, head, labels, []float32{1, 1}); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("log-probs %.5f\n", logp)
	fmt.Printf("dL/dh %.5f\n", grad.H.Data())
	// Output:
	// log-probs [-0.16985 0.00000]
	// dL/dh [0.35442 0.00000 0.00000 0.00000]
}

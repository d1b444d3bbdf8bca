package prefopt_test

import (
	"fmt"

	"github.com/posttrain/posttrain/prefopt"
)

// AFM's soft-label ranking loss on two pairs the reward model cannot yet
// tell apart (equal rewards): the gradient pushes the chosen reward up by
// p_ℓ − ½, more for the stronger preference.
func ExampleSoftRanking() {
	res, err := prefopt.SoftRanking(
		[]float64{0, 0}, // reward-model scores of the chosen responses
		[]float64{0, 0}, // and of the rejected ones
		[]prefopt.Level{prefopt.SignificantlyBetter, prefopt.NegligiblyBetter},
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("loss %.4f\n", res.Loss) // log 2: σ(0) = ½ whatever the label
	fmt.Printf("dL/dchosen %.3f, dL/drejected %.3f\n", res.GradChosen, res.GradRejected)
	// Output:
	// loss 0.6931
	// dL/dchosen [-0.225 -0.075], dL/drejected [0.225 0.075]
}

// The Bradley–Terry reward-model loss −log σ(r_c − r_r): the first pair is
// ranked right, the second wrong.
func ExampleBradleyTerry() {
	res, err := prefopt.BradleyTerry([]float64{2, 0}, []float64{0, 1}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("loss %.4f, accuracy %.2f\n", res.Loss, res.Stats.Accuracy)
	fmt.Printf("dL/dchosen %.4f\n", res.GradChosen)
	// Output:
	// loss 0.7201, accuracy 0.50
	// dL/dchosen [-0.0596 -0.3655]
}

// GRPO normalizes rewards within each prompt's group of k samples; a group
// whose samples all scored the same teaches nothing.
func ExampleGRPO() {
	rewards := []float64{
		1, 0, 0, 1, // prompt 1: two good samples, two bad
		3, 3, 3, 3, // prompt 2: all equal
	}
	adv, err := prefopt.GRPO(rewards, 4, 1e-4)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%.4f\n", adv)
	// Output: [0.8659 -0.8659 -0.8659 0.8659 0.0000 0.0000 0.0000 0.0000]
}

// PPO-clip stops the gradient of a sample whose ratio has left [1−ε, 1+ε]
// in the direction its advantage pushes.
func ExamplePPOClip() {
	old := []float64{-2, -2, -2}
	logp := []float64{-2, -1.5, -2.5} // ratios 1, e^0.5 ≈ 1.65, e^−0.5 ≈ 0.61
	adv := []float64{1, 1, -1}
	// L = −(1 + min(1.65, 1.2) + min(−0.61, −0.8))/3 = −(1 + 1.2 − 0.8)/3:
	// the last two terms are clipped and pass no gradient.
	res, err := prefopt.PPOClip(logp, old, adv, 0.2)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("loss %.4f, clipped %.3f\n", res.Loss, res.ClipFrac)
	fmt.Printf("dL/dlogp %.4f\n", res.Grad)
	// Output:
	// loss -0.4667, clipped 0.667
	// dL/dlogp [-0.3333 0.0000 0.0000]
}

package prefopt_test

import (
	"fmt"
	"os"

	"github.com/posttrain/posttrain/prefopt"
	"github.com/posttrain/posttrain/tensor"
)

// DPO on torchtune's three test pairs: the first has no preference margin
// yet (loss log 2), the others already favor the chosen response.
func ExampleDPO() {
	b := prefopt.Batch{
		PolicyChosen:   []float64{-0.5, -10, -1},
		PolicyRejected: []float64{-0.1, -30, -21},
		RefChosen:      []float64{-0.5, -10.1, -0.1},
		RefRejected:    []float64{-0.1, -20.1, -0.1},
	}
	r, err := prefopt.DPO{Beta: 0.1}.Loss(b)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("loss %.6f\n", r.Loss)
	fmt.Printf("dL/dchosen %.4f\n", r.GradChosen)
	fmt.Printf("rewards/chosen %.4f rewards/rejected %.4f accuracy %.3f\n",
		r.Stats.RewardsChosen, r.Stats.RewardsRejected, r.Stats.Accuracy)
	// Output:
	// loss 0.377779
	// dL/dchosen [-0.0167 -0.0090 -0.0040]
	// rewards/chosen -0.0267 rewards/rejected -1.0267 accuracy 0.667
}

// Llama 3.1's recipe: DPO plus 0.2 times the per-token NLL of the chosen
// responses.
func ExampleWithNLL() {
	b := prefopt.Batch{
		PolicyChosen:   []float64{-12, -30},
		PolicyRejected: []float64{-15, -28},
		RefChosen:      []float64{-13, -29},
		RefRejected:    []float64{-14, -29},
		ChosenLen:      []int{6, 14},
	}
	o := prefopt.WithNLL{Objective: prefopt.DPO{Beta: 0.1}, Alpha: prefopt.Llama31Alpha}
	r, err := o.Loss(b)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("loss %.4f, nll %.2f\n", r.Loss, r.Stats.NLL)
	// Output:
	// loss 1.1181, nll 2.10
}

// RLOO: four sampled responses to each of two prompts, scored by a reward
// model; each response's baseline is the mean reward of the other three.
func ExampleLeaveOneOut() {
	rewards := []float64{
		1, 0, 0, 3, // prompt 1
		2, 2, 2, 2, // prompt 2: no signal, zero advantages
	}
	adv, err := prefopt.LeaveOneOut(rewards, 4)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(adv)
	// The policy-gradient surrogate on summed log-probs of the responses.
	logp := []float64{-20, -25, -22, -18, -30, -31, -29, -30}
	pg, err := prefopt.Reinforce(logp, adv, make([]float64, len(adv)))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(pg.Grad)
	// Output:
	// [0 -1.3333333333333333 -1.3333333333333333 2.6666666666666665 0 0 0 0]
	// [0 0.16666666666666666 0.16666666666666666 -0.3333333333333333 0 0 0 0]
}

// From logits to a DPO gradient on the logits: targets from a padded
// layout, per-token log-probs, per-sequence sums, the objective, and back.
func ExampleTokenLogProbs() {
	const vocab = 4
	// Two sequences of width 4: chosen = prompt [1] + completion [2 3];
	// rejected = prompt [1] + completion [0 0 3].
	l := prefopt.Layout{Width: 4, PromptLen: []int{1, 1}, Len: []int{3, 4}}
	tokens := []int32{1, 2, 3, 0, 1, 0, 0, 3}
	labels := make([]int32, l.Size())
	if err := l.Labels(labels, tokens); err != nil {
		fmt.Println(err)
		return
	}
	logits := tensor.New(l.Size(), vocab) // a uniform model
	tok := make([]float32, l.Size())
	if err := prefopt.TokenLogProbs(tok, logits, labels); err != nil {
		fmt.Println(err)
		return
	}
	seq := make([]float64, 2)
	if err := prefopt.SequenceLogProbs(seq, tok, l, false); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("labels %v\nlog-probs %.4f\n", labels, seq)

	// SimPO needs no reference model; chain its gradient back to the logits.
	c := l.CompletionLen()
	r, err := prefopt.SimPO{Beta: 2, Gamma: 0.5}.Loss(prefopt.Batch{
		PolicyChosen: seq[:1], PolicyRejected: seq[1:], ChosenLen: c[:1], RejectedLen: c[1:],
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	dTok := make([]float32, l.Size())
	if err := prefopt.SequenceLogProbsBackward(dTok, []float64{r.GradChosen[0], r.GradRejected[0]}, l, false); err != nil {
		fmt.Println(err)
		return
	}
	grad := tensor.New(l.Size(), vocab)
	if err := prefopt.TokenLogProbsBackward(grad, logits, labels, dTok); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("loss %.4f\nrow 0 gradient %.4f\n", r.Loss, grad.Row(0))
	// Output:
	// labels [2 3 -100 -100 0 0 3 -100]
	// log-probs [-2.7726 -4.1589]
	// loss 0.9741
	// row 0 gradient [0.1556 0.1556 -0.4668 0.1556]
}

// Writing preference pairs as JSONL, as the iTeC rounds do.
func ExampleWriter() {
	w := prefopt.NewWriter(os.Stdout)
	w.Write(prefopt.Pair{Prompt: "Capital of France?", Chosen: "Paris.", Rejected: "Lyon.", Level: prefopt.SignificantlyBetter})
	w.Write(prefopt.Pair{Prompt: "Say hi", Chosen: "Hi!", Rejected: "Hello."})
	// Output:
	// {"prompt":"Capital of France?","chosen":"Paris.","rejected":"Lyon.","level":"significantly_better"}
	// {"prompt":"Say hi","chosen":"Hi!","rejected":"Hello."}
}

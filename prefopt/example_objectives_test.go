package prefopt_test

import (
	"fmt"

	"github.com/posttrain/posttrain/prefopt"
)

// MPO, TRL's loss_type=["sigmoid", "bco_pair", "sft"] with
// loss_weights=[0.8, 0.2, 1.0]: one Mix of three objectives. BCOPair keeps
// its running reward shift across calls, so it goes in by pointer.
func ExampleMix() {
	b := prefopt.Batch{
		PolicyChosen:   []float64{-12, -30},
		PolicyRejected: []float64{-15, -28},
		RefChosen:      []float64{-13, -29},
		RefRejected:    []float64{-14, -29},
		ChosenLen:      []int{6, 14},
	}
	bco := &prefopt.BCOPair{Beta: 0.1}
	mpo := prefopt.Mix{
		{Objective: prefopt.DPO{Beta: 0.1}, Weight: 0.8},
		{Objective: bco, Weight: 0.2},
		{Objective: prefopt.SFT{}, Weight: 1},
	}
	r, err := mpo.Loss(b)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("loss %.4f, nll %.2f, shift δ %.3f after %d batch\n", r.Loss, r.Stats.NLL, bco.Shift.Mean, bco.Shift.Count)
	// Output:
	// loss 2.9363, nll 2.10, shift δ 0.000 after 1 batch
}

// KTO on four thumbs-up/thumbs-down completions. The reference point z₀
// comes from the same completions paired with the wrong prompts
// (KLCompletions rotates them by one).
func ExampleKTO() {
	completions := []string{"Paris.", "Lyon, obviously.", "4", "five"}
	fmt.Println(prefopt.KLCompletions(completions))
	b := prefopt.KTOBatch{
		Policy:    []float64{-3, -9, -1.5, -6},
		Ref:       []float64{-4, -8, -2, -5},
		Desirable: []bool{true, false, true, false},
		PolicyKL:  []float64{-20, -25, -18, -22}, // the rotated pairs, scored by both models
		RefKL:     []float64{-21, -25, -18.5, -22},
	}
	r, err := prefopt.KTO{Beta: 0.1, DesirableWeight: 1, UndesirableWeight: 1}.Loss(b)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("loss %.4f, kl %.3f, rewards/chosen %.3f, rewards/rejected %.3f\n",
		r.Loss, r.KL, r.Stats.RewardsChosen, r.Stats.RewardsRejected)
	// Output:
	// [five Paris. Lyon, obviously. 4]
	// loss 0.4782, kl 0.375, rewards/chosen 0.075, rewards/rejected -0.100
}

// DAPO: rewards from two reward functions, weighted; groups whose
// completions all scored the same carry no signal and are dropped; the
// rest get group-normalized advantages and the token-level loss with
// clip-higher.
func ExampleGRPOLoss() {
	correct := []float64{1, 0, 1, 1, 1, 1} // two prompts, three completions each
	format := []float64{1, 1, 0, 1, 1, 1}
	rewards, _ := prefopt.WeightedRewards([][]float64{correct, format}, []float64{1, 0.1})
	keep, _ := prefopt.DynamicSampling(rewards, 3)
	fmt.Println("groups kept:", keep)
	adv, _ := prefopt.GroupAdvantages(rewards[:3], 3, prefopt.ScaleGroup)
	r := prefopt.Rollout{
		Logp:    []float64{-0.5, -1.2, -2.0, -0.1, -0.3, -0.7}, // 2 + 1 + 3 tokens
		OldLogp: []float64{-0.6, -1.2, -1.5, -0.1, -0.2, -0.9},
		Len:     []int{2, 1, 3},
		Adv:     adv,
	}
	res, err := prefopt.GRPOLoss{Type: prefopt.LossDAPO, EpsLow: 0.2, EpsHigh: 0.28}.Loss(r)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("advantages %.3f\nloss %.4f, clipped %.3f\n", adv, res.Loss, res.ClipRegion)
	// Output:
	// groups kept: [0]
	// advantages [0.666 -1.150 0.484]
	// loss -0.3325, clipped 0.167
}

// ORPO needs no reference model: the NLL of the chosen responses plus β
// times the odds-ratio penalty on length-averaged log-probs. The second
// chosen response is nearly certain (−0.001 nats a token), where the odds
// p/(1−p) are computed through log(−expm1(a)) without losing precision.
func ExampleORPO() {
	b := prefopt.Batch{
		PolicyChosen:   []float64{-12, -0.004},
		PolicyRejected: []float64{-15, -28},
		ChosenLen:      []int{6, 4},
		RejectedLen:    []int{5, 7},
	}
	r, err := prefopt.ORPO{Beta: 0.1}.Loss(b)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("loss %.4f, nll %.4f, log_odds_chosen %.3f, log_odds_ratio %.4f\n",
		r.Loss, r.Stats.NLL, r.Stats.LogOddsChosen, r.Stats.LogOddsRatio)
	// Output:
	// loss 1.2148, nll 1.2004, log_odds_chosen 5.992, log_odds_ratio -0.1444
}

package recipe

import (
	"context"
	"math"
	"testing"

	"github.com/posttrain/posttrain/prefopt"
	"github.com/posttrain/posttrain/tensor/autograd"
	"github.com/posttrain/posttrain/tensor/nn"
)

// TestReward: the trainer's gradient through head and LoRA body matches
// finite differences of the Bradley–Terry loss on Scores, and training
// learns a token-presence preference.
func TestReward(t *testing.T) {
	m, a := loraModel(t, 0)
	rm := NewRewardModel(m, 1)
	pairs := randomPairs(3, 21)
	r := &Reward{Model: rm, Config: Config{Steps: 1, Batch: 3, LR: 1e-3}}
	bt := func() float64 {
		s, _ := pairSeqs(pairs, 0)
		sc, err := rm.Scores(s)
		if err != nil {
			t.Fatal(err)
		}
		res, err := prefopt.BradleyTerry(sc[:3], sc[3:], nil)
		if err != nil {
			t.Fatal(err)
		}
		return res.Loss
	}
	r.train, r.tape = pairs, autograd.NewTape()
	for _, p := range rm.Params() {
		p.Var.ZeroGrad()
	}
	met, _, err := r.micro(context.Background(), []int{0, 1, 2}, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(met["loss"]-bt()) > 1e-6 {
		t.Fatalf("loss %v, Scores give %v", met["loss"], bt())
	}
	fdCheck(t, append(a.Params()[:4], rm.Params()[len(rm.Params())-1]), bt)

	// Chosen completions contain token 7, rejected ones never do.
	body, _ := nn.NewModel(testConfig, 2)
	train := randomPairs(16, 22)
	for i := range train {
		train[i].Chosen[0] = 7
		for j, x := range train[i].Rejected {
			if x == 7 {
				train[i].Rejected[j] = 8
			}
		}
		train[i].Level = prefopt.Better
	}
	for _, loss := range []RankingLoss{BradleyTerry, SoftRanking} {
		rm := NewRewardModel(body.Clone(), 3)
		rm.Pool = MeanCompletion
		tr := &Reward{Model: rm, Loss: loss, Config: Config{Steps: 30, Batch: 8, LR: 3e-3, EvalEvery: 30}}
		h, err := tr.Train(context.Background(), train, train)
		if err != nil {
			t.Fatal(err)
		}
		if acc, _ := h.Last("eval_accuracy"); acc < 0.9 {
			t.Errorf("loss %d: accuracy %v after training", loss, acc)
		}
	}
}

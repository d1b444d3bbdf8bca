package recipe

import (
	"context"
	"math"
	"slices"
	"testing"

	"github.com/posttrain/posttrain/mirrordescent"
	"github.com/posttrain/posttrain/prefopt"
	"github.com/posttrain/posttrain/tensor/nn"
)

// TestBackwardTokens: a token-level gradient equal to the sequence-level
// one repeated over each sequence's tokens gives the same parameter
// gradient as Backward, and TokenLogProbs sums to the sequence log-probs.
func TestBackwardTokens(t *testing.T) {
	pairs := randomPairs(3, 31)
	s, _ := pairSeqs(pairs, 0)
	run := func(tokens bool) []float32 {
		m, a := loraModel(t, 0)
		sc := NewScorer(m)
		m.ZeroGrad()
		lp, err := sc.Forward(s)
		if err != nil {
			t.Fatal(err)
		}
		tok := sc.TokenLogProbs()
		d := make([]float64, len(lp))
		for i := range d {
			d[i] = float64(i+1) / 7
		}
		if tokens {
			var dt []float64
			k := 0
			for b, n := range s.Layout.CompletionLen() {
				var sum float64
				for range n {
					dt = append(dt, d[b])
					sum += tok[k]
					k++
				}
				if math.Abs(sum-lp[b]) > 1e-9 {
					t.Fatalf("sequence %d: tokens sum to %v, log-prob %v", b, sum, lp[b])
				}
			}
			if err := sc.BackwardTokens(dt); err != nil {
				t.Fatal(err)
			}
		} else if err := sc.Backward(d); err != nil {
			t.Fatal(err)
		}
		var g []float32
		for _, p := range a.Params() {
			g = append(g, p.Var.Grad.Data()...)
		}
		return g
	}
	x, y := run(false), run(true)
	for i := range x {
		if math.Abs(float64(x[i]-y[i])) > 1e-6+1e-5*math.Abs(float64(x[i])) {
			t.Fatalf("gradient %d: %v from Backward, %v from BackwardTokens", i, x[i], y[i])
		}
	}
}

// TestOnline: every algorithm raises the mean reward of a task whose
// reward is the fraction of completion tokens equal to 5, and a run is a
// function of its seed.
func TestOnline(t *testing.T) {
	cfg := nn.Config{Vocab: 12, DModel: 16, Layers: 1, Heads: 2, Context: 16, Hidden: 24}
	prompts := [][]int32{{1, 2}, {3}, {4, 4, 2}, {7}}
	reward := func(ctx context.Context, p []int32, cs [][]int32) ([]float64, error) {
		out := make([]float64, len(cs))
		for i, c := range cs {
			for _, x := range c {
				if x == 5 {
					out[i]++
				}
			}
			out[i] /= float64(len(c))
		}
		return out, nil
	}
	md := mirrordescent.DefaultMDLOO()
	for _, c := range []struct {
		name string
		algo Algorithm
	}{
		{"GRPO", GRPO{Loss: prefopt.GRPOLoss{Type: prefopt.LossGRPO, EpsLow: 0.2, Beta: 0.01}}},
		{"RLOO", RLOO{Beta: 0.01}},
		{"PPO", PPO{Eps: 0.2, Beta: 0.01, Epochs: 2}},
		{"MDLOO", MDLOO{md}},
	} {
		t.Run(c.name, func(t *testing.T) {
			run := func() History {
				m, _ := nn.NewModel(cfg, 4)
				o := &Online{Policy: m, Ref: m.Clone(), Reward: reward, Algorithm: c.algo, K: 4, Sampling: Sampling{MaxTokens: 6, Temperature: 1},
					Config: Config{Steps: 40, Batch: 4, LR: 0.03, MinLR: 0.03, Seed: 9}}
				h, err := o.Train(context.Background(), prompts)
				if err != nil {
					t.Fatal(err)
				}
				return h
			}
			h := run()
			var first, last float64
			for i := range 5 {
				first += h[i].Metrics["reward"] / 5
				last += h[len(h)-1-i].Metrics["reward"] / 5
			}
			t.Logf("mean reward %.3f over the first 5 steps, %.3f over the last 5", first, last)
			if last < 2*first {
				t.Errorf("reward %v at the start, %v at the end", first, last)
			}
			h2 := run()
			for i := range h {
				if !slices.Equal([]float64{h[i].Metrics["loss"], h[i].Metrics["reward"]}, []float64{h2[i].Metrics["loss"], h2[i].Metrics["reward"]}) {
					t.Fatalf("step %d differs between two runs with one seed", i+1)
				}
			}
		})
	}
}

package recipe_test

import (
	"context"
	"fmt"
	"math"
	"strings"

	"github.com/posttrain/posttrain/prefopt"
	"github.com/posttrain/posttrain/recipe"
	"github.com/posttrain/posttrain/tensor/nn"
)

// tiny is a byte-level model small enough for an example to train in
// well under a second.
var tiny = nn.Config{Vocab: 256, DModel: 32, Layers: 2, Heads: 4, Context: 32}

// sums is a three-example SFT set: a prompt and its one-byte answer.
func sums() []recipe.Example {
	var tok nn.ByteTokenizer
	var xs []recipe.Example
	for i, s := range []string{"2+2=4", "1+1=2", "3+3=6"} {
		xs = append(xs, recipe.Example{Prompt: tok.Encode(s[:4]), Completion: tok.Encode(s[4:]), Line: i + 1})
	}
	return xs
}

// Supervised fine-tuning, full-parameter, on three prompts. A fresh
// model spreads its bets over all 256 bytes, so its first loss is close
// to log 256 = 5.5 nats; after training it answers every prompt.
func ExampleSFT() {
	m, _ := nn.NewModel(tiny, 1)
	xs := sums()
	sft := &recipe.SFT{Model: m, Config: recipe.Config{Steps: 40, Batch: 3, LR: 1e-2, Seed: 1, EvalEvery: 40}}
	h, err := sft.Train(context.Background(), xs, xs)
	if err != nil {
		fmt.Println(err)
		return
	}
	first := h[0].Metrics["loss"]
	acc, _ := h.Last("eval_mean_token_accuracy")
	fmt.Printf("first loss %.1f nats (log 256 = %.1f)\n", first, math.Log(256))
	fmt.Printf("token accuracy after training: %.0f%%\n", 100*acc)
	// Output:
	// first loss 5.5 nats (log 256 = 5.5)
	// token accuracy after training: 100%
}

// Distillation from a live teacher: the teacher has learned the answers
// (by SFT), the student learns them from the teacher's distribution
// alone — the examples' completions are its labels only through the
// teacher.
func ExampleDistill() {
	ctx := context.Background()
	xs := sums()
	teacher, _ := nn.NewModel(tiny, 1)
	sft := &recipe.SFT{Model: teacher, Config: recipe.Config{Steps: 40, Batch: 3, LR: 1e-2, Seed: 1}}
	if _, err := sft.Train(ctx, xs, nil); err != nil {
		fmt.Println(err)
		return
	}
	student, _ := nn.NewModel(tiny, 2)
	d := &recipe.Distill{Student: student, Teacher: teacher, Loss: recipe.SoftTargetLoss{Temperature: 1},
		Config: recipe.Config{Steps: 40, Batch: 3, LR: 1e-2, Seed: 1, EvalEvery: 40}}
	h, err := d.Train(ctx, xs, xs)
	if err != nil {
		fmt.Println(err)
		return
	}
	first := h[0].Metrics["loss"]
	last, _ := h.Last("eval_loss")
	fmt.Printf("distillation loss fell by more than half: %v\n", last < first/2)
	// Output:
	// distillation loss fell by more than half: true
}

// Online RL with GRPO: eight completions of four bytes per prompt,
// rewarded for the share of their bytes that are 'a'. The fresh policy
// is close to uniform over 256 bytes, so its expected reward is about
// 1/256; it learns to say nothing but 'a' (reward 1).
func ExampleOnline() {
	m, _ := nn.NewModel(tiny, 1)
	var tok nn.ByteTokenizer
	prompts := [][]int32{tok.Encode("say a:"), tok.Encode("again:")}
	reward := func(_ context.Context, _ []int32, completions [][]int32) ([]float64, error) {
		r := make([]float64, len(completions))
		for i, c := range completions {
			s, _ := tok.Decode(c)
			r[i] = float64(strings.Count(s, "a")) / float64(max(len(c), 1))
		}
		return r, nil
	}
	o := &recipe.Online{Policy: m, Reward: reward, Algorithm: recipe.GRPO{Loss: prefopt.GRPOLoss{Type: prefopt.LossGRPO, EpsLow: 0.2}}, K: 8,
		Sampling: recipe.Sampling{MaxTokens: 4, Temperature: 1},
		Config:   recipe.Config{Steps: 60, Batch: 2, LR: 5e-2, Seed: 1}}
	h, err := o.Train(context.Background(), prompts)
	if err != nil {
		fmt.Println(err)
		return
	}
	var first, last float64 // mean reward of the first and the last five steps
	for i := range 5 {
		first += h[i].Metrics["reward"] / 5
		last += h[len(h)-1-i].Metrics["reward"] / 5
	}
	fmt.Printf("first five steps' mean reward below 0.05: %v\n", first < 0.05)
	fmt.Printf("last five steps' mean reward: %.2f\n", last)
	// Output:
	// first five steps' mean reward below 0.05: true
	// last five steps' mean reward: 1.00
}

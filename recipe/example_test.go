package recipe_test

import (
	"context"
	"fmt"

	"github.com/posttrain/posttrain/prefopt"
	"github.com/posttrain/posttrain/recipe"
	"github.com/posttrain/posttrain/tensor/nn"
)

// DPO with LoRA on a tiny byte-level model: the reference is the base
// model with the adapters switched off, and the policy learns to prefer
// the chosen completions.
func ExamplePreference() {
	m, _ := nn.NewModel(nn.Config{Vocab: 256, DModel: 32, Layers: 2, Heads: 4, Context: 32}, 1)
	ad, _ := m.AddLoRA(nn.LoRAConfig{Rank: 4, Alpha: 8, Targets: []string{"q", "k", "v", "o"}}, 2)
	var tok nn.ByteTokenizer
	pair := func(p, c, r string) recipe.Pair {
		return recipe.Pair{Prompt: tok.Encode(p), Chosen: tok.Encode(c), Rejected: tok.Encode(r)}
	}
	pairs := []recipe.Pair{pair("2+2=", "4", "5"), pair("1+1=", "2", "3"), pair("3+3=", "6", "7")}
	dpo := &recipe.Preference{Policy: m, Objective: prefopt.DPO{Beta: 0.5},
		Config: recipe.Config{Steps: 30, Batch: 3, LR: 1e-2, Seed: 1, EvalEvery: 30}}
	h, err := dpo.Train(context.Background(), pairs, pairs)
	if err != nil {
		fmt.Println(err)
		return
	}
	acc, _ := h.Last("eval_rewards/accuracies")
	margin, _ := h.Last("eval_rewards/margins")
	fmt.Printf("trainable parameters: %d of %d\n", ad.NumParams(), m.NumParams()+ad.NumParams())
	fmt.Printf("accuracy %.0f%%, positive margin: %v\n", 100*acc, margin > 0)
	// Output:
	// trainable parameters: 2048 of 39072
	// accuracy 100%, positive margin: true
}

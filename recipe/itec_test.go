package recipe

import (
	"context"
	"math"
	"slices"
	"testing"

	"github.com/posttrain/posttrain/itec"
	"github.com/posttrain/posttrain/mirrordescent"
	"github.com/posttrain/posttrain/prefopt"
	"github.com/posttrain/posttrain/tensor/nn"
)

// TestCommittee trains a member with every algorithm through the itec
// interfaces on a byte-level model, and reloads members and reward
// models from their checkpoints.
func TestCommittee(t *testing.T) {
	ctx := context.Background()
	cfg := nn.Config{Vocab: 256, DModel: 16, Layers: 1, Heads: 2, Context: 32, Hidden: 24}
	base, _ := nn.NewModel(cfg, 1)
	small := Config{Steps: 2, Batch: 2, LR: 1e-3}
	md := mirrordescent.DefaultMDLOO()
	md.K, md.Steps = 2, 1
	printable := func(l []float32) {
		for i := range l {
			if i < 'a' || i > 'z' {
				l[i] = float32(math.Inf(-1))
			}
		}
	}
	c := &Committee{Dir: t.TempDir(), Tokenizer: Bytes{}, Sampling: Sampling{MaxTokens: 4, Temperature: 1, Mask: printable},
		RewardBody: base, SFT: small, Pref: small, Reward: small, DPO: prefopt.DPO{Beta: 0.1}, IPO: prefopt.IPO{Tau: 0.1},
		Online: Online{Algorithm: MDLOO{md}, K: 2, Sampling: Sampling{MaxTokens: 4, Temperature: 1}, Config: small},
		Eval: func(ctx context.Context, g itec.Generator) (float64, error) {
			out, err := g.Generate(ctx, "ab", []uint64{1, 2})
			return float64(len(out)), err
		}}
	var _ itec.Evaluator = c
	g := c.generator(base)
	a, err := g.Generate(ctx, "hello", []uint64{7, 8, 7})
	if err != nil {
		t.Fatal(err)
	}
	if a[0] != a[2] || len(a[0]) != 4 {
		t.Fatalf("samples %q: seed 7 twice should agree, 4 bytes each", a)
	}
	for _, r := range a[0] {
		if r < 'a' || r > 'z' {
			t.Fatalf("sample %q escapes the mask", a[0])
		}
	}
	pairs := []prefopt.Pair{{Prompt: "x", Chosen: "ab", Rejected: "cd", Level: prefopt.Better}, {Prompt: "y", Chosen: "ef", Rejected: "gh", Level: prefopt.NegligiblyBetter}}
	rm, ref, err := c.Refresh(ctx, 1, pairs)
	if err != nil {
		t.Fatal(err)
	}
	s1, _ := rm.Score(ctx, "x", []string{"ab", "cd"})
	c2 := &Committee{Dir: c.Dir, Tokenizer: c.Tokenizer}
	rm2, err := c2.LoadReward(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	s2, _ := rm2.Score(ctx, "x", []string{"ab", "cd"})
	if !slices.Equal(s1, s2) {
		t.Fatalf("reloaded reward model scores %v, %v before", s2, s1)
	}
	member := itec.Member{Name: "m0", Model: g}
	for _, alg := range []itec.Algorithm{itec.SFT, itec.DPO, itec.IPO, itec.OnlineRL} {
		req := itec.TrainRequest{Round: 1, Algorithm: alg, Seed: 3, Committee: []itec.Member{member},
			Demos: []itec.Demo{{Prompt: "x", Response: "ab"}}, Pairs: pairs, Prompts: []string{"x", "y"}, Reward: rm}
		m, err := c.Train(ctx, req)
		if err != nil {
			t.Fatalf("%s: %v", alg, err)
		}
		gl, err := c.LoadMember(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		x, _ := m.Model.Generate(ctx, "q", []uint64{5})
		y, _ := gl.Generate(ctx, "q", []uint64{5})
		if x[0] != y[0] {
			t.Fatalf("%s: reloaded member samples %q, trained one %q", alg, y, x)
		}
		if v, err := c.Evaluate(ctx, m); err != nil || v != 2 {
			t.Fatalf("%s: Evaluate %v, %v", alg, v, err)
		}
	}
}

// Command itec runs AFM's iterative teaching committee (package itec) with
// small TinyLMs: a base model pre-trained for a few seconds on Newton's
// Opticks is the first committee; a programmatic oracle that prefers
// continuations about light and colour is the labeler; every round the
// committee samples, pairs are labeled on AFM's four-point scale, a reward
// model is refreshed on every label so far, committee rejection sampling
// picks each prompt's best response across all members, and one new
// member is trained per algorithm — rejection sampling (fine-tuning on
// the picks), DPO, IPO and online RL (MDLOO against the reward model).
// The next committee is the best new members plus the best earlier one,
// by the oracle's reward on held-out prompts.
//
// It prints, per round, the committee, the prompts each member won in
// committee distillation, the reward model's held-out accuracy, and each
// new member's oracle reward. The run is checkpointed in -out/itec; the
// program starts it afresh every time.
//
// Usage:
//
//	go run ./examples/itec [-quick] [-out out/itec] [-seed 1] [-rounds 2]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/posttrain/posttrain/examples/internal/lab"
	"github.com/posttrain/posttrain/itec"
	"github.com/posttrain/posttrain/tensor/nn"
)

type config struct {
	Out              string
	Seed             uint64
	Bytes            int
	Model            nn.Config
	BaseSteps        int
	Rounds           int
	Prompts, Test    int
	PromptLen, Len   int
	Samples          int
	TuneSteps        int
	RewardSteps      int
	RLIters, RLBatch int
	EvalSamples      int
	Progress         io.Writer
}

func defaults() config {
	return config{
		Out: filepath.Join("out", "itec"), Seed: 1, Bytes: 250_000,
		Model:     nn.Config{Vocab: 256, DModel: 64, Layers: 2, Heads: 2, Context: 64, Hidden: 128},
		BaseSteps: 400, Rounds: 2, Prompts: 32, Test: 24, PromptLen: 28, Len: 32, Samples: 4,
		TuneSteps: 20, RewardSteps: 60, RLIters: 5, RLBatch: 8, EvalSamples: 4,
	}
}

func (c *config) quick() {
	c.Bytes = 80_000
	c.Model = nn.Config{Vocab: 256, DModel: 32, Layers: 1, Heads: 2, Context: 64, Hidden: 64}
	c.BaseSteps, c.Prompts, c.Test, c.Len, c.Samples = 40, 8, 6, 16, 3
	c.TuneSteps, c.RewardSteps, c.RLIters, c.RLBatch, c.EvalSamples = 4, 10, 2, 4, 2
}

func main() {
	cfg := defaults()
	quick := flag.Bool("quick", false, "a few seconds' run (CI)")
	flag.StringVar(&cfg.Out, "out", cfg.Out, "directory for the run's checkpoints and results.md")
	flag.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "seed of every random choice")
	rounds := flag.Int("rounds", 0, "committee rounds (0: the default, 2)")
	noBars := flag.Bool("no-progress", false, "no progress bars (they are drawn on stderr only when stdout and stderr are terminals)")
	flag.Parse()
	if *quick {
		cfg.quick()
	}
	if *rounds > 0 {
		cfg.Rounds = *rounds
	}
	cfg.Progress = lab.Progress(*noBars)
	if err := run(context.Background(), cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "itec:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg config, w io.Writer) error {
	data := lab.Load(cfg.Bytes)
	base, err := lab.Pretrain(ctx, cfg.Model, data.Train, cfg.BaseSteps, cfg.Seed, cfg.Progress)
	if err != nil {
		return err
	}
	prompts, err := lab.Prompts(data.TrainText, cfg.Prompts, cfg.PromptLen, cfg.Seed)
	if err != nil {
		return err
	}
	test, err := lab.Prompts(data.TestText, cfg.Test, cfg.PromptLen, cfg.Seed+1)
	if err != nil {
		return err
	}
	pol := lab.Gen(base, cfg.Len)
	// Held-out pairs for the reward model's accuracy.
	ts, err := lab.Sample(ctx, pol, test, cfg.Samples, cfg.Seed+2)
	if err != nil {
		return err
	}
	dir := filepath.Join(cfg.Out, "itec")
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	com := lab.NewCommittee(lab.CommitteeConfig{
		Dir: dir, Body: base, Len: cfg.Len,
		TuneSteps: cfg.TuneSteps, SFTLR: 3e-4, PrefLR: 1e-4,
		RLIters: cfg.RLIters, RLPrompts: cfg.RLBatch, RLLR: 1e-4,
		RewardSteps: cfg.RewardSteps, RewardLR: 1e-3,
		EvalPrompts: test, EvalSamples: cfg.EvalSamples,
		Seed: cfg.Seed + 4, Bars: cfg.Progress,
	}, lab.LabelSamples(test, ts, 3, cfg.Seed+3))
	st, err := itec.Run(ctx, itec.Config{
		Dir: dir, Prompts: prompts, Rounds: cfg.Rounds,
		Initial:  []itec.Member{{Name: "base", Algorithm: itec.SFT, Model: pol}},
		Samples:  cfg.Samples,
		Pairs:    itec.PairOptions{Strategy: itec.BestWorst},
		KeepBest: 1, Seed: cfg.Seed + 5,
		Labeler: lab.Oracle{}, Rewards: com, Trainer: com, Evaluator: com,
	})
	if err != nil {
		return err
	}
	eval := map[string]float64{}
	for _, m := range st.Members {
		eval[m.Name] = *m.Eval
	}
	fmt.Fprintf(w, "base: %d params, oracle reward %.3f on %d held-out prompts\n\n", base.NumParams(), eval["base"], len(test))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "round\tcommittee: prompts won\tpairs\tRM accuracy\tnew members: oracle reward\tnext committee")
	md := "| round | committee: prompts won | pairs | RM accuracy | new members: oracle reward | next committee |\n|---|---|---|---|---|---|\n"
	for i, h := range st.History {
		var won, trained []string
		for _, n := range h.Committee {
			won = append(won, fmt.Sprintf("%s %d", n, h.Wins[n]))
		}
		for _, n := range h.Trained {
			trained = append(trained, fmt.Sprintf("%s %.3f", n, eval[n]))
		}
		acc := "-"
		if i < len(com.RewardAcc) {
			acc = fmt.Sprintf("%.3f", com.RewardAcc[i][0])
		}
		cells := []string{fmt.Sprint(h.Round), strings.Join(won, ", "), fmt.Sprint(h.NewPairs), acc, strings.Join(trained, ", "), strings.Join(h.Next, ", ")}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
		md += "| " + strings.Join(cells, " | ") + " |\n"
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(cfg.Out, "results.md"), []byte(md), 0o644)
}

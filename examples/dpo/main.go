// Command dpo compares three offline preference objectives — DPO
// (Rafailov et al. 2023), IPO (Azar et al. 2023) and SimPO (Meng et al.
// 2024) — on the same preference pairs, from the same base model, for the
// same steps.
//
// The base is a small TinyLM pre-trained for a few seconds on Newton's
// Opticks. It continues prompts from the book; a programmatic oracle
// prefers continuations that talk about light and colour (lab.Oracle)
// and labels random pairs of the base's samples on AFM's four-point
// scale. Each objective tunes a copy of the base on the same training
// pairs — those labeled above negligibly better: near ties carry no
// signal for a hard-label objective — with the same batches and learning
// rate. The program reports, per objective, the loss and implicit-reward
// accuracy on held-out pairs (the objective's own Stats.Accuracy, as
// TRL's eval logs it), the oracle's reward on fresh samples from held-out
// prompts, and how far the policy moved from the base: the mean of
// log π(y) − log π_base(y) over the policy's own samples, an estimate of
// KL(π‖π_base) in nats per response (approximate: samples are drawn with
// non-ASCII bytes masked out, see lab.Gen).
//
// The hyperparameters (β, τ, γ, the learning rate) are reasonable
// defaults, not tuned per objective: read the table as one run of one
// toy task, not a ranking.
//
// With -model DIR, the program runs DPO on a Hugging Face checkpoint
// instead (a directory with config.json, the safetensors weights,
// tokenizer.json and tokenizer_config.json — SmolLM2, Qwen2.5, Llama…):
// it reads the preference pairs of -data (JSONL in TRL's formats:
// prompt/chosen/rejected as text or as conversations rendered with the
// model's chat template), trains LoRA adapters of rank -lora on the
// attention projections (q, k, v, o; alpha twice the rank; the reference
// is the model with its adapters off) through the trainer layer
// (package recipe), and writes them in PEFT's format —
// adapter_config.json and adapter_model.safetensors — under -out, which
// PEFT's PeftModel.from_pretrained and vLLM load. The training log is
// out/run/metrics.jsonl, beside the trainer's checkpoint: a run started
// again on the same -out resumes from it (remove out/run to start over).
//
// Usage:
//
//	go run ./examples/dpo [-quick] [-out out/dpo] [-seed 1] [-steps 60]
//	go run ./examples/dpo -model DIR -data prefs.jsonl [-lora 16] [-quick] [-out out/dpo] [-steps 100] [-batch 2] [-accum 4] [-lr 5e-5]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/posttrain/posttrain/examples/internal/lab"
	"github.com/posttrain/posttrain/prefopt"
	"github.com/posttrain/posttrain/recipe"
	"github.com/posttrain/posttrain/tensor/nn"
)

type config struct {
	Out                string
	Seed               uint64
	Bytes              int
	Model              nn.Config
	BaseSteps          int
	Steps, Batch       int
	LR                 float64
	Prompts, Test      int
	PromptLen, Len     int
	Samples, PerPrompt int
	EvalSamples        int
	Progress           io.Writer
}

func defaults() config {
	return config{
		Out: filepath.Join("out", "dpo"), Seed: 1, Bytes: 250_000,
		Model:     nn.Config{Vocab: 256, DModel: 64, Layers: 2, Heads: 2, Context: 64, Hidden: 128},
		BaseSteps: 300, Steps: 60, Batch: 16, LR: 3e-4,
		Prompts: 96, Test: 32, PromptLen: 28, Len: 32, Samples: 4, PerPrompt: 3, EvalSamples: 4,
	}
}

func (c *config) quick() {
	c.Bytes = 100_000
	c.Model = nn.Config{Vocab: 256, DModel: 32, Layers: 1, Heads: 2, Context: 64, Hidden: 64}
	c.BaseSteps, c.Steps = 60, 15
	c.Prompts, c.Test, c.Len, c.EvalSamples = 24, 12, 24, 2
}

func main() {
	cfg := defaults()
	quick := flag.Bool("quick", false, "a few seconds' run (CI)")
	flag.StringVar(&cfg.Out, "out", cfg.Out, "directory for results.md and curves.png (with -model: the PEFT adapter, and run/ for the training log and checkpoint)")
	flag.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "seed of every random choice")
	steps := flag.Int("steps", 0, "preference-tuning steps per objective (0: the default)")
	noBars := flag.Bool("no-progress", false, "no progress bars (they are drawn on stderr only when stdout and stderr are terminals)")
	mc := modelDefaults()
	flag.StringVar(&mc.Model, "model", "", "a Hugging Face model directory (config.json, safetensors, tokenizer.json): run DPO with LoRA on it")
	flag.StringVar(&mc.Data, "data", "", "with -model: preference pairs, JSONL in TRL's formats")
	flag.IntVar(&mc.LoRA, "lora", mc.LoRA, "with -model: LoRA rank on q, k, v, o (alpha is twice it)")
	batch := flag.Int("batch", 0, "with -model: pairs per micro-batch (0: the default)")
	accum := flag.Int("accum", 0, "with -model: micro-batches per step (0: the default)")
	lr := flag.Float64("lr", 0, "with -model: peak learning rate (0: the default)")
	flag.BoolVar(&mc.Recompute, "recompute", false, "with -model: gradient checkpointing (less memory, a third more compute)")
	flag.Parse()
	if mc.Model != "" {
		if *quick {
			mc.quick()
		}
		for _, x := range []struct {
			dst *int
			v   int
		}{{&mc.Steps, *steps}, {&mc.Batch, *batch}, {&mc.Accum, *accum}} {
			if x.v > 0 {
				*x.dst = x.v
			}
		}
		if *lr > 0 {
			mc.LR = *lr
		}
		mc.Out, mc.Seed, mc.Progress = cfg.Out, cfg.Seed, lab.Progress(*noBars)
		if _, err := runModel(context.Background(), mc, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "dpo:", err)
			os.Exit(1)
		}
		return
	}
	if *quick {
		cfg.quick()
	}
	if *steps > 0 {
		cfg.Steps = *steps
	}
	cfg.Progress = lab.Progress(*noBars)
	if err := run(context.Background(), cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "dpo:", err)
		os.Exit(1)
	}
}

// outcome is one objective's result.
type outcome struct {
	name              string
	evalAcc, evalLoss float64
	reward, kl        float64
	loss, acc         []float64
}

func run(ctx context.Context, cfg config, w io.Writer) error {
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return err
	}
	data := lab.Load(cfg.Bytes)
	base, err := lab.Pretrain(ctx, cfg.Model, data.Train, cfg.BaseSteps, cfg.Seed, cfg.Progress)
	if err != nil {
		return err
	}
	gen := lab.Gen(base, cfg.Len)
	trainP, err := lab.Prompts(data.TrainText, cfg.Prompts, cfg.PromptLen, cfg.Seed)
	if err != nil {
		return err
	}
	testP, err := lab.Prompts(data.TestText, cfg.Test, cfg.PromptLen, cfg.Seed+1)
	if err != nil {
		return err
	}
	trS, err := lab.Sample(ctx, gen, trainP, cfg.Samples, cfg.Seed+2)
	if err != nil {
		return err
	}
	teS, err := lab.Sample(ctx, gen, testP, cfg.Samples, cfg.Seed+3)
	if err != nil {
		return err
	}
	// Every objective learns from the same pairs: those the oracle decided
	// (above negligibly better); near ties would only teach noise.
	all := lab.LabelSamples(trainP, trS, cfg.PerPrompt, cfg.Seed+4)
	pairs := lab.Decided(all)
	test := lab.Decided(lab.LabelSamples(testP, teS, cfg.PerPrompt, cfg.Seed+5))
	if len(pairs) == 0 || len(test) == 0 {
		pairs, test = all, lab.LabelSamples(testP, teS, cfg.PerPrompt, cfg.Seed+5) // a toy run: take what there is
	}
	baseReward, err := lab.OracleReward(ctx, gen, testP, cfg.EvalSamples, cfg.Seed+6)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "base: %d params; %d training pairs labeled (levels %v), %d decided kept; %d held-out pairs; base oracle reward %.3f\n",
		base.NumParams(), len(all), lab.LevelCounts(all), len(pairs), len(test), baseReward)

	objs := []struct {
		name string
		obj  prefopt.Objective
		ref  bool
	}{
		{"DPO β=0.1", prefopt.DPO{Beta: 0.1}, true},
		{"IPO τ=1", prefopt.IPO{Tau: 1}, true},
		{"SimPO β=2 γ=0.5", prefopt.SimPO{Beta: 2, Gamma: 0.5}, false},
	}
	var outs []outcome
	for _, o := range objs {
		pol := base.Clone()
		var ref *nn.TinyLM
		if o.ref {
			ref = base
		}
		bar := lab.NewBar(cfg.Progress, cfg.Steps, o.name)
		loss, acc, err := lab.TrainPairs(ctx, pol, ref, pairs, o.obj, lab.TuneConfig{Steps: cfg.Steps, Batch: cfg.Batch, LR: cfg.LR, Seed: cfg.Seed + 7}, bar)
		bar.Finish()
		if err != nil {
			return fmt.Errorf("%s: %w", o.name, err)
		}
		out := outcome{name: o.name, loss: loss, acc: acc}
		if out.evalLoss, out.evalAcc, err = evaluate(pol, base, test, o.obj); err != nil {
			return err
		}
		p := lab.Gen(pol, cfg.Len)
		if out.reward, err = lab.OracleReward(ctx, p, testP, cfg.EvalSamples, cfg.Seed+6); err != nil {
			return err
		}
		if out.kl, err = klEstimate(ctx, p, base, testP, cfg.Seed+8); err != nil {
			return err
		}
		outs = append(outs, out)
	}

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nobjective\theld-out loss\theld-out pair accuracy\toracle reward (base "+fmt.Sprintf("%.3f", baseReward)+")\tKL(π‖base) est.")
	md := "| objective | held-out loss | held-out pair accuracy | oracle reward | KL(π‖base) est. |\n|---|---|---|---|---|\n"
	for _, o := range outs {
		fmt.Fprintf(tw, "%s\t%.4f\t%.3f\t%.3f\t%.3f\n", o.name, o.evalLoss, o.evalAcc, o.reward, o.kl)
		md += fmt.Sprintf("| %s | %.4f | %.3f | %.3f | %.3f |\n", o.name, o.evalLoss, o.evalAcc, o.reward, o.kl)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(cfg.Out, "results.md"), []byte(md), 0o644); err != nil {
		return err
	}
	var ls, as []lab.Series
	for _, o := range outs {
		ls = append(ls, lab.Steps(o.name, lab.Smooth(o.loss, 5)))
		as = append(as, lab.Steps(o.name, lab.Smooth(o.acc, 5)))
	}
	pl, err := lab.Plot("training loss (smoothed)", "step", "loss", ls...)
	if err != nil {
		return err
	}
	pa, err := lab.Plot("training pair accuracy (smoothed)", "step", "accuracy", as...)
	if err != nil {
		return err
	}
	return lab.SavePlots(filepath.Join(cfg.Out, "curves.png"), 2, pl, pa)
}

// evaluate is obj's loss and implicit-reward accuracy on held-out pairs.
func evaluate(pol, ref *nn.TinyLM, pairs []prefopt.Pair, obj prefopt.Objective) (loss, acc float64, err error) {
	ps, cs, rs := make([]string, len(pairs)), make([]string, len(pairs)), make([]string, len(pairs))
	var b prefopt.Batch
	for i, p := range pairs {
		ps[i], cs[i], rs[i] = p.Prompt, p.Chosen, p.Rejected
		b.ChosenLen = append(b.ChosenLen, len(p.Chosen))
		b.RejectedLen = append(b.RejectedLen, len(p.Rejected))
	}
	for _, x := range []struct {
		m   *nn.TinyLM
		dst *[]float64
		ys  []string
	}{{pol, &b.PolicyChosen, cs}, {pol, &b.PolicyRejected, rs}, {ref, &b.RefChosen, cs}, {ref, &b.RefRejected, rs}} {
		if *x.dst, err = lab.LogProbsOf(x.m, ps, x.ys); err != nil {
			return 0, 0, err
		}
	}
	r, err := obj.Loss(b)
	if err != nil {
		return 0, 0, err
	}
	return r.Loss, r.Stats.Accuracy, nil
}

// klEstimate is the mean of log π(y) − log π_base(y) over samples y of π
// (two per prompt): a Monte Carlo estimate of KL(π‖π_base) per response.
func klEstimate(ctx context.Context, p *recipe.Generator, base *nn.TinyLM, prompts []string, seed uint64) (float64, error) {
	rs, err := lab.Sample(ctx, p, prompts, 2, seed)
	if err != nil {
		return 0, err
	}
	var ps, ys []string
	for i, r := range rs {
		for _, y := range r {
			ps, ys = append(ps, prompts[i]), append(ys, y)
		}
	}
	a, err := lab.LogProbsOf(p.Model, ps, ys)
	if err != nil {
		return 0, err
	}
	b, err := lab.LogProbsOf(base, ps, ys)
	if err != nil {
		return 0, err
	}
	var s float64
	for i := range a {
		s += a[i] - b[i]
	}
	return s / float64(len(a)), nil
}

// Command distill is AFM's distillation recipe on its own: pre-train a
// teacher TinyLM on Newton's Opticks, prune a copy's SwiGLU hidden layer
// to make a student, precompute the teacher's top-1 predictions into a
// distill cache (distill/cache, AFM's top-1 teacher cache), and train
// copies of the student with distill.ConvexCombination,
//
//	L = −w·log p(ŷ_teacher) − (1−w)·log p(y),
//
// for a few teacher weights w on the same windows for the same steps;
// w = 0 is plain cross-entropy, AFM uses w = 0.9. It reports each
// student's held-out loss (nats per byte), perplexity and top-1 accuracy
// (the fraction of bytes whose most likely prediction is right).
//
// What to expect: hard top-1 targets teach the student the teacher's
// best guess, so top-1 accuracy tends to follow the teacher while the
// held-out perplexity, which rewards spreading probability over the
// alternatives, suffers as w grows — read the table for this run.
//
// With -teacher DIR (a Hugging Face directory: config.json, the
// safetensors weights, tokenizer.json — SmolLM2, Qwen2.5, Llama…) it
// distills that model into -student DIR (a smaller model with the same
// tokenizer) or, without -student, into a copy of the teacher whose
// every SwiGLU hidden layer is pruned to the fraction -prune of its
// width (nn.Model.PruneFFN), on the completions of the SFT records of
// -data (JSONL in TRL's formats, conversations rendered with the chat
// template), through recipe.Distill. -loss picks the target: afm
// (default) is AFM's convex combination w·teacher top-1 + (1−w)·labels,
// the top-1 read from a cache the teacher fills in one pass before
// training (out/teacher-top1.cache); topk is top-k KL from a cache;
// soft and jsd read a live teacher; ce is the labels alone, the control.
// A tenth of the records (when there are ten or more) is held out: the
// teacher's and the student's loss, perplexity and top-1 accuracy on
// their completions are reported before and after. The student is
// written under -out as a whole Hugging Face directory (the tokenizer's
// files copied beside it); out/run holds the training log and the
// checkpoint a run started again on the same -out resumes from.
//
// Usage:
//
//	go run ./examples/distill [-quick] [-out out/distill] [-seed 1] [-teacher-steps N] [-student-steps N]
//	go run ./examples/distill -teacher DIR [-student DIR | -prune 0.5] -data chat.jsonl [-loss afm] [-w 0.9] [-quick] [-out out/distill] [-steps 100] [-batch 4] [-accum 2] [-lr 1e-4]
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
	"github.com/posttrain/posttrain/tensor/nn"
)

type config struct {
	Out                        string
	Seed                       uint64
	Bytes                      int
	Model                      nn.Config
	StudentFFN                 int
	TeacherSteps, StudentSteps int
	Weights                    []float64
	Progress                   io.Writer
}

func defaults() config {
	return config{
		Out: filepath.Join("out", "distill"), Seed: 1, Bytes: 200_000,
		Model:      nn.Config{Vocab: 256, DModel: 64, Layers: 2, Heads: 2, Context: 64, Hidden: 256},
		StudentFFN: 64, TeacherSteps: 500, StudentSteps: 120,
		Weights: []float64{0, 0.5, 0.9},
	}
}

func (c *config) quick() {
	c.Bytes = 60_000
	c.Model = nn.Config{Vocab: 256, DModel: 32, Layers: 1, Heads: 2, Context: 32, Hidden: 128}
	c.StudentFFN, c.TeacherSteps, c.StudentSteps = 32, 40, 20
	c.Weights = []float64{0, 0.9}
}

func main() {
	cfg := defaults()
	quick := flag.Bool("quick", false, "a few seconds' run (CI)")
	flag.StringVar(&cfg.Out, "out", cfg.Out, "output directory: the cache, results.md and curves.png (TinyLM), or the student model, the cache and run/ (with -teacher)")
	flag.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "seed of every random choice")
	ts := flag.Int("teacher-steps", 0, "teacher pre-training steps (0: the default)")
	ss := flag.Int("student-steps", 0, "training steps per student (0: the default)")
	noBars := flag.Bool("no-progress", false, "no progress bars (they are drawn on stderr only when stdout and stderr are terminals)")
	mc := modelDefaults()
	flag.StringVar(&mc.Teacher, "teacher", "", "a Hugging Face model directory (config.json, safetensors, tokenizer.json): distill it into -student or a pruned copy")
	flag.StringVar(&mc.Student, "student", "", "with -teacher: the student's Hugging Face directory (same tokenizer); empty: a copy of the teacher pruned by -prune")
	flag.Float64Var(&mc.Prune, "prune", mc.Prune, "with -teacher and no -student: the fraction of every FFN hidden layer's width the student keeps")
	flag.StringVar(&mc.Data, "data", "", "with -teacher: SFT records, JSONL in TRL's formats; their completions are distilled")
	flag.StringVar(&mc.Loss, "loss", mc.Loss, "with -teacher: the target, one of "+lossNames)
	flag.Float64Var(&mc.Weight, "w", mc.Weight, "with -loss afm: the teacher's weight w")
	flag.IntVar(&mc.K, "k", mc.K, "with -loss topk: teacher tokens cached per position")
	flag.Float64Var(&mc.Alpha, "alpha", mc.Alpha, "with -loss topk: the KL term's weight (the labels get 1 − alpha)")
	flag.Float64Var(&mc.Temperature, "temperature", mc.Temperature, "with -loss soft or jsd: the softmax temperature")
	flag.Float64Var(&mc.Beta, "beta", mc.Beta, "with -loss jsd: the mixture's teacher weight (0: forward KL, 1: reverse KL)")
	mSteps := flag.Int("steps", 0, "with -teacher: optimizer steps (0: the default, "+fmt.Sprint(mc.Steps)+")")
	batch := flag.Int("batch", 0, "with -teacher: records per micro-batch (0: the default, "+fmt.Sprint(mc.Batch)+")")
	accum := flag.Int("accum", 0, "with -teacher: micro-batches per optimizer step (0: the default, "+fmt.Sprint(mc.Accum)+")")
	flag.Float64Var(&mc.LR, "lr", mc.LR, "with -teacher: peak learning rate (warmup over a tenth of the steps, cosine to a tenth)")
	flag.IntVar(&mc.MaxPrompt, "max-prompt", mc.MaxPrompt, "with -teacher: prompt tokens kept (its end); at most half the context")
	flag.IntVar(&mc.MaxCompletion, "max-completion", mc.MaxCompletion, "with -teacher: completion tokens kept (its start)")
	flag.IntVar(&mc.Records, "records", 0, "with -teacher: use the first N records of -data (0: all)")
	flag.BoolVar(&mc.Recompute, "recompute", false, "with -teacher: gradient checkpointing of the student (less memory, about a third more compute)")
	flag.Parse()
	if mc.Teacher != "" {
		if *quick {
			mc.quick()
		}
		for _, x := range []struct{ dst, v *int }{{&mc.Steps, mSteps}, {&mc.Batch, batch}, {&mc.Accum, accum}} {
			if *x.v > 0 {
				*x.dst = *x.v
			}
		}
		mc.Out, mc.Seed, mc.Progress = cfg.Out, cfg.Seed, lab.Progress(*noBars)
		if _, err := runModel(context.Background(), mc, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "distill:", err)
			os.Exit(1)
		}
		return
	}
	if *quick {
		cfg.quick()
	}
	if *ts > 0 {
		cfg.TeacherSteps = *ts
	}
	if *ss > 0 {
		cfg.StudentSteps = *ss
	}
	cfg.Progress = lab.Progress(*noBars)
	if err := run(context.Background(), cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "distill:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg config, w io.Writer) error {
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return err
	}
	data := lab.Load(cfg.Bytes)
	seq := cfg.Model.Context
	teacher, err := nn.NewTinyLM(cfg.Model, cfg.Seed)
	if err != nil {
		return err
	}
	lm := lab.LMConfig{Steps: cfg.TeacherSteps, Batch: 16, Seq: seq, LR: 3e-3, MinLR: 3e-4, Seed: cfg.Seed}
	bar := lab.NewBar(cfg.Progress, lm.Steps, "pre-train teacher")
	_, err = lab.TrainLM(ctx, teacher, data.Train, lm, bar)
	bar.Finish()
	if err != nil {
		return err
	}
	tl, ta, err := lab.HeldOut(teacher, data.Test, seq, 0)
	if err != nil {
		return err
	}
	student, err := teacher.PruneFFN(cfg.StudentFFN)
	if err != nil {
		return err
	}
	cachePath := filepath.Join(cfg.Out, "teacher-top1.cache")
	bar = lab.NewBar(cfg.Progress, len(data.Train)/seq*seq, "teacher top-1 cache")
	top1, err := lab.PrecomputeTop1(ctx, teacher, data.Train, seq, cachePath, bar)
	bar.Finish()
	if err != nil {
		return err
	}
	st, err := os.Stat(cachePath)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "teacher %d params; student (FFN %d→%d) %d params; cache %s: %d tokens in %d bytes\n",
		teacher.NumParams(), cfg.Model.Hidden, cfg.StudentFFN, student.NumParams(), cachePath, len(top1), st.Size())

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nmodel\theld-out loss\tperplexity\ttop-1 accuracy")
	fmt.Fprintf(tw, "teacher\t%.4f\t%.3f\t%.3f\n", tl, lab.Perplexity(tl), ta)
	md := "| model | held-out loss | perplexity | top-1 accuracy |\n|---|---|---|---|\n"
	md += fmt.Sprintf("| teacher | %.4f | %.3f | %.3f |\n", tl, lab.Perplexity(tl), ta)
	var series []lab.Series
	for _, wt := range cfg.Weights {
		s := student.Clone()
		sl := lm
		sl.Steps, sl.Seed = cfg.StudentSteps, cfg.Seed+100 // every student sees the same windows
		sl.EvalEvery, sl.Test, sl.EvalSeqs = max(1, cfg.StudentSteps/10), data.Test, 64
		if wt > 0 {
			sl.Teacher, sl.TeacherWeight = top1, wt
		}
		name := fmt.Sprintf("student w=%.2g", wt)
		bar := lab.NewBar(cfg.Progress, sl.Steps, name)
		c, err := lab.TrainLM(ctx, s, data.Train, sl, bar)
		bar.Finish()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		l, a, err := lab.HeldOut(s, data.Test, seq, 0)
		if err != nil {
			return err
		}
		fmt.Fprintf(tw, "%s\t%.4f\t%.3f\t%.3f\n", name, l, lab.Perplexity(l), a)
		md += fmt.Sprintf("| %s | %.4f | %.3f | %.3f |\n", name, l, lab.Perplexity(l), a)
		xs := make([]float64, len(c.EvalAt))
		for i, k := range c.EvalAt {
			xs[i] = float64(k)
		}
		series = append(series, lab.Series{Name: name, X: xs, Y: c.Eval})
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(cfg.Out, "results.md"), []byte(md), 0o644); err != nil {
		return err
	}
	p, err := lab.Plot("students' held-out loss", "step", "loss (nats/byte)", series...)
	if err != nil {
		return err
	}
	return lab.SavePlots(filepath.Join(cfg.Out, "curves.png"), 1, p)
}

package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/posttrain/posttrain/examples/internal/lab"
	"github.com/posttrain/posttrain/internal/parallel"
	"github.com/posttrain/posttrain/mirrordescent"
	"github.com/posttrain/posttrain/recipe"
	"github.com/posttrain/posttrain/tensor/nn"
)

// ppoEps is PPO-clip's ε, the value of Schulman et al. (2017) and TRL.
const ppoEps = 0.2

// learner is one online-RL algorithm of stage 5: a nil algorithm is
// MDLOO. All three shape the rewards with MDLOO's β·KL and take
// leave-one-out advantages.
type learner struct {
	name, steps string
	algorithm   func(o mirrordescent.MDLOO) recipe.Algorithm
}

var learners = []learner{
	{name: "MDLOO (AFM)", steps: fmt.Sprintf("%d mirror-descent steps", mirrordescent.DefaultSteps)},
	{name: "RLOO", steps: "1 policy-gradient step", algorithm: func(o mirrordescent.MDLOO) recipe.Algorithm { return recipe.RLOO{Beta: o.Beta} }},
	{name: "PPO-clip", steps: fmt.Sprintf("%d clipped steps, ε = %.1f", mirrordescent.DefaultSteps, ppoEps),
		algorithm: func(o mirrordescent.MDLOO) recipe.Algorithm {
			return recipe.PPO{Eps: ppoEps, Beta: o.Beta, Epochs: o.Steps}
		}},
}

// rlStage trains the best iTeC member against the last reward model with
// each learner, over the seeds, at the same sample budget.
func rlStage(ctx context.Context, cfg config, p prefTask, c committeeOut, res *results, w io.Writer) error {
	o := mirrordescent.DefaultMDLOO()
	prompts := p.trainPrompts[:min(cfg.ITeCPrompts, len(p.trainPrompts))]
	start := make([][]float64, len(learners))
	end := make([][]float64, len(learners))
	curves := make([][]lab.RLCurve, len(learners))
	for i := range learners {
		start[i], end[i], curves[i] = make([]float64, cfg.Seeds), make([]float64, cfg.Seeds), make([]lab.RLCurve, cfg.Seeds)
	}
	// Seeds × learners independent runs, two at a time; they share only
	// read-only models (the reference and the reward model).
	models := make([]*nn.TinyLM, cfg.Seeds*len(learners))
	bar := lab.NewBar(cfg.Progress, len(models)*cfg.FinalIters, fmt.Sprintf("5/5 online RL: %d algorithms × %d seeds", len(learners), cfg.Seeds))
	err := parallel.Each(ctx, len(models), 0, func(ctx context.Context, job int) error {
		s, i := job/len(learners), job%len(learners)
		l := learners[i]
		m := c.best.Clone()
		rc := lab.RLConfig{MDLOO: o, Iters: cfg.FinalIters, Prompts: cfg.RLPrompts, Len: cfg.RespLen, LR: cfg.RLLR, Seed: cfg.Seed + 30 + uint64(s),
			EvalEvery: max(1, cfg.FinalIters/2), EvalPrompts: p.testPrompts, EvalSamples: cfg.EvalSamples}
		if l.algorithm != nil {
			rc.Algorithm = l.algorithm(o)
		}
		cv, err := lab.RL(ctx, m, c.best, c.reward, prompts, rc, bar)
		if err != nil {
			return fmt.Errorf("%s, seed %d: %w", l.name, s+1, err)
		}
		start[i][s], end[i][s], curves[i][s] = cv.Eval[0], cv.Eval[len(cv.Eval)-1], cv
		models[job] = m
		return nil
	})
	bar.Finish()
	if err != nil {
		return err
	}
	final := models[0] // seed 1, MDLOO
	if err := final.Save(filepath.Join(cfg.Out, "final.safetensors")); err != nil {
		return err
	}
	perIter := cfg.RLPrompts * o.K
	t := lab.Table{
		Title: fmt.Sprintf("Stage 5. Online RL from %s against the last reward model: %d iterations × %d prompts × K = %d responses = %d samples per run",
			c.name, cfg.FinalIters, cfg.RLPrompts, o.K, cfg.FinalIters*perIter),
		Head: []string{"algorithm", "policy updates per batch", "oracle reward before (words per response)", "oracle reward after (words per response)",
			"gain (words per response)", "after − MDLOO's after, same seed (words per response)"},
	}
	for i, l := range learners {
		d := ""
		if i > 0 {
			d = lab.MeanCI(diff(end[i], end[0])).Format("%+.2f")
		}
		t.Rows = append(t.Rows, []string{l.name, l.steps, lab.MeanCI(start[i]).Format("%.2f"), lab.MeanCI(end[i]).Format("%.2f"),
			lab.MeanCI(diff(end[i], start[i])).Format("%+.2f"), d})
	}
	t.Note = fmt.Sprintf("All three use the same rewards shaped by β = %.2f·(log π − log π_ref), the same leave-one-out advantages, learning rate %.0e and samples; "+
		"oracle reward measured on %d held-out prompts × %d samples. ", o.Beta, cfg.RLLR, len(p.testPrompts), cfg.EvalSamples) + seedsNote(cfg.Seeds) +
		" One seed = one draw of prompts and samples, shared by the three."
	if err := res.add(w, t); err != nil {
		return err
	}
	if err := samples(ctx, cfg, p, final, w); err != nil {
		return err
	}
	var ss []lab.Series
	for i, l := range learners {
		s := lab.Series{Name: l.name}
		for k, at := range curves[i][0].EvalAt {
			var y float64
			for _, cv := range curves[i] {
				y += cv.Eval[k]
			}
			s.X = append(s.X, float64(at*perIter))
			s.Y = append(s.Y, y/float64(len(curves[i])))
		}
		ss = append(ss, s)
	}
	pl, err := lab.Plot(fmt.Sprintf("5. online RL, mean of %d seeds", cfg.Seeds), "samples drawn", "held-out oracle reward (words per response)", ss...)
	if err != nil {
		return err
	}
	res.plots = append(res.plots, pl)
	return nil
}

// samples prints what the reward bought: the student and the MDLOO
// policy on the same held-out prompts with the same seeds.
func samples(ctx context.Context, cfg config, p prefTask, m *nn.TinyLM, w io.Writer) error {
	fmt.Fprintln(w, "Samples on held-out prompts, same seed: the distilled student, then after iTeC and MDLOO (the oracle counts words, so RL against it learns to repeat them: reward hacking).")
	for _, q := range p.testPrompts[:min(3, len(p.testPrompts))] {
		a, err := policy(cfg, p.student).Generate(ctx, q, []uint64{cfg.Seed})
		if err != nil {
			return err
		}
		b, err := policy(cfg, m).Generate(ctx, q, []uint64{cfg.Seed})
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "  prompt  %q\n  student %q\n  final   %q\n", q, a[0], b[0])
	}
	fmt.Fprintln(w)
	return nil
}

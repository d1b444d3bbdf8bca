package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/posttrain/posttrain/examples/internal/lab"
	"github.com/posttrain/posttrain/tensor/nn"
)

// arm is one way of training the student.
type arm struct {
	name   string
	top1   bool // AFM's convex target with the cached top-1
	sparse bool // top-k SparseKL
}

// distilled is what stages 1–2 hand on: the AFM-distilled student of the
// first seed.
type distilled struct {
	student *nn.TinyLM
}

// distillStage pre-trains the teacher, caches its top-k predictions and
// trains the student three ways over cfg.Seeds seeds.
func distillStage(ctx context.Context, cfg config, data lab.Data, res *results, w io.Writer) (distilled, error) {
	var out distilled
	teacher, err := nn.NewTinyLM(cfg.Teacher, cfg.Seed)
	if err != nil {
		return out, err
	}
	lm := lab.LMConfig{Steps: cfg.TeacherSteps, Batch: cfg.Batch, Seq: cfg.Seq, LR: cfg.TeacherLR, MinLR: cfg.TeacherLR / 10,
		Seed: cfg.Seed, EvalEvery: max(1, cfg.TeacherSteps/10), Test: data.Test, EvalSeqs: cfg.EvalSeqs}
	bar := lab.NewBar(cfg.Progress, lm.Steps, "1/5 pre-train teacher")
	tc, err := lab.TrainLM(ctx, teacher, data.Train, lm, bar)
	bar.Finish()
	if err != nil {
		return out, fmt.Errorf("teacher: %w", err)
	}
	tLoss, tAcc, err := lab.HeldOut(teacher, data.Test, cfg.Seq, cfg.EvalSeqs)
	if err != nil {
		return out, err
	}
	if err := teacher.Save(filepath.Join(cfg.Out, "teacher.safetensors")); err != nil {
		return out, err
	}

	cachePath := filepath.Join(cfg.Out, "teacher-topk.cache")
	bar = lab.NewBar(cfg.Progress, len(data.Train)/cfg.Seq*cfg.Seq, "2/5 teacher top-k cache")
	topk, err := lab.PrecomputeTopK(ctx, teacher, data.Train, cfg.Seq, cfg.TopK, cachePath, bar)
	bar.Finish()
	if err != nil {
		return out, fmt.Errorf("cache: %w", err)
	}
	top1 := lab.Top1(topk)

	arms := []arm{
		{name: "cross-entropy on the text (control)"},
		{name: fmt.Sprintf("AFM: %.1f·teacher top-1 + %.1f·text", cfg.TeacherWeight, 1-cfg.TeacherWeight), top1: true},
		{name: fmt.Sprintf("top-%d KL: %.1f·KL(teacher‖student) + %.1f·text", cfg.TopK, cfg.Alpha, 1-cfg.Alpha), sparse: true},
	}
	short := []string{"cross-entropy", "AFM top-1 (w=0.9)", fmt.Sprintf("top-%d KL", cfg.TopK)}
	loss := make([][]float64, len(arms))
	acc := make([][]float64, len(arms))
	ppl := make([][]float64, len(arms))
	curves := make([][]lab.Curve, len(arms))
	var sParams int
	for s := range cfg.Seeds {
		init, err := nn.NewTinyLM(cfg.Student, cfg.Seed+1000+uint64(s))
		if err != nil {
			return out, err
		}
		sParams = init.NumParams()
		for i, a := range arms {
			m := init.Clone()
			sl := lm
			sl.Steps, sl.LR, sl.MinLR = cfg.StudentSteps, cfg.StudentLR, cfg.StudentLR/10
			sl.EvalEvery = max(1, cfg.StudentSteps/6)
			sl.Seed = cfg.Seed + 100 + uint64(s) // every arm of a seed sees the same windows
			switch {
			case a.top1:
				sl.Teacher, sl.TeacherWeight = top1, cfg.TeacherWeight
			case a.sparse:
				sl.TopK, sl.Alpha = &topk, cfg.Alpha
			}
			bar := lab.NewBar(cfg.Progress, sl.Steps, fmt.Sprintf("2/5 seed %d: %s", s+1, short[i]))
			c, err := lab.TrainLM(ctx, m, data.Train, sl, bar)
			bar.Finish()
			if err != nil {
				return out, fmt.Errorf("student %s, seed %d: %w", short[i], s+1, err)
			}
			// The same windows as the curve's last point: table and plot agree.
			l, ac, err := lab.HeldOut(m, data.Test, cfg.Seq, cfg.EvalSeqs)
			if err != nil {
				return out, err
			}
			loss[i], acc[i], ppl[i] = append(loss[i], l), append(acc[i], ac), append(ppl[i], lab.Perplexity(l))
			curves[i] = append(curves[i], c)
			if s == 0 && a.top1 {
				out.student = m
				if err := m.Save(filepath.Join(cfg.Out, "student.safetensors")); err != nil {
					return out, err
				}
			}
		}
	}

	budget := cfg.StudentSteps * cfg.Batch * cfg.Seq
	t := lab.Table{
		Title: fmt.Sprintf("Stages 1–2. Distillation: held-out bytes of the book (%d windows of %d), student budget %d steps × %d windows × %d bytes = %d bytes",
			cfg.EvalSeqs, cfg.Seq, cfg.StudentSteps, cfg.Batch, cfg.Seq, budget),
		Head: []string{"model, training target", "params", "training bytes", "held-out loss (nats/byte)", "perplexity (per byte)", "top-1 accuracy (%)"},
		Rows: [][]string{{"teacher, cross-entropy", fmt.Sprint(teacher.NumParams()), fmt.Sprint(cfg.TeacherSteps * cfg.Batch * cfg.Seq),
			fmt.Sprintf("%.3f", tLoss), fmt.Sprintf("%.2f", lab.Perplexity(tLoss)), fmt.Sprintf("%.1f", 100*tAcc)}},
	}
	for i, a := range arms {
		t.Rows = append(t.Rows, []string{"student, " + a.name, fmt.Sprint(sParams), fmt.Sprint(budget),
			lab.MeanCI(loss[i]).Format("%.3f"), lab.MeanCI(ppl[i]).Format("%.2f"), pct(lab.MeanCI(acc[i])).Format("%.1f")})
	}
	t.Note = seedsNote(cfg.Seeds) + " Student rows: one seed = one initialization and one order of windows, shared by the three targets. The teacher's top-k cache stores the " +
		fmt.Sprint(cfg.TopK) + " most likely next bytes and their log-probabilities; AFM's target reads only the first."
	if err := res.add(w, t); err != nil {
		return out, err
	}
	fmt.Fprintln(w, verdict(loss, acc, short))
	fmt.Fprintln(w)

	// Curves: the teacher's pre-training, and the students' held-out loss
	// (mean over seeds) at the points the table's last column ends on.
	p, err := lab.Plot("1. teacher pre-training", "optimizer step", "loss (nats/byte)",
		lab.Steps("training batches (running mean of 25)", lab.Smooth(tc.Loss, 25)),
		evalSeries("held-out", tc))
	if err != nil {
		return out, err
	}
	res.plots = append(res.plots, p)
	ss := []lab.Series{}
	for i := range arms {
		ss = append(ss, meanCurve(short[i], curves[i]))
	}
	ss = append(ss, lab.Series{Name: "teacher", X: []float64{0, float64(cfg.StudentSteps)}, Y: []float64{tLoss, tLoss}})
	p, err = lab.Plot(fmt.Sprintf("2. student held-out loss, mean of %d seeds", cfg.Seeds), "optimizer step", "held-out loss (nats/byte)", ss...)
	if err != nil {
		return out, err
	}
	res.plots = append(res.plots, p)
	return out, nil
}

// verdict says in one sentence which target wins what, from the numbers.
func verdict(loss, acc [][]float64, names []string) string {
	l := make([]lab.Stat, len(loss))
	a := make([]lab.Stat, len(acc))
	for i := range loss {
		l[i], a[i] = lab.MeanCI(loss[i]), lab.MeanCI(acc[i])
	}
	best := func(s []lab.Stat, lower bool) int {
		b := 0
		for i := range s {
			if (lower && s[i].Mean < s[b].Mean) || (!lower && s[i].Mean > s[b].Mean) {
				b = i
			}
		}
		return b
	}
	bl, ba := best(l, true), best(a, false)
	return fmt.Sprintf("Lowest held-out loss: %s (%.3f nats/byte); highest top-1 accuracy: %s (%.1f %%). "+
		"AFM's target (%.3f nats/byte, %.1f %%) trains the student to put its mass where the teacher's top-1 is: "+
		"that pays in top-1 accuracy when the teacher is much better than the student, and costs perplexity, "+
		"which charges every byte the one-hot target said was impossible.",
		names[bl], l[bl].Mean, names[ba], 100*a[ba].Mean, l[1].Mean, 100*a[1].Mean)
}

// evalSeries is c's held-out curve.
func evalSeries(name string, c lab.Curve) lab.Series {
	s := lab.Series{Name: name}
	for i, k := range c.EvalAt {
		s.X = append(s.X, float64(k))
		s.Y = append(s.Y, c.Eval[i])
	}
	return s
}

// meanCurve is the pointwise mean of the held-out curves of cs (one per
// seed, evaluated at the same steps).
func meanCurve(name string, cs []lab.Curve) lab.Series {
	s := evalSeries(name, cs[0])
	for _, c := range cs[1:] {
		for i := range s.Y {
			s.Y[i] += c.Eval[i]
		}
	}
	for i := range s.Y {
		s.Y[i] /= float64(len(cs))
	}
	return s
}

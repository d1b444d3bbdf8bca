package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/posttrain/posttrain/distill/cache"
	"github.com/posttrain/posttrain/examples/internal/lab"
	"github.com/posttrain/posttrain/internal/parallel"
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
	// Seeds × targets independent runs, two at a time (GOMAXPROCS): the
	// small students keep one core busy each better than they share two.
	inits := make([]*nn.TinyLM, cfg.Seeds)
	for s := range inits {
		if inits[s], err = nn.NewTinyLM(cfg.Student, cfg.Seed+1000+uint64(s)); err != nil {
			return out, err
		}
	}
	sParams := inits[0].NumParams()
	for i := range arms {
		loss[i], acc[i], ppl[i] = make([]float64, cfg.Seeds), make([]float64, cfg.Seeds), make([]float64, cfg.Seeds)
		curves[i] = make([]lab.Curve, cfg.Seeds)
	}
	models := make([]*nn.TinyLM, cfg.Seeds*len(arms))
	bar = lab.NewBar(cfg.Progress, len(models)*cfg.StudentSteps, fmt.Sprintf("2/5 students: %d targets × %d seeds", len(arms), cfg.Seeds))
	err = parallel.Each(ctx, len(models), 0, func(ctx context.Context, job int) error {
		s, i := job/len(arms), job%len(arms)
		m := inits[s].Clone()
		sl := lm
		sl.Steps, sl.LR, sl.MinLR = cfg.StudentSteps, cfg.StudentLR, cfg.StudentLR/10
		sl.EvalEvery = max(1, cfg.StudentSteps/6)
		sl.Seed = cfg.Seed + 100 + uint64(s) // every arm of a seed sees the same windows
		switch {
		case arms[i].top1:
			sl.Teacher, sl.TeacherWeight = top1, cfg.TeacherWeight
		case arms[i].sparse:
			sl.TopK, sl.Alpha = &topk, cfg.Alpha
		}
		c, err := lab.TrainLM(ctx, m, data.Train, sl, bar)
		if err != nil {
			return fmt.Errorf("student %s, seed %d: %w", short[i], s+1, err)
		}
		// The same windows as the curve's last point: table and plot agree.
		l, ac, err := lab.HeldOut(m, data.Test, cfg.Seq, cfg.EvalSeqs)
		if err != nil {
			return err
		}
		loss[i][s], acc[i][s], ppl[i][s], curves[i][s] = l, ac, lab.Perplexity(l), c
		models[job] = m
		return nil
	})
	bar.Finish()
	if err != nil {
		return out, err
	}
	out.student = models[1] // seed 1, AFM's target
	if err := out.student.Save(filepath.Join(cfg.Out, "student.safetensors")); err != nil {
		return out, err
	}

	budget := cfg.StudentSteps * cfg.Batch * cfg.Seq
	t := lab.Table{
		Title: fmt.Sprintf("Stages 1–2. Distillation: held-out bytes of the book (%d windows of %d), student budget %d steps × %d windows × %d bytes = %d bytes",
			cfg.EvalSeqs, cfg.Seq, cfg.StudentSteps, cfg.Batch, cfg.Seq, budget),
		Head: []string{"model, training target", "params", "training bytes", "teacher cache (bytes per training byte)",
			"held-out loss (nats/byte)", "perplexity (per byte)", "top-1 accuracy (%)", "loss − control's, same seed (nats/byte)", "top-1 accuracy − control's, same seed (points)"},
		Rows: [][]string{{"teacher, cross-entropy", fmt.Sprint(teacher.NumParams()), fmt.Sprint(cfg.TeacherSteps * cfg.Batch * cfg.Seq), "",
			fmt.Sprintf("%.3f", tLoss), fmt.Sprintf("%.2f", lab.Perplexity(tLoss)), fmt.Sprintf("%.1f", 100*tAcc), "", ""}},
	}
	cacheBytes := []string{"0", fmt.Sprintf("%.2f", cache.Format{Vocab: cfg.Teacher.Vocab, K: 1, PackIDs: true}.BytesPerToken()),
		fmt.Sprintf("%.2f", cache.Format{Vocab: cfg.Teacher.Vocab, K: cfg.TopK, LogProbs: cache.BF16, PackIDs: true}.BytesPerToken())}
	for i, a := range arms {
		dl, da := "", ""
		if i > 0 {
			dl, da = lab.MeanCI(diff(loss[i], loss[0])).Format("%+.3f"), pct(lab.MeanCI(diff(acc[i], acc[0]))).Format("%+.1f")
		}
		t.Rows = append(t.Rows, []string{"student, " + a.name, fmt.Sprint(sParams), fmt.Sprint(budget), cacheBytes[i],
			lab.MeanCI(loss[i]).Format("%.3f"), lab.MeanCI(ppl[i]).Format("%.2f"), pct(lab.MeanCI(acc[i])).Format("%.1f"), dl, da})
	}
	t.Note = seedsNote(cfg.Seeds) + " Student rows: one seed = one initialization and one order of windows, shared by the three targets, so the last two columns compare them seed by seed. " +
		"The teacher cache column is what AFM's top-1 cache and a top-" + fmt.Sprint(cfg.TopK) + " cache with bfloat16 log-probabilities store per training byte (here both are read from one top-" +
		fmt.Sprint(cfg.TopK) + " cache)."
	t.Note += "\n" + verdict(loss, acc, tAcc, cfg.TopK)
	if err := res.add(w, t); err != nil {
		return out, err
	}

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

// verdict says in two sentences what the AFM target wins and loses
// against the control, seed by seed, and why.
func verdict(loss, acc [][]float64, teacherAcc float64, topk int) string {
	dl, da := lab.MeanCI(diff(loss[1], loss[0])), pct(lab.MeanCI(diff(acc[1], acc[0])))
	kl, ka := lab.MeanCI(diff(loss[2], loss[0])), pct(lab.MeanCI(diff(acc[2], acc[0])))
	sig := func(s lab.Stat) string { // is the interval clear of 0?
		switch {
		case s.Mean-s.Half > 0:
			return "higher"
		case s.Mean+s.Half < 0:
			return "lower"
		}
		return "not different at 95 %"
	}
	v := fmt.Sprintf("Against cross-entropy on the same seeds, AFM's top-1 target gives top-1 accuracy %s points (%s) and held-out loss %s nats/byte (%s); top-%d KL gives %s points (%s) and %s nats/byte (%s).",
		da.Format("%+.1f"), sig(da), dl.Format("%+.3f"), sig(dl), topk, ka.Format("%+.1f"), sig(ka), kl.Format("%+.3f"), sig(kl))
	if dl.Mean > 0 {
		v += fmt.Sprintf(" Why the top-1 target loses on perplexity: it tells the student the teacher's guess is certain, but the teacher is right only %.0f %% of the time, "+
			"and perplexity charges every byte the one-hot target called impossible", 100*teacherAcc)
		if da.Mean-da.Half > 0 {
			v += "; what it buys is the guess itself (top-1 accuracy, what greedy decoding uses) from a cache of one id per byte."
		} else {
			v += "; in this run it buys no top-1 accuracy that the seeds can tell apart either."
		}
	}
	return v
}

// diff is a − b elementwise.
func diff(a, b []float64) []float64 {
	d := make([]float64, len(a))
	for i := range a {
		d[i] = a[i] - b[i]
	}
	return d
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

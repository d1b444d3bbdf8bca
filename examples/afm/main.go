// Command afm runs Apple's AFM post-training recipe in miniature, end to
// end, on Isaac Newton's Opticks as bytes, with TinyLM models small enough
// to train on two CPU cores in a few minutes:
//
//  1. Pre-train a teacher; prune a copy's SwiGLU hidden layer to a quarter
//     (nn.PruneFFN) to make the "on-device" student.
//  2. Precompute the teacher's top-1 predictions into a distill cache and
//     train the student with distill.ConvexCombination (w = 0.9) and, as
//     the control, with plain cross-entropy, for the same steps on the same
//     windows; report held-out loss, perplexity and top-1 accuracy of both.
//  3. A synthetic preference task: a programmatic oracle prefers
//     continuations that talk about light and colour and labels pairs
//     on AFM's four-point scale; a reward model (the student's body,
//     mean-pooled, with a linear head) is trained with the soft-label
//     ranking loss (prefopt.SoftRanking); report its held-out accuracy.
//  4. iTeC (itec.Run): rounds of committee sampling, oracle labels, a
//     refreshed reward model, committee rejection sampling, and new members
//     trained by rejection sampling (SFT on the committee's picks), DPO, IPO
//     and MDLOO; per round each member's oracle reward and the prompts each
//     member won.
//  5. MDLOO online RL (mirrordescent.MDLOO) on the best member against the
//     last reward model, with the oracle-reward curve on held-out prompts.
//
// It prints a results table and writes results.md, curves.png and the
// models to -out. Runs are deterministic for a -seed (on one machine: the
// float32 kernels may round differently on another CPU).
//
// What to expect, and what not to read into it. At this scale the teacher
// is right about the next byte only about half the time, so w = 0.9 spends
// most of the student's training signal on the teacher's guesses: its
// top-1 accuracy stays with the teacher's while its held-out perplexity,
// which rewards spreading probability over the alternatives, is far worse
// than the cross-entropy control's. AFM distills from a much stronger
// teacher; examples/distill sweeps w. The oracle counts words, so online
// RL against it (and against a reward model trained on it) learns to
// repeat them — the final samples show the reward hacking that KL
// regularization and real labelers exist to limit.
//
// Usage:
//
//	go run ./examples/afm [-quick] [-out out/afm] [-seed 1] [-teacher-steps N] …
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/posttrain/posttrain/distill"
	"github.com/posttrain/posttrain/examples/internal/lab"
	"github.com/posttrain/posttrain/itec"
	"github.com/posttrain/posttrain/mirrordescent"
	"github.com/posttrain/posttrain/prefopt"
	"github.com/posttrain/posttrain/tensor/nn"
	"gonum.org/v1/plot"
)

type config struct {
	Out   string
	Seed  uint64
	Bytes int // corpus bytes used (0: all)

	Model        nn.Config
	StudentFFN   int // the student's SwiGLU hidden size after pruning
	Seq, Batch   int
	TeacherSteps int
	StudentSteps int
	EvalSeqs     int // held-out windows per evaluation

	PromptLen, RespLen int
	TrainPrompts       int // preference and iTeC prompts
	TestPrompts        int
	Samples            int // responses per prompt for the preference task
	RewardSteps        int
	Rounds             int
	ITeCPrompts        int
	TuneSteps          int // rejection-sampling, DPO and IPO steps per member
	RLIters, RLPrompts int // MDLOO iterations and prompts per iteration, per iTeC member
	FinalIters         int // stage 5 MDLOO iterations
	EvalSamples        int
	Workers            int
	Progress           io.Writer
	NoTimes            bool // leave stage times out of the log (tests compare logs)
	TeacherLR, TuneLR  float64
	RLLR, RewardLR     float64
	TeacherWeight      float64
}

func defaults() config {
	return config{
		Out: filepath.Join("out", "afm"), Seed: 1,
		Model:      nn.Config{Vocab: 256, DModel: 96, Layers: 3, Heads: 3, Context: 64, Hidden: 384},
		StudentFFN: 96, Seq: 64, Batch: 16,
		TeacherSteps: 800, StudentSteps: 250, EvalSeqs: 128,
		PromptLen: 28, RespLen: 32, TrainPrompts: 128, TestPrompts: 48, Samples: 4,
		RewardSteps: 100, Rounds: 2, ITeCPrompts: 48, TuneSteps: 40,
		RLIters: 10, RLPrompts: 8, FinalIters: 30, EvalSamples: 4,
		TeacherLR: 3e-3, TuneLR: 1e-4, RLLR: 1e-4, RewardLR: 1e-3,
		TeacherWeight: distill.DefaultTeacherWeight,
	}
}

// quick shrinks every stage to run in well under a minute (CI).
func (c *config) quick() {
	c.Bytes = 120_000
	c.Model = nn.Config{Vocab: 256, DModel: 48, Layers: 2, Heads: 2, Context: 64, Hidden: 192}
	c.StudentFFN = 48
	c.TeacherSteps, c.StudentSteps, c.EvalSeqs = 150, 80, 32
	c.TrainPrompts, c.TestPrompts, c.RespLen = 32, 16, 24
	c.RewardSteps, c.ITeCPrompts, c.TuneSteps = 40, 16, 10
	c.RLIters, c.RLPrompts, c.FinalIters = 3, 8, 8
	c.EvalSamples = 2
}

func main() {
	cfg := defaults()
	quick := flag.Bool("quick", false, "a small run of every stage, in well under a minute (CI)")
	flag.StringVar(&cfg.Out, "out", cfg.Out, "directory for results.md, curves.png and checkpoints")
	flag.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "seed of every random choice")
	teacher := flag.Int("teacher-steps", 0, "teacher pre-training steps (0: the default)")
	student := flag.Int("student-steps", 0, "student distillation steps per arm (0: the default)")
	rounds := flag.Int("rounds", 0, "iTeC rounds (0: the default, 2)")
	final := flag.Int("rl-iters", 0, "final MDLOO iterations (0: the default)")
	noBars := flag.Bool("no-progress", false, "no progress bars on stderr")
	flag.Parse()
	if *quick {
		cfg.quick()
	}
	for _, f := range []struct{ dst, v *int }{{&cfg.TeacherSteps, teacher}, {&cfg.StudentSteps, student}, {&cfg.Rounds, rounds}, {&cfg.FinalIters, final}} {
		if *f.v > 0 {
			*f.dst = *f.v
		}
	}
	if !*noBars {
		cfg.Progress = os.Stderr
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	start := time.Now()
	res, err := run(ctx, cfg, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "afm:", err)
		os.Exit(1)
	}
	fmt.Printf("\nwall time %s; results in %s\n", time.Since(start).Round(time.Second), res.dir)
}

// results is what the final table reports.
type results struct {
	dir                         string
	teacherParams, studentParam int
	teacherLoss, prunedLoss     float64
	distLoss, ceLoss            float64
	teacherAcc, distAcc, ceAcc  float64
	pairs, testPairs            int
	testDecided                 int
	levels                      [4]int
	rmAcc, rmAccDecided         float64
	btAcc, btAccDecided         float64
	baseReward                  float64
	rounds                      []itec.RoundSummary
	members                     []itec.MemberInfo
	best                        string
	rlStart, rlEnd              float64
	rlScoreStart, rlScoreEnd    float64
	itecRMAcc                   [][2]float64
}

func run(ctx context.Context, cfg config, w io.Writer) (*results, error) {
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return nil, err
	}
	res := &results{dir: cfg.Out}
	data := lab.Load(cfg.Bytes)
	t0 := time.Now()
	lap := func() string { // the wall time of a stage, for the log (not the table: it varies)
		d := time.Since(t0)
		t0 = time.Now()
		return fmt.Sprintf(" [%.0fs]", d.Seconds())
	}
	if cfg.NoTimes {
		lap = func() string { return "" }
	}
	fmt.Fprintf(w, "corpus: Opticks, %d training bytes, %d held out\n", len(data.Train), len(data.Test))
	var plots []*plot.Plot

	// Stage 1: teacher, and the pruned student.
	teacher, err := nn.NewTinyLM(cfg.Model, cfg.Seed)
	if err != nil {
		return nil, err
	}
	lm := lab.LMConfig{Steps: cfg.TeacherSteps, Batch: cfg.Batch, Seq: cfg.Seq, LR: cfg.TeacherLR, MinLR: cfg.TeacherLR / 10,
		Seed: cfg.Seed, EvalEvery: max(1, cfg.TeacherSteps/10), Test: data.Test, EvalSeqs: cfg.EvalSeqs}
	bar := lab.NewBar(cfg.Progress, lm.Steps, "1/5 pre-train teacher")
	tc, err := lab.TrainLM(ctx, teacher, data.Train, lm, bar)
	bar.Finish()
	if err != nil {
		return nil, fmt.Errorf("teacher: %w", err)
	}
	if res.teacherLoss, res.teacherAcc, err = lab.HeldOut(teacher, data.Test, cfg.Seq, 0); err != nil {
		return nil, err
	}
	student0, err := teacher.PruneFFN(cfg.StudentFFN)
	if err != nil {
		return nil, err
	}
	res.teacherParams, res.studentParam = teacher.NumParams(), student0.NumParams()
	if res.prunedLoss, err = lab.HeldOutLoss(student0, data.Test, cfg.Seq, cfg.EvalSeqs); err != nil {
		return nil, err
	}
	fmt.Fprintf(w, "1. teacher: %d params, held-out loss %.3f nats/byte; pruned student (FFN %d→%d): %d params, loss %.3f before training%s\n",
		res.teacherParams, res.teacherLoss, cfg.Model.Hidden, cfg.StudentFFN, res.studentParam, res.prunedLoss, lap())
	if err := teacher.Save(filepath.Join(cfg.Out, "teacher.safetensors")); err != nil {
		return nil, err
	}

	// Stage 2: top-1 cache, then the student with and without it.
	cachePath := filepath.Join(cfg.Out, "teacher-top1.cache")
	bar = lab.NewBar(cfg.Progress, len(data.Train)/cfg.Seq*cfg.Seq, "2/5 teacher top-1 cache")
	top1, err := lab.PrecomputeTop1(ctx, teacher, data.Train, cfg.Seq, cachePath, bar)
	bar.Finish()
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	arms := []struct {
		name string
		w    float64
	}{{"distilled (w=0.9)", cfg.TeacherWeight}, {"cross-entropy", 0}}
	var students [2]*nn.TinyLM
	var curves [2]lab.Curve
	for i, a := range arms {
		students[i] = student0.Clone()
		sl := lm
		sl.Steps, sl.EvalEvery = cfg.StudentSteps, max(1, cfg.StudentSteps/10)
		sl.Seed = cfg.Seed + 100 // both arms see the same windows
		if a.w > 0 {
			sl.Teacher, sl.TeacherWeight = top1, a.w
		}
		bar = lab.NewBar(cfg.Progress, sl.Steps, "2/5 student: "+a.name)
		curves[i], err = lab.TrainLM(ctx, students[i], data.Train, sl, bar)
		bar.Finish()
		if err != nil {
			return nil, fmt.Errorf("student %s: %w", a.name, err)
		}
	}
	// Final held-out losses on every window of the held-out text.
	if res.distLoss, res.distAcc, err = lab.HeldOut(students[0], data.Test, cfg.Seq, 0); err != nil {
		return nil, err
	}
	if res.ceLoss, res.ceAcc, err = lab.HeldOut(students[1], data.Test, cfg.Seq, 0); err != nil {
		return nil, err
	}
	fmt.Fprintf(w, "2. student held-out loss: distilled %.4f (ppl %.3f, top-1 %.3f), cross-entropy %.4f (ppl %.3f, top-1 %.3f)%s\n",
		res.distLoss, lab.Perplexity(res.distLoss), res.distAcc, res.ceLoss, lab.Perplexity(res.ceLoss), res.ceAcc, lap())
	student := students[0]
	if err := student.Save(filepath.Join(cfg.Out, "student.safetensors")); err != nil {
		return nil, err
	}
	// The students continue from the pruned teacher, after its last step.
	p, err := lab.Plot("1–2. pre-training, pruning and distillation", "step", "loss (nats/byte)",
		lab.Steps("teacher train (smoothed)", lab.Smooth(tc.Loss, 25)),
		evalSeries("teacher held-out", tc, 0, 0),
		evalSeries("student w=0.9, held-out", curves[0], cfg.TeacherSteps, res.prunedLoss),
		evalSeries("student cross-entropy, held-out", curves[1], cfg.TeacherSteps, res.prunedLoss))
	if err != nil {
		return nil, err
	}
	plots = append(plots, p)

	// Stage 3: the preference task and its reward model.
	gen := lab.Policy{Len: cfg.RespLen, Temperature: 1, TopK: 0}
	trainPrompts, err := lab.Prompts(data.TrainText, cfg.TrainPrompts, cfg.PromptLen, cfg.Seed)
	if err != nil {
		return nil, err
	}
	testPrompts, err := lab.Prompts(data.TestText, cfg.TestPrompts, cfg.PromptLen, cfg.Seed+1)
	if err != nil {
		return nil, err
	}
	pol := gen
	pol.M = student
	trainSamples, err := lab.Sample(ctx, pol, trainPrompts, cfg.Samples, cfg.Seed+10)
	if err != nil {
		return nil, err
	}
	testSamples, err := lab.Sample(ctx, pol, testPrompts, cfg.Samples, cfg.Seed+11)
	if err != nil {
		return nil, err
	}
	trainPairs := lab.LabelSamples(trainPrompts, trainSamples, 3, cfg.Seed+12)
	testPairs := lab.LabelSamples(testPrompts, testSamples, 3, cfg.Seed+13)
	res.pairs, res.testPairs, res.levels = len(trainPairs), len(testPairs), lab.LevelCounts(trainPairs)
	res.testDecided = len(lab.Decided(testPairs))
	rcfg := lab.RewardConfig{Steps: cfg.RewardSteps, Batch: 16, LR: cfg.RewardLR, Seed: cfg.Seed + 14}
	rm := lab.NewRewardModel(student)
	bar = lab.NewBar(cfg.Progress, rcfg.Steps, "3/5 reward model (soft)")
	rmLoss, err := lab.TrainReward(ctx, rm, trainPairs, rcfg, bar)
	bar.Finish()
	if err != nil {
		return nil, err
	}
	if res.rmAcc, res.rmAccDecided, err = lab.Accuracy(rm, testPairs); err != nil {
		return nil, err
	}
	bt := lab.NewRewardModel(student)
	rcfg.BradleyTerry = true
	bar = lab.NewBar(cfg.Progress, rcfg.Steps, "3/5 reward model (BT control)")
	btLoss, err := lab.TrainReward(ctx, bt, trainPairs, rcfg, bar)
	bar.Finish()
	if err != nil {
		return nil, err
	}
	if res.btAcc, res.btAccDecided, err = lab.Accuracy(bt, testPairs); err != nil {
		return nil, err
	}
	fmt.Fprintf(w, "3. %d training pairs (levels %v), %d held-out; reward model held-out accuracy %.3f (%.3f above negligible); Bradley–Terry control %.3f (%.3f)%s\n",
		res.pairs, res.levels, res.testPairs, res.rmAcc, res.rmAccDecided, res.btAcc, res.btAccDecided, lap())
	p, err = lab.Plot("3. reward model", "step", "training loss (smoothed)",
		lab.Steps("soft-label ranking (AFM)", lab.Smooth(rmLoss, 10)),
		lab.Steps("Bradley–Terry", lab.Smooth(btLoss, 10)))
	if err != nil {
		return nil, err
	}
	plots = append(plots, p)

	// Stage 4: iTeC.
	itecPrompts := trainPrompts[:min(cfg.ITeCPrompts, len(trainPrompts))]
	dir := filepath.Join(cfg.Out, "itec")
	if err := os.RemoveAll(dir); err != nil { // a fresh run, not a resume of an older one
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	mdloo := mirrordescent.DefaultMDLOO()
	com := &lab.Committee{
		Dir: dir, Body: student, Gen: gen,
		SFT:         lab.TuneConfig{Steps: cfg.TuneSteps, Batch: 16, LR: cfg.TuneLR * 3},
		Pref:        lab.TuneConfig{Steps: cfg.TuneSteps, Batch: 16, LR: cfg.TuneLR},
		DPO:         prefopt.DPO{Beta: 0.1},
		IPO:         prefopt.IPO{Tau: 1},
		RL:          lab.RLConfig{MDLOO: mdloo, Iters: cfg.RLIters, Prompts: cfg.RLPrompts, LR: cfg.RLLR},
		Reward:      lab.RewardConfig{Steps: cfg.RewardSteps, Batch: 16, LR: cfg.RewardLR},
		EvalPrompts: testPrompts, EvalSamples: cfg.EvalSamples, TestPairs: testPairs,
		Seed: cfg.Seed + 20, Bars: cfg.Progress,
	}
	if res.baseReward, err = com.Evaluate(ctx, itec.Member{Name: "student", Model: pol}); err != nil {
		return nil, err
	}
	models := map[string]*nn.TinyLM{"student": student}
	var ibar lab.Bar
	var last itec.Event
	st, err := itec.Run(ctx, itec.Config{
		Dir: dir, Prompts: itecPrompts, Rounds: cfg.Rounds,
		Initial: []itec.Member{{Name: "student", Algorithm: itec.SFT, Model: pol}},
		Samples: cfg.Samples, Pairs: itec.PairOptions{Strategy: itec.BestWorst},
		KeepBest: 1, Workers: cfg.Workers, Seed: cfg.Seed + 21,
		Labeler: lab.Oracle{}, Rewards: com, Trainer: com, Evaluator: com,
		Progress: func(e itec.Event) {
			if cfg.Progress == nil || e.Step == itec.Training || e.Step == itec.Refreshing {
				return // those show their own bars
			}
			if e.Round != last.Round || e.Step != last.Step || e.Done < last.Done {
				ibar.Finish()
				ibar = lab.NewBar(cfg.Progress, e.Total, fmt.Sprintf("4/5 iTeC round %d: %s", e.Round, e.Step))
				last = itec.Event{Round: e.Round, Step: e.Step}
			}
			ibar.Add(e.Done - last.Done)
			last.Done = e.Done
		},
	})
	ibar.Finish()
	if err != nil {
		return nil, fmt.Errorf("iTeC: %w", err)
	}
	res.rounds, res.members, res.itecRMAcc = st.History, st.Members, com.RewardAcc
	best := res.members[0]
	for _, m := range res.members {
		if *m.Eval > *best.Eval {
			best = m
		}
	}
	res.best = best.Name
	final, ok := models[best.Name]
	if !ok {
		if final, err = nn.LoadTinyLM(best.Ref); err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(w, "4. iTeC: %d rounds; best member %s, oracle reward %.3f (student %.3f)%s\n", len(res.rounds), best.Name, *best.Eval, res.baseReward, lap())
	p, err = itecPlot(res)
	if err != nil {
		return nil, err
	}
	plots = append(plots, p)

	// Stage 5: MDLOO on the best member against the last reward model.
	scorer, err := com.LoadReward(ctx, st.RewardRef)
	if err != nil {
		return nil, err
	}
	ref := final.Clone()
	fp := gen
	fp.M = final
	rl := lab.RLConfig{MDLOO: mdloo, Iters: cfg.FinalIters, Prompts: cfg.RLPrompts, LR: cfg.RLLR, Seed: cfg.Seed + 30,
		EvalEvery: max(1, cfg.FinalIters/8), EvalPrompts: testPrompts, EvalSamples: cfg.EvalSamples}
	bar = lab.NewBar(cfg.Progress, rl.Iters, "5/5 MDLOO online RL")
	rc, err := lab.MDLOO(ctx, fp, ref, scorer, itecPrompts, rl, bar)
	bar.Finish()
	if err != nil {
		return nil, fmt.Errorf("MDLOO: %w", err)
	}
	res.rlStart, res.rlEnd = rc.Eval[0], rc.Eval[len(rc.Eval)-1]
	res.rlScoreStart, res.rlScoreEnd = rc.Score[0], rc.Score[len(rc.Score)-1]
	if err := final.Save(filepath.Join(cfg.Out, "final.safetensors")); err != nil {
		return nil, err
	}
	fmt.Fprintf(w, "5. MDLOO: held-out oracle reward %.3f → %.3f over %d iterations%s\n", res.rlStart, res.rlEnd, rl.Iters, lap())
	// What the reward bought: the student and the final policy on the
	// same held-out prompts with the same seeds.
	for i := range min(3, len(testPrompts)) {
		a, err := pol.Generate(ctx, testPrompts[i], []uint64{cfg.Seed})
		if err != nil {
			return nil, err
		}
		b, err := fp.Generate(ctx, testPrompts[i], []uint64{cfg.Seed})
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(w, "   %q\n     student: %q\n     final:   %q\n", testPrompts[i], a[0], b[0])
	}
	xs := make([]float64, len(rc.EvalAt))
	for i, k := range rc.EvalAt {
		xs[i] = float64(k)
	}
	p, err = lab.Plot("5. MDLOO online RL", "iteration", "reward",
		lab.Series{Name: "oracle reward, held-out prompts", X: xs, Y: rc.Eval},
		lab.Steps("oracle reward, batch (smoothed)", lab.Smooth(rc.Oracle, 5)),
		lab.Steps("reward-model score, batch (smoothed)", lab.Smooth(rc.Score, 5)))
	if err != nil {
		return nil, err
	}
	plots = append(plots, p)

	if err := lab.SavePlots(filepath.Join(cfg.Out, "curves.png"), 2, plots...); err != nil {
		return nil, err
	}
	table := res.table(cfg)
	fmt.Fprintln(w)
	if err := printTable(w, table); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(cfg.Out, "results.md"), []byte(markdown(table)), 0o644); err != nil {
		return nil, err
	}
	return res, nil
}

// evalSeries is c's held-out curve shifted to start at step x0, from
// loss y0 if y0 > 0.
func evalSeries(name string, c lab.Curve, x0 int, y0 float64) lab.Series {
	s := lab.Series{Name: name}
	if y0 > 0 {
		s.X, s.Y = append(s.X, float64(x0)), append(s.Y, y0)
	}
	for i, k := range c.EvalAt {
		s.X = append(s.X, float64(x0+k))
		s.Y = append(s.Y, c.Eval[i])
	}
	return s
}

// itecPlot draws each algorithm's member's oracle reward by round.
func itecPlot(r *results) (*plot.Plot, error) {
	by := map[itec.Algorithm]*lab.Series{}
	var order []itec.Algorithm
	for _, m := range r.members {
		s, ok := by[m.Algorithm]
		if !ok {
			s = &lab.Series{Name: string(m.Algorithm)}
			by[m.Algorithm] = s
			order = append(order, m.Algorithm)
		}
		s.X = append(s.X, float64(m.Round))
		s.Y = append(s.Y, *m.Eval)
	}
	var ss []lab.Series
	for _, a := range order {
		s := *by[a]
		if a == itec.SFT { // the initial student: a flat line across rounds
			for k := 1; k <= len(r.rounds); k++ {
				s.X = append(s.X, float64(k))
				s.Y = append(s.Y, s.Y[0])
			}
			s.Name = "initial student"
		}
		ss = append(ss, s)
	}
	return lab.Plot("4. iTeC members", "round", "oracle reward (light words per response)", ss...)
}

// row is one line of the results table.
type row struct{ stage, what, value string }

func (r *results) table(cfg config) []row {
	t := []row{
		{"1 pre-train", "teacher: held-out loss (nats/byte) / ppl / top-1 acc", fmt.Sprintf("%.4f / %.3f / %.3f (%d params)", r.teacherLoss, lab.Perplexity(r.teacherLoss), r.teacherAcc, r.teacherParams)},
		{"1 prune", fmt.Sprintf("student FFN %d→%d, loss before training", cfg.Model.Hidden, cfg.StudentFFN), fmt.Sprintf("%.3f (%d params)", r.prunedLoss, r.studentParam)},
		{"2 distill", fmt.Sprintf("student, convex combination w=%.1f: held-out loss / ppl / top-1 acc", cfg.TeacherWeight), fmt.Sprintf("%.4f / %.3f / %.3f", r.distLoss, lab.Perplexity(r.distLoss), r.distAcc)},
		{"2 distill", "student, cross-entropy (control): held-out loss / ppl / top-1 acc", fmt.Sprintf("%.4f / %.3f / %.3f", r.ceLoss, lab.Perplexity(r.ceLoss), r.ceAcc)},
		{"3 reward", fmt.Sprintf("soft-label RM accuracy: %d held-out pairs (the %d above negligibly better)", r.testPairs, r.testDecided), fmt.Sprintf("%.3f (%.3f)", r.rmAcc, r.rmAccDecided)},
		{"3 reward", "Bradley–Terry RM accuracy (control)", fmt.Sprintf("%.3f (%.3f)", r.btAcc, r.btAccDecided)},
		{"4 iTeC", "initial student: oracle reward (light words/response)", fmt.Sprintf("%.3f", r.baseReward)},
	}
	for i, h := range r.rounds {
		var wins []string
		for _, n := range h.Committee {
			wins = append(wins, fmt.Sprintf("%s %d", n, h.Wins[n]))
		}
		acc := ""
		if i < len(r.itecRMAcc) {
			acc = fmt.Sprintf("; RM acc %.3f", r.itecRMAcc[i][0])
		}
		t = append(t, row{fmt.Sprintf("4 round %d", h.Round), fmt.Sprintf("prompts won (%d new pairs%s)", h.NewPairs, acc), strings.Join(wins, ", ")})
		var trained []string
		for _, n := range h.Trained {
			for _, m := range r.members {
				if m.Name == n {
					trained = append(trained, fmt.Sprintf("%s %.3f", strings.TrimPrefix(n, fmt.Sprintf("r%d-", h.Round)), *m.Eval))
				}
			}
		}
		t = append(t, row{fmt.Sprintf("4 round %d", h.Round), "new members' oracle reward", strings.Join(trained, ", ")})
	}
	t = append(t,
		row{"4 iTeC", "best member", r.best},
		row{"5 MDLOO", "held-out oracle reward, start → end", fmt.Sprintf("%.3f → %.3f", r.rlStart, r.rlEnd)},
		row{"5 MDLOO", "batch reward-model score, first → last iteration", fmt.Sprintf("%.3f → %.3f", r.rlScoreStart, r.rlScoreEnd)},
	)
	return t
}

func printTable(w io.Writer, t []row) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "stage\tmeasure\tresult")
	for _, r := range t {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.stage, r.what, r.value)
	}
	return tw.Flush()
}

func markdown(t []row) string {
	var b strings.Builder
	b.WriteString("| stage | measure | result |\n|---|---|---|\n")
	for _, r := range t {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", r.stage, r.what, strings.ReplaceAll(r.value, "|", "\\|"))
	}
	return b.String()
}

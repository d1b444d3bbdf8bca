package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/posttrain/posttrain/distill"
	"github.com/posttrain/posttrain/examples/internal/lab"
	"github.com/posttrain/posttrain/itec"
	"github.com/posttrain/posttrain/mirrordescent"
	"github.com/posttrain/posttrain/prefopt"
	"github.com/posttrain/posttrain/recipe"
	"github.com/posttrain/posttrain/tensor/nn"
	"github.com/posttrain/posttrain/tensor/nn/hf"
)

// modelConfig is the -model run: AFM's recipe with a Hugging Face
// checkpoint as the teacher, every stage through package recipe.
type modelConfig struct {
	Model, Student, Data, Out string
	Prune                     float64 // with no Student: the fraction of the teacher's FFN width the student keeps
	Records                   int     // use at most this many records of Data (0: all)
	MaxPrompt, MaxCompletion  int

	DistillSteps, Batch, Accum int
	DistillLR                  float64
	TeacherWeight              float64

	Rounds       int // iTeC rounds
	Prompts      int // iTeC prompts (the training records' prompts)
	Samples      int // responses per member per prompt
	MaxTokens    int // tokens per sampled response
	TuneSteps    int // rejection-sampling, DPO and IPO steps per member
	RewardSteps  int
	RLSteps      int // MDLOO iterations per member
	RLPrompts    int // prompts per MDLOO iteration
	RLK          int // MDLOO's responses per prompt (K)
	MDSteps      int // MDLOO's inner mirror-descent steps per iteration (m)
	TuneLR, RLLR float64
	RewardLR     float64
	EvalSamples  int // responses per held-out prompt in a member's evaluation

	Seed     uint64
	Progress io.Writer
	NoTimes  bool // leave wall times out of the log (tests compare logs)
}

func modelDefaults() modelConfig {
	return modelConfig{
		Out: filepath.Join("out", "afm-model"), Prune: 0.5, MaxPrompt: 256, MaxCompletion: 256,
		DistillSteps: 100, Batch: 4, Accum: 2, DistillLR: 1e-4, TeacherWeight: distill.DefaultTeacherWeight,
		Rounds: 2, Prompts: 32, Samples: 4, MaxTokens: 48, TuneSteps: 20, RewardSteps: 40, RLSteps: 8, RLPrompts: 4, RLK: 4, MDSteps: 4,
		TuneLR: 1e-5, RLLR: 1e-5, RewardLR: 1e-4, EvalSamples: 2, Seed: 1,
	}
}

// quick shrinks every stage to a step or two on a few short records: a
// check that the whole path works.
func (c *modelConfig) quick() {
	c.Records, c.MaxPrompt, c.MaxCompletion = 16, 64, 32
	c.DistillSteps, c.Batch, c.Accum = 3, 2, 1
	c.Rounds, c.Prompts, c.Samples, c.MaxTokens = 1, 4, 2, 8
	c.TuneSteps, c.RewardSteps, c.RLSteps, c.RLPrompts, c.RLK, c.MDSteps, c.EvalSamples = 2, 2, 1, 2, 2, 1, 1
}

// runModel distills the model of c.Model into a smaller student
// (recipe.Distill with AFM's convex target on a top-1 cache), then runs
// iTeC from the student through recipe.Committee — committee sampling,
// oracle labels, a refreshed reward model (recipe.Reward, soft-label
// ranking), and new members by rejection sampling (recipe.SFT), DPO and
// IPO (recipe.Preference) and MDLOO (recipe.Online) — and writes the
// student and the best member as Hugging Face directories under c.Out.
func runModel(ctx context.Context, c modelConfig, w io.Writer) (*itec.State, error) {
	if c.Data == "" {
		return nil, errors.New("-model needs -data, a JSONL file of SFT records (their prompts are iTeC's, their completions what the student is distilled on)")
	}
	if c.Student == "" && (c.Prune <= 0 || c.Prune >= 1) {
		return nil, fmt.Errorf("-prune %g: need a fraction of the FFN width in (0, 1), or -student DIR", c.Prune)
	}
	t0 := time.Now()
	lap := func() string {
		if c.NoTimes {
			return ""
		}
		d := time.Since(t0)
		t0 = time.Now()
		return fmt.Sprintf(" [%.1fs]", d.Seconds())
	}
	t, err := lab.LoadHF(c.Model)
	if err != nil {
		return nil, err
	}
	var student *nn.Model
	if c.Student != "" {
		if student, err = hf.LoadModel(c.Student); err != nil {
			return nil, err
		}
		if student.Config.Vocab != t.Model.Config.Vocab {
			return nil, fmt.Errorf("-student %s: vocabulary %d, the teacher's %d: distillation needs one tokenizer", c.Student, student.Config.Vocab, t.Model.Config.Vocab)
		}
	} else if student, err = t.Model.PruneFFN(max(1, int(c.Prune*float64(t.Model.Config.Hidden)))); err != nil {
		return nil, err
	}
	xs, err := lab.ReadExamples(t.Encoder(c.MaxPrompt, c.MaxCompletion), c.Data, c.Records)
	if err != nil {
		return nil, err
	}
	n := lab.HoldOut(len(xs))
	train, eval := xs[:n], xs[n:]
	if len(eval) == 0 {
		return nil, fmt.Errorf("%s: %d records, need at least 10 (a tenth is held out to evaluate on)", c.Data, len(xs))
	}
	if err := os.MkdirAll(c.Out, 0o755); err != nil {
		return nil, err
	}
	fmt.Fprintln(w, "teacher "+t.Describe())
	fmt.Fprintf(w, "student: FFN %d → %d, %.1fM parameters\n", t.Model.Config.Hidden, student.Config.Hidden, float64(student.NumParams())/1e6)
	fmt.Fprintf(w, "%s: %d records for training, %d held out\n\n", c.Data, len(train), len(eval))

	// Stages 1–2: the teacher's top-1 cache, then AFM's convex target.
	cache, err := recipe.PrecomputeTeacher(ctx, t.Model, train, 1, c.Batch, false, t.Pad, filepath.Join(c.Out, "teacher-top1.cache"))
	if err != nil {
		return nil, err
	}
	var rows [][]string
	score := func(name string, m *nn.Model) error {
		l, a, err := lab.CompletionScores(ctx, m, eval, c.Batch, t.Pad)
		rows = append(rows, []string{name, fmt.Sprintf("%.4f", l), fmt.Sprintf("%.2f", lab.Perplexity(l)), fmt.Sprintf("%.1f", 100*a)})
		return err
	}
	if err := score("teacher", t.Model); err != nil {
		return nil, err
	}
	if err := score("student, pruned", student); err != nil {
		return nil, err
	}
	log := &lab.TrainLog{Bar: lab.NewBar(c.Progress, c.DistillSteps, "1/2 distill"), Total: c.DistillSteps}
	d := &recipe.Distill{Student: student, Cache: cache, Loss: recipe.ConvexLoss{TeacherWeight: c.TeacherWeight}, Config: recipe.Config{
		Steps: c.DistillSteps, Batch: c.Batch, Accum: c.Accum, LR: c.DistillLR, MinLR: c.DistillLR / 10, Warmup: c.DistillSteps / 10,
		ClipNorm: 1, Seed: c.Seed, Pad: t.Pad, Callback: log.Callback,
	}}
	log.Start()
	_, err = d.Train(ctx, train, nil)
	log.Bar.Finish()
	if err != nil {
		return nil, fmt.Errorf("distillation: %w", err)
	}
	if !c.NoTimes {
		fmt.Fprintf(w, "distillation: %s of %d records\n", log.PerStep(), c.Batch*max(1, c.Accum))
	}
	if err := score(fmt.Sprintf("student, distilled (%.1f·teacher top-1 + %.1f·labels, %d steps)", c.TeacherWeight, 1-c.TeacherWeight, c.DistillSteps), student); err != nil {
		return nil, err
	}
	tb := lab.Table{
		Title: fmt.Sprintf("Stages 1–2. Distillation: held-out completions of %d records (%d tokens)", len(eval), lab.CompletionTokens(eval)),
		Head:  []string{"model", "loss (nats/token)", "perplexity (per token)", "top-1 accuracy (%)"},
		Rows:  rows,
	}
	if err := tb.Print(w); err != nil {
		return nil, err
	}
	sdir := filepath.Join(c.Out, "student")
	if err := saveHF(student, c.Model, sdir); err != nil {
		return nil, err
	}
	fmt.Fprintf(w, "stages 1–2 took%s; student written to %s\n\n", lap(), sdir)

	// Stages 3–4: iTeC from the student.
	prompts := make([]string, len(train))
	for i, x := range train {
		if prompts[i], err = t.Tok.Decode(x.Prompt); err != nil {
			return nil, err
		}
	}
	prompts = prompts[:min(c.Prompts, len(prompts))]
	evalPrompts := make([]string, len(eval))
	for i, x := range eval {
		if evalPrompts[i], err = t.Tok.Decode(x.Prompt); err != nil {
			return nil, err
		}
	}
	samp := recipe.Sampling{MaxTokens: c.MaxTokens, Temperature: 1}
	md := mirrordescent.DefaultMDLOO()
	md.K, md.Steps = c.RLK, c.MDSteps
	cfg := func(steps int, lr float64) recipe.Config {
		return recipe.Config{Steps: steps, Batch: c.Batch, LR: lr, MinLR: lr / 10, Warmup: steps / 10, ClipNorm: 1, Pad: t.Pad}
	}
	online := cfg(c.RLSteps, c.RLLR)
	online.Batch = c.RLPrompts
	dir := filepath.Join(c.Out, "itec")
	if err := os.RemoveAll(dir); err != nil { // a fresh run, not a resume of an older one
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var runBar lab.Bar
	var run string
	com := &recipe.Committee{
		Dir: dir, Tokenizer: t.Tok, Sampling: samp, RewardBody: student,
		SFT: cfg(c.TuneSteps, 3*c.TuneLR), Pref: cfg(c.TuneSteps, c.TuneLR), Reward: cfg(c.RewardSteps, c.RewardLR),
		DPO: prefopt.DPO{Beta: 0.1}, IPO: prefopt.IPO{Tau: 1}, RewardLoss: recipe.SoftRanking, RewardPool: recipe.MeanCompletion,
		Online: recipe.Online{Algorithm: recipe.MDLOO{MDLOO: md}, K: md.K, Sampling: samp, Config: online},
		Eval: func(ctx context.Context, g itec.Generator) (float64, error) {
			return lab.OracleReward(ctx, g, evalPrompts, c.EvalSamples, c.Seed^0xe7a1)
		},
		Callback: func(r string, _ recipe.Record) {
			if r != run {
				runBar.Finish()
				runBar, run = lab.NewBar(c.Progress, -1, "2/2 "+r), r
			}
			runBar.Add(1)
		},
		Seed: c.Seed + 20,
	}
	initial := &recipe.Generator{Model: student, Tokenizer: t.Tok, Sampling: samp}
	base, err := com.Eval(ctx, initial)
	if err != nil {
		return nil, err
	}
	st, err := itec.Run(ctx, itec.Config{
		Dir: dir, Prompts: prompts, Rounds: c.Rounds,
		Initial: []itec.Member{{Name: "student", Algorithm: itec.SFT, Model: initial}},
		Samples: c.Samples, Pairs: itec.PairOptions{Strategy: itec.BestWorst}, KeepBest: 1, Seed: c.Seed + 21,
		Labeler: lab.Oracle{}, Rewards: com, Trainer: com, Evaluator: com,
	})
	runBar.Finish()
	if err != nil {
		return nil, fmt.Errorf("iTeC: %w", err)
	}
	tb = lab.Table{
		Title: fmt.Sprintf("Stages 3–4. iTeC: %d rounds on %d prompts, %d responses of up to %d tokens per member and prompt; oracle reward on %d held-out prompts × %d samples",
			len(st.History), len(prompts), c.Samples, c.MaxTokens, len(evalPrompts), c.EvalSamples),
		Head: []string{"round", "member", "trained by", "oracle reward (light/colour words per response)"},
		Rows: [][]string{{"0", "student", "distillation", fmt.Sprintf("%.3f", base)}},
	}
	best := itec.MemberInfo{Name: "student", Eval: &base}
	for _, m := range st.Members {
		if m.Name == "student" {
			continue
		}
		tb.Rows = append(tb.Rows, []string{fmt.Sprint(m.Round), m.Name, string(m.Algorithm), fmt.Sprintf("%.3f", *m.Eval)})
		if *m.Eval > *best.Eval {
			best = m
		}
	}
	tb.Note = "The oracle is the TinyLM run's (lab.Oracle): it prefers responses with more light and colour words, a stand-in for human labels that any model's text can be graded by. " +
		"The reward model is the student with a score head, refreshed each round on the oracle's labels with AFM's soft-label loss. Best member: " + best.Name + "."
	if err := tb.Print(w); err != nil {
		return nil, err
	}
	bm := student
	if best.Name != "student" {
		if bm, err = nn.LoadTinyLM(best.Ref); err != nil {
			return nil, err
		}
	}
	bdir := filepath.Join(c.Out, "best")
	if err := saveHF(bm, c.Model, bdir); err != nil {
		return nil, err
	}
	fmt.Fprintf(w, "stages 3–4 took%s; best member (%s) written to %s\n", lap(), best.Name, bdir)
	return st, nil
}

// saveHF writes m to dir as a Hugging Face model directory, with the
// tokenizer's files of the model directory src.
func saveHF(m *nn.Model, src, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := hf.SaveModel(m, dir); err != nil {
		return err
	}
	return lab.CopyTokenizer(src, dir)
}

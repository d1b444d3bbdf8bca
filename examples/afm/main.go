// Command afm runs Apple's AFM post-training recipe in miniature, end to
// end, on Isaac Newton's Opticks as bytes, with TinyLM models small enough
// to train on two CPU cores in a few minutes, and measures each of the
// recipe's claims against its control over several seeds:
//
//  1. Pre-train a teacher much stronger than the student will be: a larger
//     model trained on more tokens.
//  2. Precompute the teacher's top-k next-byte predictions into a distill
//     cache, and train a small student from scratch, on a limited token
//     budget, three ways on the same windows: plain cross-entropy (the
//     control), AFM's convex target (distill.ConvexCombination, w = 0.9,
//     with the top-1 prediction read from the cache), and top-k
//     distillation (distill.SparseKL). Report held-out loss, perplexity and
//     top-1 accuracy as mean ± 95 % interval over the seeds.
//  3. A synthetic preference task: a programmatic oracle prefers
//     continuations that talk about light and colour and grades pairs on
//     AFM's four-point scale; a rater whose confidence is calibrated
//     reports that grade but picks the wrong response with probability
//     1 − p(level) (5 %, 15 %, 25 %, 35 %), so the levels carry
//     information. Reward models trained with the soft-label ranking loss
//     (prefopt.SoftRanking) and with Bradley–Terry are compared on held-out
//     pairs against the oracle's own verdict.
//  4. iTeC (itec.Run): rounds of committee sampling, oracle labels, a
//     refreshed reward model, committee rejection sampling, and new members
//     trained by rejection sampling, DPO, IPO and MDLOO. Then the final
//     committee's rejection sampling is compared with each member's own
//     best-of-N, on the oracle reward of the response each one picks.
//  5. Online RL against the last reward model from the best member: MDLOO
//     against RLOO and PPO-clip, with the same prompts, samples per
//     iteration and KL-shaped leave-one-out advantages, over the seeds.
//
// What to expect (seed 1; the README shows a run). The student trained on
// AFM's top-1 target beats the cross-entropy control on held-out top-1
// accuracy, seed for seed, and loses on perplexity: the one-hot target
// says the teacher's guess is certain, while the teacher is right about
// half the time, and perplexity charges every byte the target called
// impossible; top-k distillation keeps the teacher's uncertainty and wins
// both, at 24 bytes of cache per training byte instead of 1. The
// soft-label reward model, told how sure the rater was, ranks held-out
// pairs as the oracle does more often than Bradley–Terry. With N samples
// per member, the committee's pick matches the strongest members' own
// best-of-N and beats the weaker members'; given the committee's whole
// budget, the strongest member alone does about as well or better. MDLOO and PPO-clip
// improve the oracle reward many times more than RLOO's single step per
// batch at the same sample budget. The oracle counts words, so online RL against it learns
// to repeat them: the final samples show the reward hacking that KL
// regularization and real labelers exist to limit.
//
// It prints tables (every column names its unit) and writes results.md,
// curves.png and the models to -out. Runs are deterministic for a -seed
// (on one machine: the float32 kernels may round differently on another
// CPU). Progress bars go to standard error only when both standard output
// and standard error are terminals; -no-progress turns them off there too.
//
// With -model DIR (a Hugging Face directory: config.json, the
// safetensors weights, tokenizer.json — SmolLM2, Qwen2.5, Llama…) the same
// recipe runs with that model as the teacher, every stage through package
// recipe, on the SFT records of -data (JSONL in TRL's formats,
// conversations rendered with the model's chat template): the student
// is a copy of the teacher with every FFN pruned to the fraction -prune
// of its width (or -student DIR), distilled on the records' completions
// with AFM's convex target read from a top-1 cache (recipe.Distill); then
// iTeC runs from it on the records' prompts through recipe.Committee:
// committee sampling, the oracle's labels, a reward model refreshed with
// the soft-label loss (recipe.Reward), and new members by rejection
// sampling (recipe.SFT), DPO and IPO (recipe.Preference) and MDLOO
// (recipe.Online). It reports the held-out loss, perplexity and top-1
// accuracy of teacher and student, and each member's oracle reward, and
// writes the student and the best member as Hugging Face directories
// under -out (student/, best/), the members' checkpoints under itec/.
//
// Usage:
//
//	go run ./examples/afm [-quick] [-out out/afm] [-seed 1] [-seeds 3] [-no-progress] …
//	go run ./examples/afm -model DIR -data chat.jsonl [-prune 0.5 | -student DIR] [-quick] [-out out/afm-model] [-student-steps 100] [-rounds 2] [-rl-iters 8] …
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
	"time"

	"github.com/posttrain/posttrain/distill"
	"github.com/posttrain/posttrain/examples/internal/lab"
	"github.com/posttrain/posttrain/prefopt"
	"github.com/posttrain/posttrain/recipe"
	"github.com/posttrain/posttrain/tensor/nn"
	"gonum.org/v1/plot"
)

type config struct {
	Out     string
	Seed    uint64
	Seeds   int // independent repetitions of every compared training run
	RMSeeds int // the same for the reward models (cheap, and noisier)
	Bytes   int // corpus bytes used (0: all)

	Teacher, Student nn.Config
	Seq, Batch       int
	TeacherSteps     int
	StudentSteps     int // the student's token budget is StudentSteps·Batch·Seq
	EvalSeqs         int // held-out windows of every evaluation (curves and tables)
	TopK             int // teacher predictions per byte in the cache
	Alpha            float64

	PromptLen, RespLen int
	TrainPrompts       int // preference and iTeC prompts
	TestPrompts        int
	Samples            int // responses per prompt for the preference task and iTeC
	BestOf             int // responses per member and prompt in committee rejection sampling
	RewardSteps        int
	Rounds             int
	ITeCPrompts        int
	TuneSteps          int // rejection-sampling, DPO and IPO steps per member
	RLIters, RLPrompts int // MDLOO iterations and prompts per iteration, per iTeC member
	FinalIters         int // stage 5 iterations per algorithm and seed
	EvalSamples        int
	Workers            int
	Progress           io.Writer
	NoTimes            bool // leave stage times out of the log (tests compare logs)
	TeacherLR, TuneLR  float64
	StudentLR          float64
	RLLR, RewardLR     float64
	TeacherWeight      float64
}

func defaults() config {
	return config{
		Out: filepath.Join("out", "afm"), Seed: 1, Seeds: 3, RMSeeds: 5,
		Teacher: nn.Config{Vocab: 256, DModel: 96, Layers: 3, Heads: 3, Context: 64, Hidden: 384},
		Student: nn.Config{Vocab: 256, DModel: 64, Layers: 2, Heads: 2, Context: 64, Hidden: 256},
		Seq:     64, Batch: 16,
		TeacherSteps: 800, StudentSteps: 300, EvalSeqs: 256, TopK: 8, Alpha: 0.9,
		PromptLen: 28, RespLen: 32, TrainPrompts: 128, TestPrompts: 48, Samples: 4, BestOf: 2,
		RewardSteps: 100, Rounds: 2, ITeCPrompts: 48, TuneSteps: 40,
		RLIters: 10, RLPrompts: 8, FinalIters: 16, EvalSamples: 4,
		TeacherLR: 3e-3, StudentLR: 3e-3, TuneLR: 1e-4, RLLR: 1e-4, RewardLR: 1e-3,
		TeacherWeight: distill.DefaultTeacherWeight,
	}
}

// quick shrinks every stage to run in well under 30 s (CI).
func (c *config) quick() {
	c.Bytes = 120_000
	c.Teacher = nn.Config{Vocab: 256, DModel: 64, Layers: 2, Heads: 2, Context: 64, Hidden: 256}
	c.Student = nn.Config{Vocab: 256, DModel: 32, Layers: 1, Heads: 2, Context: 64, Hidden: 128}
	c.TeacherSteps, c.StudentSteps, c.EvalSeqs = 150, 60, 32
	c.TrainPrompts, c.TestPrompts, c.RespLen = 32, 16, 24
	c.RewardSteps, c.ITeCPrompts, c.TuneSteps = 40, 16, 10
	c.RLIters, c.RLPrompts, c.FinalIters = 3, 8, 4
	c.EvalSamples, c.RMSeeds = 2, 3
}

func main() {
	cfg := defaults()
	quick := flag.Bool("quick", false, "a small run of every stage, in well under 30 s (CI); with -model, a step or two of each")
	flag.StringVar(&cfg.Out, "out", cfg.Out, "directory for results.md, curves.png and checkpoints (with -model: student/, best/, itec/; default out/afm-model)")
	flag.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "seed of every random choice")
	seeds := flag.Int("seeds", 0, "repetitions of each compared run, for the 95% intervals (0: the default, 3; the reward models always get at least 5); not used with -model")
	teacher := flag.Int("teacher-steps", 0, "teacher pre-training steps (0: the default); not used with -model")
	student := flag.Int("student-steps", 0, "student distillation steps per arm and seed (0: the default); with -model, the student's distillation steps")
	rounds := flag.Int("rounds", 0, "iTeC rounds (0: the default, 2)")
	final := flag.Int("rl-iters", 0, "stage 5 iterations per algorithm and seed (0: the default); with -model, MDLOO iterations per iTeC member")
	noBars := flag.Bool("no-progress", false, "no progress bars (they are drawn on stderr only when stdout and stderr are terminals)")
	mc := modelDefaults()
	flag.StringVar(&mc.Model, "model", "", "a Hugging Face model directory (config.json, safetensors, tokenizer.json): run the recipe with it as the teacher")
	flag.StringVar(&mc.Data, "data", "", "with -model: SFT records, JSONL in TRL's formats: completions to distill on, prompts for iTeC (at least 10 records)")
	flag.StringVar(&mc.Student, "student", "", "with -model: the student's Hugging Face directory (same tokenizer); empty: a copy of the teacher pruned by -prune")
	flag.Float64Var(&mc.Prune, "prune", mc.Prune, "with -model and no -student: the fraction of every FFN hidden layer's width the student keeps")
	flag.IntVar(&mc.Records, "records", 0, "with -model: use the first N records of -data (0: all)")
	maxTokens := flag.Int("max-tokens", 0, "with -model: tokens per sampled response (0: the default, "+fmt.Sprint(mc.MaxTokens)+")")
	flag.Parse()
	if mc.Model != "" {
		if *quick {
			mc.quick()
		}
		for _, f := range []struct{ dst, v *int }{{&mc.DistillSteps, student}, {&mc.Rounds, rounds}, {&mc.RLSteps, final}, {&mc.MaxTokens, maxTokens}} {
			if *f.v > 0 {
				*f.dst = *f.v
			}
		}
		mc.Out, mc.Seed, mc.Progress = cfg.Out, cfg.Seed, lab.Progress(*noBars)
		if cfg.Out == defaults().Out {
			mc.Out = modelDefaults().Out
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
		defer stop()
		if _, err := runModel(ctx, mc, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "afm:", err)
			os.Exit(1)
		}
		return
	}
	if *quick {
		cfg.quick()
	}
	for _, f := range []struct{ dst, v *int }{{&cfg.Seeds, seeds}, {&cfg.TeacherSteps, teacher}, {&cfg.StudentSteps, student}, {&cfg.Rounds, rounds}, {&cfg.FinalIters, final}} {
		if *f.v > 0 {
			*f.dst = *f.v
		}
	}
	cfg.RMSeeds = max(cfg.RMSeeds, cfg.Seeds)
	cfg.Progress = lab.Progress(*noBars)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	start := time.Now()
	res, err := run(ctx, cfg, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "afm:", err)
		os.Exit(1)
	}
	fmt.Printf("wall time %s; results in %s\n", time.Since(start).Round(time.Second), res.dir)
}

// results is what the run reports.
type results struct {
	dir    string
	tables []lab.Table
	plots  []*plot.Plot
}

func (r *results) add(w io.Writer, t lab.Table) error {
	r.tables = append(r.tables, t)
	return t.Print(w)
}

func run(ctx context.Context, cfg config, w io.Writer) (*results, error) {
	if cfg.Seeds < 1 {
		return nil, fmt.Errorf("afm: %d seeds, need at least 1", cfg.Seeds)
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return nil, err
	}
	res := &results{dir: cfg.Out}
	data := lab.Load(cfg.Bytes)
	t0 := time.Now()
	lap := func() string { // the wall time of a stage, for the log (not the tables: it varies)
		d := time.Since(t0)
		t0 = time.Now()
		return fmt.Sprintf(" [%.0fs]", d.Seconds())
	}
	if cfg.NoTimes {
		lap = func() string { return "" }
	}
	fmt.Fprintf(w, "corpus: Newton's Opticks, %d bytes to train on, the last %d held out; every model reads bytes (1 token = 1 byte)\n\n",
		len(data.Train), len(data.Test))

	d, err := distillStage(ctx, cfg, data, res, w)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(w, "stages 1–2 took%s\n\n", lap())

	p, err := rewardStage(ctx, cfg, data, d.student, res, w)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(w, "stage 3 took%s\n\n", lap())

	it, err := itecStage(ctx, cfg, p, res, w)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(w, "stage 4 took%s\n\n", lap())

	if err := rlStage(ctx, cfg, p, it, res, w); err != nil {
		return nil, err
	}
	fmt.Fprintf(w, "stage 5 took%s\n\n", lap())

	if err := lab.SavePlots(filepath.Join(cfg.Out, "curves.png"), 2, res.plots...); err != nil {
		return nil, err
	}
	var md strings.Builder
	fmt.Fprintf(&md, "# examples/afm, seed %d, %d seeds per comparison (%d for the reward models)\n\n", cfg.Seed, cfg.Seeds, cfg.RMSeeds)
	for _, t := range res.tables {
		md.WriteString(t.Markdown())
	}
	if err := os.WriteFile(filepath.Join(cfg.Out, "results.md"), []byte(md.String()), 0o644); err != nil {
		return nil, err
	}
	return res, nil
}

// seedsNote is the line under a table of means over seeds.
func seedsNote(n int) string {
	return fmt.Sprintf("Each cell: mean ± half-width of the 95%% confidence interval (Student's t) over %d seeds.", n)
}

// pct formats a fraction as a percentage.
func pct(s lab.Stat) lab.Stat { return lab.Stat{Mean: 100 * s.Mean, Half: 100 * s.Half, N: s.N} }

// policy returns model m with the sampling settings of every stage.
func policy(cfg config, m *nn.TinyLM) *recipe.Generator {
	return lab.Gen(m, cfg.RespLen)
}

// prefTask is what stage 3 hands on: the student, the prompts and the
// held-out pairs whose oracle rewards differ.
type prefTask struct {
	student                   *nn.TinyLM
	trainPrompts, testPrompts []string
	testPairs                 []prefopt.Pair
}

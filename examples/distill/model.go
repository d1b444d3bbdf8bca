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
	"github.com/posttrain/posttrain/recipe"
	"github.com/posttrain/posttrain/tensor/nn"
	"github.com/posttrain/posttrain/tensor/nn/hf"
)

// modelConfig is the -teacher run: distillation between Hugging Face
// checkpoints through recipe.Distill.
type modelConfig struct {
	Teacher, Student, Data, Out string
	Prune                       float64 // with no Student: keep this fraction of the teacher's FFN width
	Loss                        string  // afm, topk, soft, jsd or ce
	Weight                      float64 // afm: the teacher's weight w
	K                           int     // topk: teacher tokens kept per position
	Alpha                       float64 // topk: weight of the KL term
	Temperature                 float64 // soft, jsd
	Beta                        float64 // jsd
	Steps, Batch, Accum         int
	LR                          float64
	MaxPrompt, MaxCompletion    int
	Records                     int
	Recompute                   bool
	Seed                        uint64
	Progress                    io.Writer
}

func modelDefaults() modelConfig {
	return modelConfig{
		Out: filepath.Join("out", "distill"), Prune: 0.5, Loss: "afm", Weight: distill.DefaultTeacherWeight, K: 8, Alpha: 0.9,
		Temperature: 1, Beta: 0.5, Steps: 100, Batch: 4, Accum: 2, LR: 1e-4, MaxPrompt: 512, MaxCompletion: 512, Seed: 1,
	}
}

// quick shrinks the run to a few steps on a few short records.
func (c *modelConfig) quick() {
	c.Steps, c.Batch, c.Accum = 3, 2, 1
	c.MaxPrompt, c.MaxCompletion = 64, 32
	c.Records = 16
}

// lossNames documents -loss.
const lossNames = "afm (AFM's convex target: w·teacher top-1 from a precomputed cache + (1−w)·labels), topk (top-k KL from a cache + labels, distill.SparseKL), " +
	"soft (Hinton's T²·KL on the live teacher), jsd (GKD's generalized JSD on the live teacher), ce (cross-entropy on the labels alone: the control)"

// loss returns the recipe loss of c.Loss and whether it reads a cache.
func (c modelConfig) loss() (recipe.DistillLoss, bool, error) {
	switch c.Loss {
	case "afm":
		return recipe.ConvexLoss{TeacherWeight: c.Weight}, true, nil
	case "topk":
		return recipe.SparseKLLoss{K: c.K, Leftover: distill.Bucket, Alpha: c.Alpha}, true, nil
	case "soft":
		return recipe.SoftTargetLoss{Temperature: c.Temperature}, false, nil
	case "jsd":
		return recipe.JSDLoss{Beta: c.Beta, Temperature: c.Temperature}, false, nil
	case "ce":
		return recipe.ConvexLoss{TeacherWeight: 0}, true, nil
	}
	return nil, false, fmt.Errorf("-loss %q: want one of afm, topk, soft, jsd, ce", c.Loss)
}

// scores are a model's held-out metrics on the completions.
type scores struct{ loss, acc float64 }

func heldOut(ctx context.Context, m *nn.Model, xs []recipe.Example, batch int, pad int32) (scores, error) {
	l, a, err := lab.CompletionScores(ctx, m, xs, batch, pad)
	return scores{l, a}, err
}

// runModel distills the teacher of c.Teacher into the student of
// c.Student (or a pruned copy of the teacher) on the completions of
// c.Data's SFT records, and writes the student, a whole Hugging Face
// directory, to c.Out.
func runModel(ctx context.Context, c modelConfig, w io.Writer) (recipe.History, error) {
	loss, cached, err := c.loss()
	if err != nil {
		return nil, err
	}
	if c.Student == "" && (c.Prune <= 0 || c.Prune >= 1) {
		return nil, fmt.Errorf("-prune %g: need a fraction of the FFN width in (0, 1), or -student DIR", c.Prune)
	}
	if c.Data == "" {
		return nil, errors.New("-teacher needs -data, a JSONL file of SFT records")
	}
	t, err := lab.LoadHF(c.Teacher)
	if err != nil {
		return nil, err
	}
	var student *nn.Model
	how := ""
	if c.Student != "" {
		if student, err = hf.LoadModel(c.Student); err != nil {
			return nil, err
		}
		if student.Config.Vocab != t.Model.Config.Vocab {
			return nil, fmt.Errorf("-student %s: vocabulary %d, the teacher's %d: distillation needs one tokenizer", c.Student, student.Config.Vocab, t.Model.Config.Vocab)
		}
		how = c.Student
	} else {
		hidden := max(1, int(c.Prune*float64(t.Model.Config.Hidden)))
		if student, err = t.Model.PruneFFN(hidden); err != nil {
			return nil, err
		}
		how = fmt.Sprintf("the teacher with every FFN pruned %d → %d", t.Model.Config.Hidden, hidden)
	}
	xs, err := lab.ReadExamples(t.Encoder(c.MaxPrompt, c.MaxCompletion), c.Data, c.Records)
	if err != nil {
		return nil, err
	}
	n := lab.HoldOut(len(xs))
	train, eval := xs[:n], xs[n:]
	fmt.Fprintln(w, "teacher "+t.Describe())
	fmt.Fprintf(w, "student: %s, %.1fM parameters\n", how, float64(student.NumParams())/1e6)
	fmt.Fprintf(w, "%s: %d records for training, %d held out; %d completion tokens in all\n", c.Data, len(train), len(eval), lab.CompletionTokens(xs))
	if err := os.MkdirAll(c.Out, 0o755); err != nil {
		return nil, err
	}

	d := &recipe.Distill{Student: student, Loss: loss}
	if cached {
		// AFM's way: one teacher pass over the data, before training.
		k, lp := 1, false
		if sk, ok := loss.(recipe.SparseKLLoss); ok {
			k, lp = sk.K, true
		}
		path := filepath.Join(c.Out, fmt.Sprintf("teacher-top%d.cache", k))
		start := time.Now()
		if d.Cache, err = recipe.PrecomputeTeacher(ctx, t.Model, train, k, c.Batch, lp, t.Pad, path); err != nil {
			return nil, err
		}
		st, err := os.Stat(path)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(w, "teacher cache %s: %d tokens, %d bytes, in %v\n", path, lab.CompletionTokens(train), st.Size(), time.Since(start).Round(time.Millisecond))
	} else {
		d.Teacher = t.Model
	}
	var before, teacher scores
	if len(eval) > 0 {
		if teacher, err = heldOut(ctx, t.Model, eval, c.Batch, t.Pad); err != nil {
			return nil, err
		}
		if before, err = heldOut(ctx, student, eval, c.Batch, t.Pad); err != nil {
			return nil, err
		}
	}
	bar := lab.NewBar(c.Progress, c.Steps, "distill "+c.Loss)
	log := &lab.TrainLog{W: w, Bar: bar, Total: c.Steps, Line: func(r recipe.Record) string {
		return fmt.Sprintf("loss %.4f", r.Metrics["loss"])
	}}
	d.Config = recipe.Config{
		Steps: c.Steps, Batch: c.Batch, Accum: c.Accum, LR: c.LR, MinLR: c.LR / 10, Warmup: c.Steps / 10, ClipNorm: 1,
		Seed: c.Seed, Pad: t.Pad, Recompute: c.Recompute, Dir: filepath.Join(c.Out, "run"), Callback: log.Callback,
	}
	log.Start()
	h, err := d.Train(ctx, train, nil)
	bar.Finish()
	if err != nil {
		return nil, err
	}
	if log.Ran() < c.Steps {
		fmt.Fprintf(w, "resumed at step %d from the checkpoint in %s\n", c.Steps-log.Ran(), d.Config.Dir)
	}
	if log.Ran() > 0 {
		l, _ := h.Last("loss")
		fmt.Fprintf(w, "%s of %d records; last training loss %.4f\n", log.PerStep(), c.Batch*max(1, c.Accum), l)
	}
	if len(eval) > 0 {
		after, err := heldOut(ctx, student, eval, c.Batch, t.Pad)
		if err != nil {
			return nil, err
		}
		tb := lab.Table{
			Title: fmt.Sprintf("held-out completions of %d records (%d tokens)", len(eval), lab.CompletionTokens(eval)),
			Head:  []string{"model", "loss (nats/token)", "perplexity (per token)", "top-1 accuracy (%)"},
		}
		for _, r := range []struct {
			name string
			s    scores
		}{{"teacher", teacher}, {"student before", before}, {"student after " + c.Loss, after}} {
			tb.Rows = append(tb.Rows, []string{r.name, fmt.Sprintf("%.4f", r.s.loss), fmt.Sprintf("%.2f", lab.Perplexity(r.s.loss)), fmt.Sprintf("%.1f", 100*r.s.acc)})
		}
		if err := tb.Print(w); err != nil {
			return nil, err
		}
	}
	if err := hf.SaveModel(student, c.Out); err != nil {
		return nil, err
	}
	if err := lab.CopyTokenizer(c.Teacher, c.Out); err != nil {
		return nil, err
	}
	fmt.Fprintf(w, "student: %s (config.json, safetensors and the tokenizer's files)\n", c.Out)
	return h, nil
}

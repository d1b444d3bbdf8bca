package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"

	"github.com/posttrain/posttrain/distill"
	"github.com/posttrain/posttrain/recipe"
	"github.com/posttrain/posttrain/tensor"
	"github.com/posttrain/posttrain/tensor/autograd"
	"github.com/posttrain/posttrain/tensor/nn"
)

// LMConfig sets a next-token training run.
type LMConfig struct {
	Steps, Batch, Seq int     // optimizer steps, sequences per step, tokens per sequence
	LR, MinLR         float64 // peak and final learning rate (warmup, then cosine)
	Warmup            int     // warmup steps; 0 means Steps/20
	Seed              uint64  // the order of the training windows
	// Teacher, if set, holds the teacher's top-1 prediction for every
	// token of the training stream (as a distill cache stores it), and
	// TeacherWeight is w of distill.ConvexCombination; nil trains on the
	// data's labels alone (distill.CrossEntropy).
	Teacher       []int32
	TeacherWeight float64
	// TopK, if set, holds the teacher's top-k predictions for the same
	// tokens (rows aligned as Teacher's), and the loss is
	// distill.SparseKL with α = Alpha and the leftover mass as a bucket;
	// Teacher is then ignored.
	TopK      *distill.TopK
	Alpha     float64
	EvalEvery int     // held-out loss every this many steps (0: never)
	Test      []int32 // held-out stream for EvalEvery
	EvalSeqs  int     // held-out windows per evaluation; 0 means all
}

// Curve is a run's loss per step and its held-out loss at the steps
// EvalAt lists.
type Curve struct {
	Loss   []float64
	EvalAt []int
	Eval   []float64
}

// TrainLM trains m on windows of tokens. Windows are aligned to multiples
// of Seq, the chunking PrecomputeTop1 uses, so that cfg.Teacher[i] is the
// teacher's prediction of token i+1 from the window holding token i.
// Two runs with the same Seed see the same windows in the same order.
func TrainLM(ctx context.Context, m *nn.TinyLM, tokens []int32, cfg LMConfig, bar Bar) (Curve, error) {
	var c Curve
	chunks := (len(tokens) - 1) / cfg.Seq
	if chunks < 1 {
		return c, fmt.Errorf("lab: %d tokens hold no window of %d", len(tokens), cfg.Seq)
	}
	if cfg.TopK != nil && len(cfg.TopK.IDs) < chunks*cfg.Seq*cfg.TopK.K {
		return c, fmt.Errorf("lab: teacher top-k predictions cover %d tokens, need %d", len(cfg.TopK.IDs)/cfg.TopK.K, chunks*cfg.Seq)
	}
	if cfg.Teacher != nil && len(cfg.Teacher) < chunks*cfg.Seq {
		return c, fmt.Errorf("lab: teacher predictions cover %d tokens, need %d", len(cfg.Teacher), chunks*cfg.Seq)
	}
	warm := cfg.Warmup
	if warm == 0 {
		warm = max(1, cfg.Steps/20)
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x1a))
	opt := nn.NewAdamW(m.Params(), cfg.LR)
	opt.ClipNorm = 1
	tp := autograd.NewTape()
	n := cfg.Batch * cfg.Seq
	in, labels, top1 := make([]int32, n), make([]int32, n), make([]int32, n)
	var grad *tensor.Dense
	var topk distill.TopK
	if cfg.TopK != nil {
		k := cfg.TopK.K
		topk = distill.TopK{K: k, IDs: make([]int32, n*k), LogProbs: make([]float32, n*k)}
	}
	for step := range cfg.Steps {
		if err := ctx.Err(); err != nil {
			return c, err
		}
		for b := range cfg.Batch {
			s := rng.IntN(chunks) * cfg.Seq
			copy(in[b*cfg.Seq:], tokens[s:s+cfg.Seq])
			copy(labels[b*cfg.Seq:], tokens[s+1:s+1+cfg.Seq])
			if cfg.Teacher != nil {
				copy(top1[b*cfg.Seq:], cfg.Teacher[s:s+cfg.Seq])
			}
			if k := topk.K; k > 0 {
				copy(topk.IDs[b*cfg.Seq*k:], cfg.TopK.IDs[s*k:(s+cfg.Seq)*k])
				copy(topk.LogProbs[b*cfg.Seq*k:], cfg.TopK.LogProbs[s*k:(s+cfg.Seq)*k])
			}
		}
		tp.Reset()
		m.ZeroGrad()
		logits, err := m.Forward(tp, in, cfg.Batch)
		if err != nil {
			return c, err
		}
		if grad == nil {
			grad = tensor.New(logits.Value.Shape()...)
		}
		var loss float64
		switch {
		case cfg.TopK != nil:
			loss, err = distill.SparseKL(grad, logits.Value, labels, topk, distill.Bucket, cfg.Alpha)
		case cfg.Teacher != nil:
			loss, err = distill.ConvexCombination(grad, logits.Value, labels, top1, cfg.TeacherWeight)
		default:
			loss, err = distill.CrossEntropy(grad, logits.Value, labels)
		}
		if err != nil {
			return c, fmt.Errorf("lab: step %d: %w", step, err)
		}
		tp.Backward(logits, grad)
		opt.LR = nn.WarmupCosine(step, warm, cfg.Steps, cfg.LR, cfg.MinLR)
		if _, err := opt.Step(); err != nil {
			return c, fmt.Errorf("lab: step %d: %w", step, err)
		}
		c.Loss = append(c.Loss, loss)
		if cfg.EvalEvery > 0 && ((step+1)%cfg.EvalEvery == 0 || step+1 == cfg.Steps) {
			l, err := HeldOutLoss(m, cfg.Test, cfg.Seq, cfg.EvalSeqs)
			if err != nil {
				return c, err
			}
			c.EvalAt = append(c.EvalAt, step+1)
			c.Eval = append(c.Eval, l)
		}
		bar.Add(1)
	}
	return c, nil
}

// HeldOutLoss is m's mean next-token cross-entropy (nats per byte) over
// the first windows (all for windows ≤ 0) of tokens cut into windows of
// seq tokens.
func HeldOutLoss(m *nn.TinyLM, tokens []int32, seq, windows int) (float64, error) {
	l, _, err := HeldOut(m, tokens, seq, windows)
	return l, err
}

// HeldOut is HeldOutLoss with the top-1 accuracy: the fraction of
// positions whose most likely next byte is the true one.
func HeldOut(m *nn.TinyLM, tokens []int32, seq, windows int) (loss, acc float64, err error) {
	chunks := (len(tokens) - 1) / seq
	if windows > 0 {
		chunks = min(chunks, windows)
	}
	if chunks < 1 {
		return 0, 0, errors.New("lab: no held-out window")
	}
	const per = 16
	tp := autograd.NewTape()
	var sum float64
	hits := 0
	for c0 := 0; c0 < chunks; c0 += per {
		b := min(per, chunks-c0)
		s := c0 * seq
		tp.Reset()
		logits, err := m.Forward(tp, tokens[s:s+b*seq], b)
		if err != nil {
			return 0, 0, err
		}
		labels := tokens[s+1 : s+1+b*seq]
		l, err := distill.CrossEntropy(nil, logits.Value, labels)
		if err != nil {
			return 0, 0, err
		}
		sum += l * float64(b)
		v := logits.Value.Cols()
		d := logits.Value.Data()
		for i, y := range labels {
			if tensor.ArgMax(d[i*v:(i+1)*v]) == int(y) {
				hits++
			}
		}
	}
	return sum / float64(chunks), float64(hits) / float64(chunks*seq), nil
}

// PrecomputeTop1 is recipe.PrecomputeTop1 with a progress bar.
func PrecomputeTop1(ctx context.Context, teacher *nn.TinyLM, tokens []int32, seq int, path string, bar Bar) ([]int32, error) {
	return recipe.PrecomputeTop1(ctx, teacher, tokens, seq, path, bar.progress())
}

// Perplexity is e^loss.
func Perplexity(loss float64) float64 { return math.Exp(loss) }

// Pretrain returns a TinyLM of cfg, initialized from seed and trained
// for steps steps of 16 windows of its context on tokens (learning rate
// 3e-3, cosine to 3e-4): the base model of the focused examples, with a
// progress bar on progress.
func Pretrain(ctx context.Context, cfg nn.Config, tokens []int32, steps int, seed uint64, progress io.Writer) (*nn.Model, error) {
	m, err := nn.NewTinyLM(cfg, seed)
	if err != nil {
		return nil, err
	}
	bar := NewBar(progress, steps, "pre-train base")
	_, err = TrainLM(ctx, m, tokens, LMConfig{Steps: steps, Batch: 16, Seq: cfg.Context, LR: 3e-3, MinLR: 3e-4, Seed: seed}, bar)
	bar.Finish()
	return m, err
}

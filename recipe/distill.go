package recipe

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/posttrain/posttrain/distill"
	"github.com/posttrain/posttrain/distill/cache"
	"github.com/posttrain/posttrain/tensor"
	"github.com/posttrain/posttrain/tensor/nn"
)

// DistillLoss is a distillation objective for Distill: ConvexLoss,
// SoftTargetLoss, JSDLoss or SparseKLLoss.
type DistillLoss interface{ distillLoss() }

// ConvexLoss is AFM's target: the convex combination of the data's
// labels and the teacher's top-1 prediction (distill.ConvexCombination),
// TeacherWeight on the teacher (distill.DefaultTeacherWeight = 0.9).
type ConvexLoss struct{ TeacherWeight float64 }

// SoftTargetLoss is Hinton et al.'s T²·KL(p_T‖p_S) at Temperature
// (distill.SoftTarget). It needs the teacher's whole distribution: a live
// Teacher.
type SoftTargetLoss struct{ Temperature float64 }

// JSDLoss is GKD's generalized Jensen–Shannon divergence
// (distill.GeneralizedJSD); a live Teacher.
type JSDLoss struct{ Beta, Temperature float64 }

// SparseKLLoss is KL from the teacher's top K tokens with the leftover
// mass handled as Leftover says, mixed with the labels' cross-entropy by
// Alpha (distill.SparseKL). With a live Teacher, K tokens are taken from
// its logits; with a Cache, its K.
type SparseKLLoss struct {
	K        int
	Leftover distill.Leftover
	Alpha    float64
}

func (ConvexLoss) distillLoss()     {}
func (SoftTargetLoss) distillLoss() {}
func (JSDLoss) distillLoss()        {}
func (SparseKLLoss) distillLoss()   {}

// TeacherCache holds a teacher's top-k predictions for every completion
// token of a list of examples, read from a distill/cache file that
// PrecomputeTeacher wrote for the same list.
type TeacherCache struct {
	Format cache.Format
	ids    []int32
	lps    []float32
	start  []int // first token of each example
}

// PrecomputeTeacher runs teacher over examples, batch examples at a time,
// and writes its top-K predictions (with log-probs, bfloat16, when K > 1
// or logProbs is set) for each completion token to a distill/cache file
// at path, written whole or not at all; then reads it back.
func PrecomputeTeacher(ctx context.Context, teacher *nn.Model, examples []Example, k, batch int, logProbs bool, pad int32, path string) (*TeacherCache, error) {
	if len(examples) == 0 || k < 1 || batch < 1 {
		return nil, fmt.Errorf("recipe: PrecomputeTeacher: %d examples, K %d, batch %d", len(examples), k, batch)
	}
	f := cache.Format{Vocab: teacher.Config.Vocab, K: k, PackIDs: true}
	if logProbs || k > 1 {
		f.LogProbs = cache.BF16
	}
	w, err := cache.Create(path, f)
	if err != nil {
		return nil, fmt.Errorf("recipe: PrecomputeTeacher: %w", err)
	}
	sc := NewScorer(teacher)
	row := make([]float32, f.Vocab)
	idx, val := make([]int, k), make([]float32, k)
	for i := 0; i < len(examples); i += batch {
		if err := ctx.Err(); err != nil {
			w.Abort()
			return nil, err
		}
		s, err := exampleSeqs(examples[i:min(i+batch, len(examples))], pad)
		if err == nil {
			_, err = sc.body(s, false)
		}
		if err != nil {
			w.Abort()
			return nil, fmt.Errorf("recipe: PrecomputeTeacher: examples from %d: %w", i, err)
		}
		// The teacher's logits come a chunk of rows at a time.
		var ids []int32
		var lps []float32
		sc.eachLogits(func(_ int, z []float32) {
			if f.LogProbs == cache.None {
				ids = append(ids, int32(tensor.ArgMax(z)))
				return
			}
			tensor.LogSoftmax(row, z)
			tensor.TopKTo(idx, val, row)
			for a := range k {
				ids = append(ids, int32(idx[a]))
				lps = append(lps, min(val[a], 0))
			}
		})
		if err := w.Write(ids, lps); err != nil {
			w.Abort()
			return nil, fmt.Errorf("recipe: PrecomputeTeacher: %w", err)
		}
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("recipe: PrecomputeTeacher: %w", err)
	}
	return OpenTeacherCache(path, examples)
}

// OpenTeacherCache reads the cache at path for examples, verifying every
// block's checksum and that it holds exactly one entry per completion
// token.
func OpenTeacherCache(path string, examples []Example) (*TeacherCache, error) {
	r, err := cache.Open(path)
	if err != nil {
		return nil, fmt.Errorf("recipe: OpenTeacherCache: %w", err)
	}
	defer r.Close()
	c := &TeacherCache{Format: r.Format(), start: make([]int, len(examples)+1)}
	for i, x := range examples {
		c.start[i+1] = c.start[i] + len(x.Completion)
	}
	if n := int64(c.start[len(examples)]); r.Tokens() != n {
		return nil, fmt.Errorf("recipe: OpenTeacherCache: %s holds %d tokens, the examples' completions %d (made for other data?)", path, r.Tokens(), n)
	}
	for {
		b, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("recipe: OpenTeacherCache: %w", err)
		}
		c.ids = append(c.ids, b.IDs...)
		c.lps = append(c.lps, b.LogProbs...)
	}
	return c, nil
}

// topK returns the cached predictions of examples idx, in order.
func (c *TeacherCache) topK(idx []int) distill.TopK {
	k := c.Format.K
	t := distill.TopK{K: k}
	for _, i := range idx {
		t.IDs = append(t.IDs, c.ids[c.start[i]*k:c.start[i+1]*k]...)
		if c.lps != nil {
			t.LogProbs = append(t.LogProbs, c.lps[c.start[i]*k:c.start[i+1]*k]...)
		}
	}
	return t
}

// Distill trains a student to match a teacher on the completions of
// examples — knowledge distillation (Hinton et al. 2015), with AFM's
// convex-combination target first. The teacher is live (Teacher) or
// precomputed (Cache, for ConvexLoss and SparseKLLoss). Only completion
// tokens are distilled; prompts are context.
type Distill struct {
	Student *nn.Model
	Teacher *nn.Model
	Cache   *TeacherCache // predictions for Train's examples, by index
	Loss    DistillLoss
	Config  Config

	train, evalSet []Example
	st, te         *Scorer
	fused          distill.Fused
	dw             *tensor.Dense // the head's gradient before scaling (accumulation)
}

// Train runs the configured steps and returns what it logged: loss,
// grad_norm, learning_rate, epoch, num_tokens (and eval_loss).
func (d *Distill) Train(ctx context.Context, train, eval []Example) (History, error) {
	if d.Student == nil || d.Loss == nil || (d.Teacher == nil && d.Cache == nil) {
		return nil, errors.New("recipe: Distill: need a Student, a Loss and a Teacher or a Cache")
	}
	if d.Teacher == nil {
		switch d.Loss.(type) {
		case SoftTargetLoss, JSDLoss:
			return nil, fmt.Errorf("recipe: Distill: %T needs a live Teacher", d.Loss)
		}
		if d.Cache.Format.Vocab != d.Student.Config.Vocab {
			return nil, fmt.Errorf("recipe: Distill: cache vocabulary %d, student %d", d.Cache.Format.Vocab, d.Student.Config.Vocab)
		}
		if len(d.Cache.start) != len(train)+1 {
			return nil, fmt.Errorf("recipe: Distill: cache for %d examples, training on %d", len(d.Cache.start)-1, len(train))
		}
	} else if d.Teacher.Config.Vocab != d.Student.Config.Vocab {
		return nil, fmt.Errorf("recipe: Distill: teacher vocabulary %d, student %d", d.Teacher.Config.Vocab, d.Student.Config.Vocab)
	}
	for _, set := range [][]Example{train, eval} {
		if err := checkExamples(set, d.Student); err != nil {
			return nil, err
		}
	}
	d.train, d.evalSet, d.st = train, eval, d.Config.scorer(d.Student)
	d.st.Recompute, d.st.ctx = d.Config.Recompute, ctx
	if d.Teacher != nil {
		d.te = d.Config.scorer(d.Teacher)
		d.te.ctx = ctx
	}
	l := &loop{op: "Distill", cfg: d.Config, n: len(train), params: d.Student.TrainableParams(), zero: d.Student.ZeroGrad}
	return l.run(ctx, d)
}

// loss computes the objective on the batch's examples idx (for the
// cache) laid out as s, the student's pass already run in d.st; with
// grad, it carries scale·dLoss back into the student (unfused: through
// the whole logits of the completion positions, fusedLoss otherwise).
func (d *Distill) loss(st, te *Scorer, s Seqs, idx []int, scale float64, grad bool) (float64, error) {
	if !st.Unfused {
		return d.fusedLoss(st, te, s, idx, scale, grad)
	}
	// Both Scorers keep the logits of the completion positions only.
	stu, labels := st.Logits(), st.Labels()
	var tea *tensor.Dense
	if te != nil {
		if _, err := te.forward(s, false); err != nil {
			return 0, fmt.Errorf("teacher: %w", err)
		}
		tea = te.Logits()
	}
	var g *tensor.Dense
	if grad {
		g = tensor.New(stu.Shape()...)
	}
	var loss float64
	var err error
	switch l := d.Loss.(type) {
	case ConvexLoss:
		loss, err = distill.ConvexCombination(g, stu, labels, d.top1(te, idx, len(labels)), l.TeacherWeight)
	case SoftTargetLoss:
		loss, err = distill.SoftTarget(g, stu, tea, l.Temperature)
	case JSDLoss:
		loss, err = distill.GeneralizedJSD(g, stu, tea, l.Beta, l.Temperature)
	case SparseKLLoss:
		loss, err = distill.SparseKL(g, stu, labels, d.topK(te, idx, l.K), l.Leftover, l.Alpha)
	default:
		return 0, fmt.Errorf("unknown loss %T", d.Loss)
	}
	if err != nil || !grad {
		return loss, err
	}
	tensor.Scale(stu.Data(), float32(scale), g.Data())
	return loss, st.BackwardLogits(stu)
}

// fusedLoss is loss on the fused head: the student's (and a live
// teacher's) scored hidden states with their output weights, the logits
// formed a chunk of rows at a time inside distill.Fused. With grad, the
// student's kept hidden states become scale·dLoss/dH and the head's
// gradient is added to its weight's, then the student's pass is run
// backward.
func (d *Distill) fusedLoss(st, te *Scorer, s Seqs, idx []int, scale float64, grad bool) (float64, error) {
	labels := st.Labels()
	var th distill.Head
	if te != nil {
		if _, err := te.body(s, false); err != nil {
			return 0, fmt.Errorf("teacher: %w", err)
		}
		th = distill.Head{H: te.hs, W: te.Model.HeadWeight()}
	}
	sh := distill.Head{H: st.hs, W: st.Model.HeadWeight()}
	var g distill.HeadGrad
	if grad {
		g = distill.HeadGrad{H: st.hs, W: st.headGrad()}
		if g.W != nil && scale != 1 {
			// dW accumulates: scale it on its way into the gradient.
			d.dw = fit(d.dw, g.W.Dim(0), g.W.Dim(1))
			d.dw.Zero()
			g.W = d.dw
		}
		if !st.hidden.RequiresGrad() {
			g.H = nil
		}
	}
	var loss float64
	var err error
	switch l := d.Loss.(type) {
	case ConvexLoss:
		loss, err = d.fused.ConvexCombination(st.context(), g, sh, labels, d.top1(te, idx, len(labels)), l.TeacherWeight)
	case SoftTargetLoss:
		loss, err = d.fused.SoftTarget(st.context(), g, sh, th, labels, l.Temperature)
	case JSDLoss:
		loss, err = d.fused.GeneralizedJSD(st.context(), g, sh, th, labels, l.Beta, l.Temperature)
	case SparseKLLoss:
		loss, err = d.fused.SparseKL(st.context(), g, sh, labels, d.topK(te, idx, l.K), l.Leftover, l.Alpha)
	default:
		return 0, fmt.Errorf("unknown loss %T", d.Loss)
	}
	if err != nil || !grad {
		return loss, err
	}
	if g.W == d.dw && g.W != nil {
		tensor.Axpy(float32(scale), d.dw.Data(), st.headGrad().Data())
	}
	if g.H != nil && scale != 1 {
		tensor.Scale(g.H.Data(), float32(scale), g.H.Data())
	}
	st.backwardHidden(st.hs)
	return loss, nil
}

// top1 returns the teacher's top-1 token of each of the n scored rows:
// the live teacher's argmax in its last pass, or the cache's first id.
func (d *Distill) top1(te *Scorer, idx []int, n int) []int32 {
	top1 := make([]int32, n)
	if te != nil {
		te.eachLogits(func(r int, z []float32) { top1[r] = int32(tensor.ArgMax(z)) })
		return top1
	}
	t := d.Cache.topK(idx)
	for r := range top1 {
		top1[r] = t.IDs[r*t.K]
	}
	return top1
}

// topK returns the teacher's top k tokens and log-probs of each scored
// row: the live teacher's last pass, or the cache (its own K).
func (d *Distill) topK(te *Scorer, idx []int, k int) distill.TopK {
	if te != nil {
		return liveTopK(te, k)
	}
	return d.Cache.topK(idx)
}

// liveTopK returns the teacher's top k tokens and log-probs per scored
// row of its last pass.
func liveTopK(te *Scorer, k int) distill.TopK {
	v := te.Model.Config.Vocab
	k = max(1, min(k, v))
	m := len(te.rows)
	t := distill.TopK{K: k, IDs: make([]int32, 0, m*k), LogProbs: make([]float32, 0, m*k)}
	row := make([]float32, v)
	idx, val := make([]int, k), make([]float32, k)
	te.eachLogits(func(_ int, z []float32) {
		tensor.LogSoftmax(row, z)
		tensor.TopKTo(idx, val, row)
		for a := range k {
			t.IDs = append(t.IDs, int32(idx[a]))
			t.LogProbs = append(t.LogProbs, min(val[a], 0))
		}
	})
	return t
}

func (d *Distill) micro(ctx context.Context, idx []int, pass uint64, scale float64) (map[string]float64, int, error) {
	if a := d.Student.LoRA(); a != nil {
		a.Pass = pass
	}
	xs := make([]Example, len(idx))
	tokens := 0
	for i, k := range idx {
		xs[i] = d.train[k]
		tokens += len(xs[i].Prompt) + len(xs[i].Completion)
	}
	s, err := exampleSeqs(xs, d.Config.Pad)
	if err != nil {
		return nil, 0, err
	}
	// The losses take the student's hidden states (and form its logits
	// themselves, whole or a chunk at a time), not its log-probs.
	if _, err := d.st.body(s, true); err != nil {
		return nil, 0, err
	}
	loss, err := d.loss(d.st, d.te, s, idx, scale, true)
	if err != nil {
		return nil, 0, err
	}
	return map[string]float64{"loss": loss}, tokens, nil
}

// Evaluate returns the mean distillation loss over xs, weighted by
// completion tokens, without gradients. A cached teacher covers only the
// training examples, so evaluation needs a live Teacher; without one it
// returns the student's cross-entropy on the labels alone.
func (d *Distill) Evaluate(ctx context.Context, xs []Example) (map[string]float64, error) {
	if len(xs) == 0 {
		return nil, nil
	}
	st := d.Config.scorer(d.Student)
	st.ctx = ctx
	var te *Scorer
	if d.Teacher != nil {
		te = d.Config.scorer(d.Teacher)
		te.ctx = ctx
	}
	bs := max(1, d.Config.Batch)
	var sum float64
	var n int
	for i := 0; i < len(xs); i += bs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		s, err := exampleSeqs(xs[i:min(i+bs, len(xs))], d.Config.Pad)
		if err != nil {
			return nil, err
		}
		lp, err := st.forward(s, false)
		if err != nil {
			return nil, err
		}
		c := s.CompletionTokens()
		if te == nil {
			for _, x := range lp {
				sum -= x
			}
			n += c
			continue
		}
		l, err := d.loss(st, te, s, nil, 1, false)
		if err != nil {
			return nil, err
		}
		sum += l * float64(c)
		n += c
	}
	key := "loss"
	if te == nil {
		key = "nll"
	}
	return map[string]float64{key: sum / float64(n)}, nil
}

func (d *Distill) eval(ctx context.Context) (map[string]float64, error) {
	return d.Evaluate(ctx, d.evalSet)
}

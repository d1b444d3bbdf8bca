package recipe

import (
	"context"
	"errors"
	"fmt"

	"github.com/posttrain/posttrain/prefopt"
	"github.com/posttrain/posttrain/tensor/nn"
)

// Preference trains a policy on preference pairs with any pairwise
// objective of prefopt (DPO, IPO, SimPO, ORPO, CPO, the TRL loss types…),
// as TRL's DPOTrainer does.
//
// The reference is Ref when set; otherwise, for a policy carrying LoRA
// adapters, the policy itself with its adapters switched off (TRL's
// behaviour with a PEFT model: no second copy of the weights); otherwise
// there is none, and the objective must be reference-free (SimPO, ORPO,
// CPO). RefLogProbs, when set, replaces the reference forward passes with
// precomputed log-probs of Train's pairs (PrecomputeRef).
type Preference struct {
	Policy      *nn.Model
	Ref         *nn.Model
	RefLogProbs *RefLogProbs
	Objective   prefopt.Objective
	Config      Config
	// NoRef computes no reference log-probs even for a LoRA policy (for a
	// reference-free objective).
	NoRef bool

	train, evalPairs []Pair
	policy, ref      *Scorer
}

// Train runs the configured steps on train, evaluating on eval (may be
// empty) every Config.EvalEvery steps, and returns what it logged:
// loss, rewards/chosen, rewards/rejected, rewards/accuracies,
// rewards/margins, logps/chosen, logps/rejected (and nll_loss and the
// log-odds metrics for the objectives that have them), grad_norm,
// learning_rate, epoch, num_tokens.
//
// A run with Config.Dir set checkpoints there and resumes from a
// checkpoint it finds; cancelling ctx stops it between micro-batches
// with ctx's error.
func (p *Preference) Train(ctx context.Context, train, eval []Pair) (History, error) {
	if p.Policy == nil || p.Objective == nil {
		return nil, errors.New("recipe: Preference: need a Policy and an Objective")
	}
	if p.RefLogProbs != nil && (len(p.RefLogProbs.Chosen) != len(train) || len(p.RefLogProbs.Rejected) != len(train)) {
		return nil, fmt.Errorf("recipe: Preference: RefLogProbs for %d pairs, training on %d", len(p.RefLogProbs.Chosen), len(train))
	}
	if err := checkPairs(train, p.Policy); err != nil {
		return nil, err
	}
	if err := checkPairs(eval, p.Policy); err != nil {
		return nil, err
	}
	p.train, p.evalPairs = train, eval
	p.policy, p.ref = p.Config.scorer(p.Policy), nil
	p.scorers()
	p.policy.ctx = ctx
	if p.ref != nil {
		p.ref.ctx = ctx
	}
	l := &loop{op: "Preference", cfg: p.Config, n: len(train), params: p.Policy.TrainableParams(), zero: p.Policy.ZeroGrad}
	return l.run(ctx, p)
}

// refModel returns the model the reference log-probs come from, or nil.
func (p *Preference) refModel() *nn.Model {
	switch {
	case p.Ref != nil:
		return p.Ref
	case !p.NoRef && p.Policy.LoRA() != nil:
		return p.Policy
	}
	return nil
}

// checkPairs reports the first pair that cannot be trained on, by line.
func checkPairs(pairs []Pair, m *nn.Model) error {
	for i, q := range pairs {
		where := fmt.Sprintf("pair %d", i)
		if q.Line > 0 {
			where = fmt.Sprintf("record at line %d", q.Line)
		}
		switch {
		case len(q.Prompt) == 0:
			return fmt.Errorf("recipe: %s: empty prompt", where)
		case len(q.Chosen) == 0 || len(q.Rejected) == 0:
			return fmt.Errorf("recipe: %s: empty completion", where)
		}
		for _, s := range [][]int32{q.Prompt, q.Chosen, q.Rejected} {
			if err := m.CheckTokens(s); err != nil {
				return fmt.Errorf("recipe: %s: %w", where, err)
			}
		}
		if n := len(q.Prompt) + max(len(q.Chosen), len(q.Rejected)); n > m.Config.Context {
			return fmt.Errorf("recipe: %s: %d tokens exceed the model's context of %d", where, n, m.Config.Context)
		}
	}
	return nil
}

// Step computes the objective on pairs — policy forward, reference
// log-probs, loss, policy backward — adding scale times the gradient to
// the policy's trainable parameters, and returns the objective's result.
// refIdx, when RefLogProbs is set, gives each pair's index into it. It is
// the micro-batch of Train, exported for users who run their own loop.
func (p *Preference) Step(pairs []Pair, refIdx []int, scale float64) (prefopt.Result, error) {
	p.scorers()
	s, err := pairSeqs(pairs, p.Config.Pad)
	if err != nil {
		return prefopt.Result{}, err
	}
	n := len(pairs)
	b := prefopt.Batch{ChosenLen: make([]int, n), RejectedLen: make([]int, n)}
	for i, q := range pairs {
		b.ChosenLen[i], b.RejectedLen[i] = len(q.Chosen), len(q.Rejected)
	}
	switch {
	case p.RefLogProbs != nil:
		if len(refIdx) != n {
			return prefopt.Result{}, fmt.Errorf("%d reference indices for %d pairs", len(refIdx), n)
		}
		b.RefChosen, b.RefRejected = make([]float64, n), make([]float64, n)
		for i, k := range refIdx {
			b.RefChosen[i], b.RefRejected[i] = p.RefLogProbs.Chosen[k], p.RefLogProbs.Rejected[k]
		}
	case p.ref != nil:
		// The reference runs first: with LoRA it is the policy's own
		// weights, and its pass must not overwrite the policy's tape.
		lp, err := p.refLogProbs(p.ref, s)
		if err != nil {
			return prefopt.Result{}, fmt.Errorf("reference: %w", err)
		}
		b.RefChosen, b.RefRejected = lp[:n], lp[n:]
	}
	lp, err := p.policy.Forward(s)
	if err != nil {
		return prefopt.Result{}, err
	}
	b.PolicyChosen, b.PolicyRejected = lp[:n], lp[n:]
	res, err := p.Objective.Loss(b)
	if err != nil {
		return prefopt.Result{}, err
	}
	d := make([]float64, 2*n)
	for i := range n {
		d[i], d[n+i] = scale*res.GradChosen[i], scale*res.GradRejected[i]
	}
	if err := p.policy.Backward(d); err != nil {
		return prefopt.Result{}, err
	}
	return res, nil
}

func (p *Preference) micro(ctx context.Context, idx []int, pass uint64, scale float64) (map[string]float64, int, error) {
	if a := p.Policy.LoRA(); a != nil {
		a.Pass = pass
	}
	pairs := make([]Pair, len(idx))
	for i, k := range idx {
		pairs[i] = p.train[k]
	}
	res, err := p.Step(pairs, idx, scale)
	if err != nil {
		return nil, 0, withLines(pairs, err)
	}
	return prefMetrics(res), Tokens(pairs), nil
}

// withLines adds the batch's record lines to an error.
func withLines(pairs []Pair, err error) error {
	lines := make([]int, 0, len(pairs))
	for _, q := range pairs {
		if q.Line > 0 {
			lines = append(lines, q.Line)
		}
	}
	if len(lines) == 0 {
		return err
	}
	return fmt.Errorf("batch of records at lines %v: %w", lines, err)
}

func prefMetrics(r prefopt.Result) map[string]float64 {
	s := r.Stats
	m := map[string]float64{
		"loss":               r.Loss,
		"rewards/chosen":     s.RewardsChosen,
		"rewards/rejected":   s.RewardsRejected,
		"rewards/accuracies": s.Accuracy,
		"rewards/margins":    s.Margin,
		"logps/chosen":       s.LogPChosen,
		"logps/rejected":     s.LogPRejected,
	}
	if s.NLL != 0 {
		m["nll_loss"] = s.NLL
	}
	if s.LogOddsRatio != 0 || s.LogOddsChosen != 0 {
		m["log_odds_ratio"], m["log_odds_chosen"] = s.LogOddsRatio, s.LogOddsChosen
	}
	return m
}

// Evaluate returns the objective's metrics on pairs, without gradients,
// as means over batches of Config.Batch pairs weighted by their size.
// The reference comes from the reference model (RefLogProbs covers only
// the training pairs).
func (p *Preference) Evaluate(ctx context.Context, pairs []Pair) (map[string]float64, error) {
	if len(pairs) == 0 {
		return nil, nil
	}
	bs := max(1, p.Config.Batch)
	pol := p.Config.scorer(p.Policy)
	pol.ctx = ctx
	var ref *Scorer
	if r := p.refModel(); r != nil {
		ref = p.Config.scorer(r)
		ref.ctx = ctx
	}
	sums := map[string]float64{}
	for i := 0; i < len(pairs); i += bs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		batch := pairs[i:min(i+bs, len(pairs))]
		n := len(batch)
		s, err := pairSeqs(batch, p.Config.Pad)
		if err != nil {
			return nil, err
		}
		b := prefopt.Batch{ChosenLen: make([]int, n), RejectedLen: make([]int, n)}
		for j, q := range batch {
			b.ChosenLen[j], b.RejectedLen[j] = len(q.Chosen), len(q.Rejected)
		}
		if ref != nil {
			lp, err := p.refLogProbs(ref, s)
			if err != nil {
				return nil, withLines(batch, err)
			}
			b.RefChosen, b.RefRejected = lp[:n], lp[n:]
		}
		lp, err := pol.LogProbs(s)
		if err != nil {
			return nil, withLines(batch, err)
		}
		b.PolicyChosen, b.PolicyRejected = lp[:n], lp[n:]
		res, err := p.Objective.Loss(b)
		if err != nil {
			return nil, withLines(batch, err)
		}
		for k, v := range prefMetrics(res) {
			sums[k] += v * float64(n) / float64(len(pairs))
		}
	}
	return sums, nil
}

func (p *Preference) eval(ctx context.Context) (map[string]float64, error) {
	return p.Evaluate(ctx, p.evalPairs)
}

// refLogProbs scores s with the reference scorer: the policy's base with
// its adapters off when the reference is the policy itself, a separate
// reference model as it is.
func (p *Preference) refLogProbs(ref *Scorer, s Seqs) ([]float64, error) {
	if ref.Model != p.Policy {
		return ref.LogProbs(s)
	}
	var lp []float64
	err := withAdapterOff(ref.Model, func() (err error) { lp, err = ref.LogProbs(s); return })
	return lp, err
}

// scorers makes the policy's and the reference's Scorers. When the
// reference is the policy with its adapters off, the two share one
// Scorer: the reference pass runs first and the policy's pass reuses its
// tape and logits buffers, so a step holds one set of activations.
func (p *Preference) scorers() {
	if p.policy == nil || p.policy.Model != p.Policy {
		p.policy = p.Config.scorer(p.Policy)
	}
	p.policy.Recompute = p.Config.Recompute
	p.policy.Unfused = p.Config.Unfused
	switch r := p.refModel(); {
	case r == nil:
		p.ref = nil
	case r == p.Policy:
		p.ref = p.policy
	case p.ref == nil || p.ref.Model != r:
		p.ref = p.Config.scorer(r)
	}
}

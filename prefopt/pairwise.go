package prefopt

import (
	"fmt"
	"math"
)

// Batch holds one batch of preference pairs as per-sequence log-probs.
// Pair i is (PolicyChosen[i], PolicyRejected[i]); every slice that is set
// must have one entry per pair, and an objective reports the ones it needs
// but finds nil.
type Batch struct {
	PolicyChosen, PolicyRejected []float64 // summed completion log-probs under the policy
	RefChosen, RefRejected       []float64 // the same under the reference (nil for reference-free objectives)
	ChosenLen, RejectedLen       []int     // completion token counts
}

// Result is an objective's value on a batch and its gradient.
type Result struct {
	Loss                     float64   // mean over pairs
	GradChosen, GradRejected []float64 // dLoss/dPolicyChosen[i], dLoss/dPolicyRejected[i]
	Stats                    Stats
}

// Stats are the diagnostics TRL logs for a preference batch, as means over
// pairs. The "rewards" are the objective's implicit rewards: β·ρ for the
// reference-based objectives (ρ the policy-minus-reference log-ratio, length
// normalized where the objective normalizes; IPO uses τ in place of β, as
// TRL passes τ as its beta), and β·log π(y)/|y| for SimPO.
type Stats struct {
	RewardsChosen   float64 // rewards/chosen
	RewardsRejected float64 // rewards/rejected
	Margin          float64 // rewards/margins: mean of chosen minus rejected reward
	Accuracy        float64 // rewards/accuracies: fraction of pairs with chosen reward > rejected
	LogPChosen      float64 // logps/chosen: mean policy log-prob the objective uses (summed, or per token where it normalizes)
	LogPRejected    float64 // logps/rejected
	NLL             float64 // nll_loss: the NLL term before its weight α (WithNLL, SFT, ORPO, CPO)
	LogOddsRatio    float64 // log_odds_ratio: mean logσ of the log odds ratio (ORPO only)
	LogOddsChosen   float64 // log_odds_chosen: mean log odds ratio of chosen over rejected (ORPO only)
}

// Objective is a pairwise preference loss.
type Objective interface {
	Loss(Batch) (Result, error)
}

// DPO is direct preference optimization (Rafailov et al. 2023) with
// conservative label smoothing (cDPO, Mitchell 2023): per pair, with
// h = ρ_c − ρ_r the difference of policy-minus-reference log-ratios,
//
//	ℓ = −(1−ε)·logσ(βh) − ε·logσ(−βh).
//
// ε = LabelSmoothing is the assumed probability that a label is flipped;
// 0 gives plain DPO. Beta must be > 0 and ε in [0, 0.5).
type DPO struct{ Beta, LabelSmoothing float64 }

// RobustDPO is the unbiased loss of Chowdhury et al. 2024 ("Provably Robust
// DPO") for labels flipped with probability ε (TRL's "robust"):
//
//	ℓ = (−(1−ε)·logσ(βh) + ε·logσ(−βh)) / (1−2ε).
//
// Unlike cDPO it is an unbiased estimate of the clean DPO loss; it can be
// negative on a pair.
type RobustDPO struct{ Beta, LabelSmoothing float64 }

// IPO is identity preference optimization (Azar et al. 2023): a squared
// loss that regresses the log-ratio gap to 1/(2τ) instead of pushing it to
// infinity. By default the log-ratios are divided by completion lengths, as
// TRL does,
//
//	ℓ = (ρ_c/|y_c| − ρ_r/|y_r| − 1/(2τ))²,
//
// and with SumLogProbs the summed form of the paper's eq. 17 (OpenRLHF's),
// ℓ = (ρ_c − ρ_r − 1/(2τ))². Tau must be > 0.
type IPO struct {
	Tau         float64
	SumLogProbs bool
}

// Hinge is the SLiC / RSO hinge loss (Zhao et al. 2023; Liu et al. 2023),
// ℓ = max(0, 1 − βh). Its gradient at the kink is taken as 0, as torch's
// relu does.
type Hinge struct{ Beta float64 }

// SimPO is simple preference optimization (Meng et al. 2024): reference-free,
// with length-averaged log-probs as rewards and a target margin γ,
//
//	ℓ = −logσ(β·(log π(y_c)/|y_c| − log π(y_r)/|y_r|) − γ).
//
// It needs no reference log-probs. Beta must be > 0; Gamma finite.
type SimPO struct{ Beta, Gamma float64 }

// Llama31Alpha is the weight of the NLL term on chosen responses that the
// Llama 3 report (§4.1.4) adds to DPO.
const Llama31Alpha = 0.2

// WithNLL adds a negative log-likelihood term on the chosen responses to
// any objective, as Llama 3.1 does with DPO (α = 0.2) and TRL does with
// rpo_alpha:
//
//	L = L_objective + α·NLL,   NLL = −Σ_i log π(y_c,i) / Σ_i |y_c,i|,
//
// the per-token NLL over all chosen tokens of the batch. It needs
// ChosenLen. Alpha must be ≥ 0.
type WithNLL struct {
	Objective Objective
	Alpha     float64
}

// logSigmoid returns log σ(x) = min(x, 0) − log1p(e^−|x|), exact for
// |x| in the thousands where the naive log(1/(1+e^−x)) gives −Inf or 0.
func logSigmoid(x float64) float64 {
	return min(x, 0) - math.Log1p(math.Exp(-math.Abs(x)))
}

// sigmoid returns σ(x) without overflow for either sign.
func sigmoid(x float64) float64 {
	if x >= 0 {
		return 1 / (1 + math.Exp(-x))
	}
	e := math.Exp(x)
	return e / (1 + e)
}

// need says which Batch fields an objective reads.
type need struct {
	ref, chosenLen, rejectedLen bool
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// check validates b for an objective named op and returns the pair count.
func check(op string, b Batch, nd need) (int, error) {
	n := len(b.PolicyChosen)
	if n == 0 {
		return 0, fmt.Errorf("prefopt: %s: empty batch", op)
	}
	if nd.ref && (b.RefChosen == nil || b.RefRejected == nil) {
		return 0, fmt.Errorf("prefopt: %s: needs reference log-probs (RefChosen and RefRejected)", op)
	}
	// Every field that is set must match the pair count, used or not: a
	// ragged batch means the caller's pairs are misaligned somewhere.
	type field struct {
		name string
		v    []float64
		use  bool
	}
	for _, f := range []field{
		{"PolicyChosen", b.PolicyChosen, true}, {"PolicyRejected", b.PolicyRejected, true},
		{"RefChosen", b.RefChosen, nd.ref}, {"RefRejected", b.RefRejected, nd.ref},
	} {
		if f.v == nil && !f.use {
			continue
		}
		if len(f.v) != n {
			return 0, fmt.Errorf("prefopt: %s: ragged batch: %s has %d entries, PolicyChosen %d", op, f.name, len(f.v), n)
		}
		if !f.use {
			continue
		}
		for i, x := range f.v {
			if !finite(x) {
				return 0, fmt.Errorf("prefopt: %s: %s[%d] is %v", op, f.name, i, x)
			}
		}
	}
	for _, l := range []struct {
		name string
		v    []int
		use  bool
	}{{"ChosenLen", b.ChosenLen, nd.chosenLen}, {"RejectedLen", b.RejectedLen, nd.rejectedLen}} {
		if l.v == nil && !l.use {
			continue
		}
		if len(l.v) != n {
			if l.v == nil {
				return 0, fmt.Errorf("prefopt: %s: needs token counts (%s)", op, l.name)
			}
			return 0, fmt.Errorf("prefopt: %s: ragged batch: %s has %d entries, PolicyChosen %d", op, l.name, len(l.v), n)
		}
		if !l.use {
			continue
		}
		for i, x := range l.v {
			if x <= 0 {
				return 0, fmt.Errorf("prefopt: %s: %s[%d] = %d, need a positive token count", op, l.name, i, x)
			}
		}
	}
	return n, nil
}

func checkBeta(op, name string, v float64) error {
	if !(v > 0) || math.IsInf(v, 0) {
		return fmt.Errorf("prefopt: %s: %s = %v, need a finite value > 0", op, name, v)
	}
	return nil
}

func checkSmoothing(op string, eps float64) error {
	if !(eps >= 0 && eps < 0.5) {
		return fmt.Errorf("prefopt: %s: LabelSmoothing = %v, need 0 ≤ ε < 0.5", op, eps)
	}
	return nil
}

// pairwise computes a reference-based objective whose per-pair loss is a
// function f of z = β·h, with derivative df. Log-ratios are summed.
func pairwise(op string, b Batch, beta float64, f func(z float64) (loss, dz float64)) (Result, error) {
	return pairTerms(op, b, beta, func(rc, rr float64) (float64, float64, float64) {
		l, dz := f(beta * (rc - rr))
		return l, beta * dz, -beta * dz
	})
}

// pairTerms computes a reference-based objective whose per-pair loss is a
// function f of the summed log-ratios ρ_c and ρ_r, with its partial
// derivatives; Stats use rewards β·ρ as TRL logs them.
func pairTerms(op string, b Batch, beta float64, f func(rc, rr float64) (loss, dc, dr float64)) (Result, error) {
	n, err := check(op, b, need{ref: true})
	if err != nil {
		return Result{}, err
	}
	r := newResult(n)
	var loss float64
	for i := range n {
		rc := b.PolicyChosen[i] - b.RefChosen[i]
		rr := b.PolicyRejected[i] - b.RefRejected[i]
		l, dc, dr := f(rc, rr)
		loss += l
		r.GradChosen[i] = dc / float64(n)
		r.GradRejected[i] = dr / float64(n)
		r.Stats.add(beta*rc, beta*rr, b.PolicyChosen[i], b.PolicyRejected[i])
	}
	return r.finish(op, loss, n)
}

func newResult(n int) Result {
	return Result{GradChosen: make([]float64, n), GradRejected: make([]float64, n)}
}

func (s *Stats) add(rc, rr, lc, lr float64) {
	s.RewardsChosen += rc
	s.RewardsRejected += rr
	s.Margin += rc - rr
	if rc > rr {
		s.Accuracy++
	}
	s.LogPChosen += lc
	s.LogPRejected += lr
}

// finish turns sums into means and rejects a loss that overflowed.
func (r Result) finish(op string, loss float64, n int) (Result, error) {
	fn := float64(n)
	r.Loss = loss / fn
	s := &r.Stats
	s.RewardsChosen /= fn
	s.RewardsRejected /= fn
	s.Margin /= fn
	s.Accuracy /= fn
	s.LogPChosen /= fn
	s.LogPRejected /= fn
	if !finite(r.Loss) {
		return Result{}, fmt.Errorf("prefopt: %s: loss overflowed to %v", op, r.Loss)
	}
	for i := range r.GradChosen {
		if !finite(r.GradChosen[i]) || !finite(r.GradRejected[i]) {
			return Result{}, fmt.Errorf("prefopt: %s: gradient of pair %d overflowed", op, i)
		}
	}
	return r, nil
}

// Loss implements Objective.
func (o DPO) Loss(b Batch) (Result, error) {
	if err := checkBeta("DPO", "Beta", o.Beta); err != nil {
		return Result{}, err
	}
	if err := checkSmoothing("DPO", o.LabelSmoothing); err != nil {
		return Result{}, err
	}
	eps := o.LabelSmoothing
	return pairwise("DPO", b, o.Beta, func(z float64) (float64, float64) {
		l := -(1-eps)*logSigmoid(z) - eps*logSigmoid(-z)
		// d/dz = −(1−ε)σ(−z) + εσ(z): each sigmoid in its stable form,
		// so a separated pair (|z| ~ 1e4) gets an exact 0 or ±1.
		dz := -(1-eps)*sigmoid(-z) + eps*sigmoid(z)
		return l, dz
	})
}

// Loss implements Objective.
func (o RobustDPO) Loss(b Batch) (Result, error) {
	if err := checkBeta("RobustDPO", "Beta", o.Beta); err != nil {
		return Result{}, err
	}
	if err := checkSmoothing("RobustDPO", o.LabelSmoothing); err != nil {
		return Result{}, err
	}
	eps := o.LabelSmoothing
	d := 1 - 2*eps
	return pairwise("RobustDPO", b, o.Beta, func(z float64) (float64, float64) {
		l := (-(1-eps)*logSigmoid(z) + eps*logSigmoid(-z)) / d
		dz := (-(1-eps)*sigmoid(-z) - eps*sigmoid(z)) / d
		return l, dz
	})
}

// Loss implements Objective.
func (o Hinge) Loss(b Batch) (Result, error) {
	if err := checkBeta("Hinge", "Beta", o.Beta); err != nil {
		return Result{}, err
	}
	return pairwise("Hinge", b, o.Beta, func(z float64) (float64, float64) {
		if 1-z > 0 {
			return 1 - z, -1
		}
		return 0, 0
	})
}

// Loss implements Objective.
func (o IPO) Loss(b Batch) (Result, error) {
	const op = "IPO"
	if err := checkBeta(op, "Tau", o.Tau); err != nil {
		return Result{}, err
	}
	norm := !o.SumLogProbs
	n, err := check(op, b, need{ref: true, chosenLen: norm, rejectedLen: norm})
	if err != nil {
		return Result{}, err
	}
	r := newResult(n)
	target := 1 / (2 * o.Tau)
	var loss float64
	for i := range n {
		lc, lr := 1.0, 1.0
		if norm {
			lc, lr = float64(b.ChosenLen[i]), float64(b.RejectedLen[i])
		}
		// Normalize the log-probs first, as TRL does, so Stats report the
		// per-token values it logs.
		pc, pr := b.PolicyChosen[i]/lc, b.PolicyRejected[i]/lr
		rc := pc - b.RefChosen[i]/lc
		rr := pr - b.RefRejected[i]/lr
		u := rc - rr - target
		loss += u * u
		g := 2 * u / float64(n)
		r.GradChosen[i] = g / lc
		r.GradRejected[i] = -g / lr
		r.Stats.add(o.Tau*rc, o.Tau*rr, pc, pr)
	}
	return r.finish(op, loss, n)
}

// Loss implements Objective.
func (o SimPO) Loss(b Batch) (Result, error) {
	const op = "SimPO"
	if err := checkBeta(op, "Beta", o.Beta); err != nil {
		return Result{}, err
	}
	if !finite(o.Gamma) {
		return Result{}, fmt.Errorf("prefopt: %s: Gamma = %v, need a finite value", op, o.Gamma)
	}
	n, err := check(op, b, need{chosenLen: true, rejectedLen: true})
	if err != nil {
		return Result{}, err
	}
	r := newResult(n)
	var loss float64
	for i := range n {
		lc, lr := float64(b.ChosenLen[i]), float64(b.RejectedLen[i])
		ac, ar := b.PolicyChosen[i]/lc, b.PolicyRejected[i]/lr
		z := o.Beta*(ac-ar) - o.Gamma
		loss -= logSigmoid(z)
		g := -sigmoid(-z) * o.Beta / float64(n)
		r.GradChosen[i] = g / lc
		r.GradRejected[i] = -g / lr
		r.Stats.add(o.Beta*ac, o.Beta*ar, ac, ar)
	}
	return r.finish(op, loss, n)
}

// Loss implements Objective.
func (o WithNLL) Loss(b Batch) (Result, error) {
	const op = "WithNLL"
	if o.Objective == nil {
		return Result{}, fmt.Errorf("prefopt: %s: nil Objective", op)
	}
	if !(o.Alpha >= 0) || math.IsInf(o.Alpha, 0) {
		return Result{}, fmt.Errorf("prefopt: %s: Alpha = %v, need a finite value ≥ 0", op, o.Alpha)
	}
	n, err := check(op, b, need{chosenLen: true})
	if err != nil {
		return Result{}, err
	}
	r, err := o.Objective.Loss(b)
	if err != nil {
		return Result{}, err
	}
	var sum float64
	var tokens int
	for i := range n {
		sum += b.PolicyChosen[i]
		tokens += b.ChosenLen[i]
	}
	nll := -sum / float64(tokens)
	// The inner objective's loss is already a mean over pairs; NLL is a
	// mean over tokens, so its gradient per chosen sequence is −α/tokens.
	g := -o.Alpha / float64(tokens)
	grad := make([]float64, n)
	for i := range n {
		grad[i] = r.GradChosen[i] + g
	}
	r.GradChosen = grad
	r.Loss += o.Alpha * nll
	r.Stats.NLL = nll
	if !finite(r.Loss) {
		return Result{}, fmt.Errorf("prefopt: %s: loss overflowed to %v", op, r.Loss)
	}
	return r, nil
}

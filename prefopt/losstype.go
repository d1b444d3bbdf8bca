package prefopt

import (
	"cmp"
	"fmt"
	"math"
	"slices"
)

// This file holds the rest of TRL's DPOConfig.loss_type vocabulary
// (huggingface/trl v1.9.0, trl/trainer/dpo_trainer.py, _compute_loss)
// beside the sigmoid, robust, ipo and hinge losses of pairwise.go, and Mix,
// TRL's list of loss types with loss_weights. In every formula ρ_c = log π(y_c) − log π_ref(y_c)
// and ρ_r likewise are the summed policy-minus-reference log-ratios,
// h = ρ_c − ρ_r, and z = β·h. Stats follow TRL: rewards are β·ρ.

// EXO is the pairwise EXO loss (Ji et al. 2024, "Towards Efficient Exact
// Optimization of Language Model Alignment", eq. 16; TRL's "exo_pair"):
// the reverse KL from the policy's two-way preference distribution
// q = (σ(z), σ(−z)) to the smoothed label p = (1−ε, ε),
//
//	ℓ = σ(z)·(logσ(z) − log(1−ε)) + σ(−z)·(logσ(−z) − log ε),
//
// whose derivative is dℓ/dz = σ(z)σ(−z)·(z − log((1−ε)/ε)): EXO drives z to
// the finite logit of 1−ε, where DPO drives it to infinity. TRL requires
// ε > 0 and the paper recommends 1e-3. Beta must be > 0, 0 < ε < 0.5.
type EXO struct{ Beta, Epsilon float64 }

// NCA is the pairwise noise-contrastive alignment loss (Chen et al. 2024,
// "Noise Contrastive Alignment of Language Models with Explicit Rewards";
// TRL's "nca_pair"): with rewards r = β·ρ,
//
//	ℓ = −logσ(r_c) − ½·logσ(−r_c) − ½·logσ(−r_r).
//
// Unlike DPO it acts on each response's own reward, not only their
// difference, so the chosen likelihood is not free to fall. Beta > 0.
type NCA struct{ Beta float64 }

// BCOPair is the pairwise binary-classifier loss of BCO (Jung et al. 2024,
// "Binary Classifier Optimization for Large Language Model Alignment";
// TRL's "bco_pair"): chosen and rejected rewards r = β·ρ are classified
// against a reward shift δ,
//
//	ℓ = −logσ(r_c − δ) − logσ(−(r_r − δ)),
//
// where δ is the running mean of the batch-mean reward over the batches
// seen so far, this one included (TRL's RunningMoments on
// mean(cat(r_c, r_r))). Shift holds that state: each successful Loss call
// folds the batch's mean reward in before computing the loss, and δ is a
// constant in the gradient (TRL detaches it). A failed call leaves Shift
// as it was. Because Loss updates Shift it has a pointer receiver, and a
// BCOPair must not be used by two goroutines at once. Beta > 0.
type BCOPair struct {
	Beta  float64
	Shift RewardShift
}

// RewardShift is the running mean δ of BCOPair: Mean after Count batches.
// Save and restore it with a checkpoint to resume training exactly.
type RewardShift struct {
	Mean  float64
	Count int
}

// SPPOHard is self-play preference optimization (Wu et al. 2024,
// "Self-Play Preference Optimization for Language Model Alignment",
// eq. 4.7) with hard win probabilities, 1 for the chosen and 0 for the
// rejected response (TRL's "sppo_hard"): each log-ratio is regressed to
// ±1/(2β),
//
//	ℓ = (ρ_c − 1/(2β))² + (ρ_r + 1/(2β))².
//
// Beta > 0.
type SPPOHard struct{ Beta float64 }

// AOT is alignment via optimal transport (Melnyk et al. 2024,
// "Distributional Preference Alignment of LLMs via Optimal Transport";
// TRL's "aot" and "aot_unpaired"). It asks for first-order stochastic
// dominance of the chosen over the rejected reward distribution, which in
// one dimension is a comparison of sorted samples: the batch's values are
// sorted and the i-th smallest of one side is compared with the i-th
// smallest of the other through cDPO's smoothed logistic loss,
//
//	ℓ_i = −(1−ε)·logσ(β·d_i) − ε·logσ(−β·d_i).
//
// Paired (TRL's "aot"): d = sort(log π(y_c) − log π(y_r)) −
// sort(log π_ref(y_c) − log π_ref(y_r)). Unpaired: d = sort(ρ_c) − sort(ρ_r).
// The loss is therefore a function of the whole batch, not a mean of
// per-pair terms: gradients flow back through the sorting permutation.
// Ties are broken by index, which changes which tied entry receives which
// term but not the loss. Beta > 0, 0 ≤ ε < 0.5.
type AOT struct {
	Beta, LabelSmoothing float64
	Unpaired             bool
}

// APOZero is anchored preference optimization, APO-zero (D'Oosterlinck et
// al. 2024, "Anchored Preference Optimization and Contrastive Revisions",
// eq. 7; TRL's "apo_zero"): for chosen outputs better than the model's
// own, it raises the chosen likelihood and lowers the rejected one, each
// anchored at the reference,
//
//	ℓ = 1 − σ(β·ρ_c) + σ(β·ρ_r).
//
// Beta > 0.
type APOZero struct{ Beta float64 }

// APODown is APO-down (D'Oosterlinck et al. 2024, eq. 8; TRL's
// "apo_down"), for chosen outputs worse than the model's own: it lowers
// the chosen likelihood and the rejected one more,
//
//	ℓ = σ(β·ρ_c) + 1 − σ(β·h).
//
// Beta > 0.
type APODown struct{ Beta float64 }

// DiscoPOP is the log-ratio modulated loss found by LLM-driven objective
// discovery (Chan et al. 2024, "Discovering Preference Optimization
// Algorithms with and for Large Language Models", eq. 5; TRL's
// "discopop"): a blend of the logistic (DPO) and exponential losses
// weighted by m = σ(z/τ),
//
//	ℓ = (1 − m)·(−logσ(z)) + m·e^(−z).
//
// The exponential term is computed as exp(−z + logσ(z/τ)), so a pair with
// z of −10⁴ gives its finite value where e^(−z)·m would be ∞·0. Tau is
// TRL's discopop_tau (default 0.05). Beta > 0, Tau > 0.
type DiscoPOP struct{ Beta, Tau float64 }

// DefaultDiscoPOPTau is TRL's default discopop_tau.
const DefaultDiscoPOPTau = 0.05

// SFT is the supervised term of TRL's "sft" loss type: the negative
// log-likelihood of the chosen responses per token,
//
//	L = −Σ_i log π(y_c,i) / Σ_i |y_c,i|.
//
// It is meant as a Mix term (MPO = sigmoid + bco_pair + sft). It needs
// ChosenLen; its Stats carry the NLL and the mean log-probs.
type SFT struct{}

// Weighted is one term of a Mix.
type Weighted struct {
	Objective Objective
	Weight    float64
}

// Mix is a weighted sum of objectives, TRL's list-valued loss_type with
// loss_weights: L = Σ_k w_k·L_k, with gradients summed the same way. For
// example MPO (Wang et al. 2024, "Enhancing the Reasoning Ability of
// Multimodal Large Language Models via Mixed Preference Optimization") is
//
//	Mix{{DPO{Beta: 0.1}, 0.8}, {&BCOPair{Beta: 0.1}, 0.2}, {SFT{}, 1}}
//
// Stats are the first term's, as every TRL loss type logs the same
// rewards; NLL is the weighted sum of the terms' NLL. Weights must be
// finite and ≥ 0. Terms run in order; a stateful term (BCOPair) updates
// its state when it succeeds, even if a later term then fails.
type Mix []Weighted

// Loss implements Objective.
func (o EXO) Loss(b Batch) (Result, error) {
	const op = "EXO"
	if err := checkBeta(op, "Beta", o.Beta); err != nil {
		return Result{}, err
	}
	eps := o.Epsilon
	if !(eps > 0 && eps < 0.5) {
		return Result{}, fmt.Errorf("prefopt: %s: Epsilon = %v, need 0 < ε < 0.5 (the paper uses 1e-3)", op, eps)
	}
	logit := math.Log1p(-eps) - math.Log(eps)
	return pairTerms(op, b, o.Beta, func(rc, rr float64) (float64, float64, float64) {
		z := o.Beta * (rc - rr)
		qw, ql := sigmoid(z), sigmoid(-z)
		// Each product is 0·finite when its sigmoid underflows, never ∞·0:
		// logσ is finite for every finite z.
		l := qw*(logSigmoid(z)-math.Log1p(-eps)) + ql*(logSigmoid(-z)-math.Log(eps))
		dz := qw * ql * (z - logit)
		return l, o.Beta * dz, -o.Beta * dz
	})
}

// Loss implements Objective.
func (o NCA) Loss(b Batch) (Result, error) {
	const op = "NCA"
	if err := checkBeta(op, "Beta", o.Beta); err != nil {
		return Result{}, err
	}
	beta := o.Beta
	return pairTerms(op, b, beta, func(rc, rr float64) (float64, float64, float64) {
		c, r := beta*rc, beta*rr
		l := -logSigmoid(c) - 0.5*logSigmoid(-c) - 0.5*logSigmoid(-r)
		dc := -sigmoid(-c) + 0.5*sigmoid(c)
		dr := 0.5 * sigmoid(r)
		return l, beta * dc, beta * dr
	})
}

// Loss implements Objective, updating o.Shift on success.
func (o *BCOPair) Loss(b Batch) (Result, error) {
	const op = "BCOPair"
	if err := checkBeta(op, "Beta", o.Beta); err != nil {
		return Result{}, err
	}
	n, err := check(op, b, need{ref: true})
	if err != nil {
		return Result{}, err
	}
	if o.Shift.Count < 0 || !finite(o.Shift.Mean) {
		return Result{}, fmt.Errorf("prefopt: %s: invalid Shift %+v", op, o.Shift)
	}
	beta := o.Beta
	var mean float64
	for i := range n {
		mean += beta*(b.PolicyChosen[i]-b.RefChosen[i]) + beta*(b.PolicyRejected[i]-b.RefRejected[i])
	}
	mean /= float64(2 * n)
	next := RewardShift{Count: o.Shift.Count + 1}
	next.Mean = o.Shift.Mean + (mean-o.Shift.Mean)/float64(next.Count)
	delta := next.Mean
	r, err := pairTerms(op, b, beta, func(rc, rr float64) (float64, float64, float64) {
		c, x := beta*rc-delta, beta*rr-delta
		l := -logSigmoid(c) - logSigmoid(-x)
		return l, -beta * sigmoid(-c), beta * sigmoid(x)
	})
	if err != nil {
		return Result{}, err
	}
	o.Shift = next
	return r, nil
}

// Loss implements Objective.
func (o SPPOHard) Loss(b Batch) (Result, error) {
	const op = "SPPOHard"
	if err := checkBeta(op, "Beta", o.Beta); err != nil {
		return Result{}, err
	}
	t := 0.5 / o.Beta
	return pairTerms(op, b, o.Beta, func(rc, rr float64) (float64, float64, float64) {
		u, v := rc-t, rr+t
		return u*u + v*v, 2 * u, 2 * v
	})
}

// Loss implements Objective.
func (o APOZero) Loss(b Batch) (Result, error) {
	const op = "APOZero"
	if err := checkBeta(op, "Beta", o.Beta); err != nil {
		return Result{}, err
	}
	beta := o.Beta
	return pairTerms(op, b, beta, func(rc, rr float64) (float64, float64, float64) {
		c, r := beta*rc, beta*rr
		// 1 − σ(c) = σ(−c), exact for large c.
		return sigmoid(-c) + sigmoid(r), -beta * dsigmoid(c), beta * dsigmoid(r)
	})
}

// Loss implements Objective.
func (o APODown) Loss(b Batch) (Result, error) {
	const op = "APODown"
	if err := checkBeta(op, "Beta", o.Beta); err != nil {
		return Result{}, err
	}
	beta := o.Beta
	return pairTerms(op, b, beta, func(rc, rr float64) (float64, float64, float64) {
		c, z := beta*rc, beta*(rc-rr)
		dz := dsigmoid(z)
		return sigmoid(c) + sigmoid(-z), beta * (dsigmoid(c) - dz), beta * dz
	})
}

// Loss implements Objective.
func (o DiscoPOP) Loss(b Batch) (Result, error) {
	const op = "DiscoPOP"
	if err := checkBeta(op, "Beta", o.Beta); err != nil {
		return Result{}, err
	}
	if err := checkBeta(op, "Tau", o.Tau); err != nil {
		return Result{}, err
	}
	beta, tau := o.Beta, o.Tau
	return pairTerms(op, b, beta, func(rc, rr float64) (float64, float64, float64) {
		z := beta * (rc - rr)
		m, m1 := sigmoid(z/tau), sigmoid(-z/tau) // m and 1 − m
		dm := m * m1 / tau
		ls := logSigmoid(z)
		e := math.Exp(-z + logSigmoid(z/tau)) // e^(−z)·m
		l := -ls*m1 + e
		// d/dz[−logσ(z)·(1−m)] = −σ(−z)(1−m) + logσ(z)·m′ and
		// d/dz[e^(−z)·m] = e^(−z)·m·(−1 + (1−m)/τ).
		dz := -sigmoid(-z)*m1 + ls*dm + e*(m1/tau-1)
		return l, beta * dz, -beta * dz
	})
}

// Loss implements Objective.
func (o AOT) Loss(b Batch) (Result, error) {
	op := "AOT"
	if o.Unpaired {
		op = "AOT unpaired"
	}
	if err := checkBeta(op, "Beta", o.Beta); err != nil {
		return Result{}, err
	}
	if err := checkSmoothing(op, o.LabelSmoothing); err != nil {
		return Result{}, err
	}
	n, err := check(op, b, need{ref: true})
	if err != nil {
		return Result{}, err
	}
	beta, eps := o.Beta, o.LabelSmoothing
	// x is the side the gradient flows through (it holds policy log-probs),
	// y the other; gx and gy say how dℓ/dx_i reaches the chosen and
	// rejected log-probs.
	x, y := make([]float64, n), make([]float64, n)
	for i := range n {
		if o.Unpaired {
			x[i] = b.PolicyChosen[i] - b.RefChosen[i]
			y[i] = b.PolicyRejected[i] - b.RefRejected[i]
		} else {
			x[i] = b.PolicyChosen[i] - b.PolicyRejected[i]
			y[i] = b.RefChosen[i] - b.RefRejected[i]
		}
	}
	px, py := order(x), order(y)
	r := newResult(n)
	var loss float64
	for k := range n {
		z := beta * (x[px[k]] - y[py[k]])
		loss += -(1-eps)*logSigmoid(z) - eps*logSigmoid(-z)
		dz := beta * (-(1-eps)*sigmoid(-z) + eps*sigmoid(z)) / float64(n)
		if o.Unpaired {
			// d = sort(ρ_c) − sort(ρ_r): both sides carry policy terms.
			r.GradChosen[px[k]] += dz
			r.GradRejected[py[k]] -= dz
		} else {
			r.GradChosen[px[k]] += dz
			r.GradRejected[px[k]] -= dz
		}
	}
	for i := range n {
		rc := b.PolicyChosen[i] - b.RefChosen[i]
		rr := b.PolicyRejected[i] - b.RefRejected[i]
		r.Stats.add(beta*rc, beta*rr, b.PolicyChosen[i], b.PolicyRejected[i])
	}
	return r.finish(op, loss, n)
}

// order returns the permutation that sorts v ascending, ties by index.
func order(v []float64) []int {
	p := make([]int, len(v))
	for i := range p {
		p[i] = i
	}
	slices.SortStableFunc(p, func(a, b int) int { return cmp.Compare(v[a], v[b]) })
	return p
}

// Loss implements Objective.
func (SFT) Loss(b Batch) (Result, error) {
	const op = "SFT"
	n, err := check(op, b, need{chosenLen: true})
	if err != nil {
		return Result{}, err
	}
	var sum float64
	var tokens int
	for i := range n {
		sum += b.PolicyChosen[i]
		tokens += b.ChosenLen[i]
	}
	r := newResult(n)
	g := -1 / float64(tokens)
	for i := range n {
		r.GradChosen[i] = g
		r.Stats.LogPChosen += b.PolicyChosen[i]
		r.Stats.LogPRejected += b.PolicyRejected[i]
	}
	nll := -sum / float64(tokens)
	// finish divides by n; pass the batch-level NLL scaled back up.
	r, err = r.finish(op, nll*float64(n), n)
	if err != nil {
		return Result{}, err
	}
	r.Loss = nll
	r.Stats.NLL = nll
	return r, nil
}

// Loss implements Objective. Terms run in order; the first error stops the
// sum and is returned with the term's index.
func (m Mix) Loss(b Batch) (Result, error) {
	const op = "Mix"
	if len(m) == 0 {
		return Result{}, fmt.Errorf("prefopt: %s: no terms", op)
	}
	for k, t := range m {
		if t.Objective == nil {
			return Result{}, fmt.Errorf("prefopt: %s: term %d: nil Objective", op, k)
		}
		if !(t.Weight >= 0) || math.IsInf(t.Weight, 0) {
			return Result{}, fmt.Errorf("prefopt: %s: term %d: Weight = %v, need a finite value ≥ 0", op, k, t.Weight)
		}
	}
	var out Result
	for k, t := range m {
		r, err := t.Objective.Loss(b)
		if err != nil {
			return Result{}, fmt.Errorf("prefopt: %s: term %d: %w", op, k, err)
		}
		if k == 0 {
			out = Result{Stats: r.Stats,
				GradChosen: make([]float64, len(r.GradChosen)), GradRejected: make([]float64, len(r.GradRejected))}
			out.Stats.NLL = 0
		}
		out.Loss += t.Weight * r.Loss
		out.Stats.NLL += t.Weight * r.Stats.NLL
		for i := range r.GradChosen {
			out.GradChosen[i] += t.Weight * r.GradChosen[i]
			out.GradRejected[i] += t.Weight * r.GradRejected[i]
		}
	}
	if !finite(out.Loss) {
		return Result{}, fmt.Errorf("prefopt: %s: loss overflowed to %v", op, out.Loss)
	}
	return out, nil
}

// dsigmoid returns σ′(x) = σ(x)·σ(−x), 0 (not NaN) for |x| in the thousands.
func dsigmoid(x float64) float64 { return sigmoid(x) * sigmoid(-x) }

package prefopt

import (
	"fmt"
	"math"
)

// KTOBatch is a batch of unpaired examples for KTO: completions labelled
// desirable or undesirable, with no pairing between them.
type KTOBatch struct {
	Policy, Ref []float64 // summed completion log-probs of (x_i, y_i) under the policy and the reference
	Desirable   []bool    // the label of example i
	// PolicyKL and RefKL are the summed log-probs of mismatched pairs
	// (x_i, y′_i), y′ a completion written for another prompt of the
	// batch (KLCompletions builds them as TRL does), under the policy and
	// the reference. They estimate KTO's reference point; any positive
	// count works, normally one per example. Not needed with APOZero.
	PolicyKL, RefKL []float64
}

// KTO is Kahneman–Tversky optimization (Ethayarajh et al. 2024, "KTO: Model
// Alignment as Prospect Theoretic Optimization", eq. 7; TRL's KTOTrainer):
// it needs only a thumbs-up or thumbs-down per completion. With the
// implied reward ρ = log π(y|x) − log π_ref(y|x) and the reference point
//
//	z₀ = max(0, mean_j (log π(y′_j|x_j) − log π_ref(y′_j|x_j))),
//
// a KL estimate from mismatched prompt–completion pairs, constant in the
// gradient (TRL detaches it), the loss per example is
//
//	desirable:   λ_D·(1 − σ(β·(ρ − z₀)))
//	undesirable: λ_U·(1 − σ(β·(z₀ − ρ)))
//
// averaged over the batch. The weights λ_D and λ_U (TRL's
// desirable_weight and undesirable_weight, both 1 by default) rebalance
// unequal class counts: the paper advises λ_D·n_D/(λ_U·n_U) in [1, 4/3].
//
// With APOZero set it is TRL's "apo_zero_unpaired" loss instead (APO-zero,
// D'Oosterlinck et al. 2024, without pairs): 1 − σ(β·ρ) for desirable and
// σ(β·ρ) for undesirable examples, with no reference point.
//
// Beta > 0; the weights must be finite, ≥ 0 and not both 0.
type KTO struct {
	Beta                               float64
	DesirableWeight, UndesirableWeight float64
	APOZero                            bool
}

// KTOResult is KTO's value, gradient and TRL's diagnostics.
type KTOResult struct {
	Loss float64
	Grad []float64 // dLoss/dPolicy[i]
	KL   float64   // kl: the reference point z₀ (0 under APOZero)
	// Stats holds rewards/chosen, rewards/rejected (means of β·ρ over the
	// desirable and the undesirable examples), rewards/margins (their
	// difference, only when both classes are present) and logps/chosen,
	// logps/rejected; a class absent from the batch reports 0, as TRL
	// logs nothing for it. Accuracy and NLL are unused.
	Stats Stats
}

// KLCompletions returns the completions rotated by one within the batch,
// y′_i = y_{i−1} (y′_0 = y_{n−1}): TRL's mismatched pairs (x_i, y′_i) for
// KTO's reference point. Score them under the policy and the reference
// for KTOBatch.PolicyKL and RefKL. A batch of one has no mismatched pair,
// so it returns nil for fewer than two completions.
func KLCompletions[T any](completions []T) []T {
	n := len(completions)
	if n < 2 {
		return nil
	}
	out := make([]T, n)
	out[0] = completions[n-1]
	copy(out[1:], completions[:n-1])
	return out
}

// Loss returns the loss of b.
func (o KTO) Loss(b KTOBatch) (KTOResult, error) {
	op := "KTO"
	if o.APOZero {
		op = "KTO apo_zero_unpaired"
	}
	if err := checkBeta(op, "Beta", o.Beta); err != nil {
		return KTOResult{}, err
	}
	for _, w := range []struct {
		name string
		v    float64
	}{{"DesirableWeight", o.DesirableWeight}, {"UndesirableWeight", o.UndesirableWeight}} {
		if !(w.v >= 0) || math.IsInf(w.v, 0) {
			return KTOResult{}, fmt.Errorf("prefopt: %s: %s = %v, need a finite value ≥ 0", op, w.name, w.v)
		}
	}
	if o.DesirableWeight == 0 && o.UndesirableWeight == 0 {
		return KTOResult{}, fmt.Errorf("prefopt: %s: DesirableWeight and UndesirableWeight are both 0 (TRL's defaults are 1)", op)
	}
	n := len(b.Policy)
	if n == 0 {
		return KTOResult{}, fmt.Errorf("prefopt: %s: empty batch", op)
	}
	if err := sameLen(op, n, "Ref", len(b.Ref)); err != nil {
		return KTOResult{}, err
	}
	if err := sameLen(op, n, "Desirable", len(b.Desirable)); err != nil {
		return KTOResult{}, err
	}
	if err := checkFinite(op, "Policy", b.Policy); err != nil {
		return KTOResult{}, err
	}
	if err := checkFinite(op, "Ref", b.Ref); err != nil {
		return KTOResult{}, err
	}
	var z0 float64
	if !o.APOZero {
		m := len(b.PolicyKL)
		if m == 0 {
			return KTOResult{}, fmt.Errorf("prefopt: %s: needs the mismatched pairs' log-probs (PolicyKL and RefKL, see KLCompletions)", op)
		}
		if err := sameLen(op, m, "RefKL", len(b.RefKL)); err != nil {
			return KTOResult{}, err
		}
		if err := checkFinite(op, "PolicyKL", b.PolicyKL); err != nil {
			return KTOResult{}, err
		}
		if err := checkFinite(op, "RefKL", b.RefKL); err != nil {
			return KTOResult{}, err
		}
		for j := range m {
			z0 += b.PolicyKL[j] - b.RefKL[j]
		}
		z0 = max(0, z0/float64(m))
	}
	res := KTOResult{Grad: make([]float64, n), KL: z0}
	beta, fn := o.Beta, float64(n)
	var loss float64
	var nd, nu int
	s := &res.Stats
	for i := range n {
		rho := b.Policy[i] - b.Ref[i]
		if b.Desirable[i] {
			x := beta * (rho - z0)
			loss += o.DesirableWeight * sigmoid(-x) // 1 − σ(x)
			res.Grad[i] = -o.DesirableWeight * beta * dsigmoid(x) / fn
			s.RewardsChosen += beta * rho
			s.LogPChosen += b.Policy[i]
			nd++
		} else {
			x := beta * (z0 - rho)
			if o.APOZero {
				x = -beta * rho // σ(βρ) = 1 − σ(−βρ)
			}
			loss += o.UndesirableWeight * sigmoid(-x)
			res.Grad[i] = o.UndesirableWeight * beta * dsigmoid(x) / fn
			s.RewardsRejected += beta * rho
			s.LogPRejected += b.Policy[i]
			nu++
		}
	}
	if nd > 0 {
		s.RewardsChosen /= float64(nd)
		s.LogPChosen /= float64(nd)
	}
	if nu > 0 {
		s.RewardsRejected /= float64(nu)
		s.LogPRejected /= float64(nu)
	}
	if nd > 0 && nu > 0 {
		s.Margin = s.RewardsChosen - s.RewardsRejected
	}
	res.Loss = loss / fn
	if !finite(res.KL) {
		return KTOResult{}, fmt.Errorf("prefopt: %s: reference point overflowed to %v", op, res.KL)
	}
	return res, nil
}

package mirrordescent

import (
	"context"
	"fmt"
	"math"

	"github.com/posttrain/posttrain/prefopt"
)

// Defaults of MDLOO. AFM (Apple, "Apple Intelligence Foundation Language
// Models", 2024) describes the algorithm but publishes none of its
// hyperparameters; these are our choices, with the reasoning on each.
const (
	// DefaultK = 4 responses per prompt. The leave-one-out baseline needs
	// K ≥ 2; Ahmadian et al. (2024) report RLOO with k = 2 and k = 4, the
	// larger group the stronger, and every extra sample costs a full
	// generation per prompt.
	DefaultK = 4

	// DefaultBeta = 0.05, the KL coefficient TRL's PPOConfig defaults to
	// (kl_coef). It sets where training ends up, not how fast:
	// the shaped objective's optimum is π* ∝ π_ref·exp(r/β), so a reward
	// gap of Δ moves log-odds by Δ/β = 20·Δ at most. Scale it with your
	// reward model's score range.
	DefaultBeta = 0.05

	// DefaultStepSize = 1 is the constant t_k used by DefaultMDLOO. With
	// t = 1 the exact (tabular) step π ∝ π_k·exp(Â) moves each log-odds by
	// at most one advantage unit, and the KL proximity term weighs as much
	// as the advantage term. MDPO's annealed t_k = 1 − (k−1)/K (Linear)
	// needs the total number of iterations up front, which open-ended
	// online RLHF rarely fixes; pass Linear(iters) when it does. With a
	// constant t the shaped reward alone pulls towards π*: the tabular
	// iteration contracts to π* at rate 1 − t·β per iteration.
	DefaultStepSize = 1.0

	// DefaultSteps = 4 inner gradient steps per batch (m), the number of
	// passes TRL's PPOConfig makes over a batch by default
	// (num_ppo_epochs). m = 1 reduces MDPO to a policy-gradient step (the KL
	// term has zero gradient at θ = θ_k); more steps solve the trust-region
	// subproblem better at the price of moving further off-policy.
	DefaultSteps = 4
)

// MDLOO is AFM's online-RLHF algorithm: mirror-descent policy
// optimization (MDPO) with leave-one-out advantages. Each iteration k
// samples K responses per prompt from the current policy π_k, scores them
// with the reward model, shapes the scores with a KL penalty towards the
// reference policy,
//
//	R = r − β·(log π_k(y) − log π_ref(y)),
//
// (prefopt.ShapeRewards), takes the leave-one-out advantages of R within
// each prompt's group (prefopt.LeaveOneOut), and runs m gradient steps of the MDPO surrogate
// with step size t_k at sequence level.
//
// Start from DefaultMDLOO and override fields: the zero value is invalid,
// so that β = 0 can mean "no KL shaping".
type MDLOO struct {
	K        int      // responses per prompt, ≥ 2
	Beta     float64  // KL-shaping coefficient β ≥ 0
	Schedule Schedule // MDPO step size t_k > 0 by iteration k (from 1)
	Steps    int      // inner gradient steps m ≥ 1 per batch
}

// DefaultMDLOO returns MDLOO with the documented defaults: K = 4,
// β = 0.05, t_k = 1, m = 4.
func DefaultMDLOO() MDLOO {
	return MDLOO{K: DefaultK, Beta: DefaultBeta, Schedule: Constant(DefaultStepSize), Steps: DefaultSteps}
}

func (o MDLOO) check() error {
	if o.K < 2 {
		return fmt.Errorf("mirrordescent: MDLOO: K = %d, need at least 2 responses per prompt", o.K)
	}
	if math.IsNaN(o.Beta) || math.IsInf(o.Beta, 0) || o.Beta < 0 {
		return fmt.Errorf("mirrordescent: MDLOO: Beta = %v, need finite and ≥ 0", o.Beta)
	}
	if o.Schedule == nil {
		return fmt.Errorf("mirrordescent: MDLOO: nil Schedule")
	}
	if o.Steps < 1 {
		return fmt.Errorf("mirrordescent: MDLOO: Steps = %d, need at least 1", o.Steps)
	}
	return nil
}

// Advantages returns the KL-shaped rewards R_i = r_i − β·(oldLP_i −
// refLP_i) and their leave-one-out advantages, for N = P·K responses laid
// out prompt by prompt (K contiguous responses each). scores are the
// reward model's r_i; oldLP and refLP the summed log-probs of each
// response under the sampling policy π_k and the reference. refLP may be
// nil when β = 0.
func (o MDLOO) Advantages(scores, oldLP, refLP []float64) (adv, shaped []float64, err error) {
	if err := o.check(); err != nil {
		return nil, nil, err
	}
	n := len(scores)
	if len(oldLP) != n {
		return nil, nil, fmt.Errorf("mirrordescent: MDLOO: len(scores) = %d but len(oldLP) = %d", n, len(oldLP))
	}
	if refLP == nil && o.Beta != 0 {
		return nil, nil, fmt.Errorf("mirrordescent: MDLOO: nil refLP with Beta = %v", o.Beta)
	}
	if refLP != nil && len(refLP) != n {
		return nil, nil, fmt.Errorf("mirrordescent: MDLOO: len(scores) = %d but len(refLP) = %d", n, len(refLP))
	}
	if n == 0 {
		return nil, nil, fmt.Errorf("mirrordescent: MDLOO: empty batch")
	}
	// Validate here, naming prompt and response, before handing the
	// arithmetic to prefopt.ShapeRewards.
	for i, r := range scores {
		if math.IsNaN(r) || math.IsInf(r, 0) {
			return nil, nil, fmt.Errorf("mirrordescent: MDLOO: scores[%d] (prompt %d, response %d) = %v", i, i/o.K, i%o.K, r)
		}
		if v := oldLP[i]; math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, nil, fmt.Errorf("mirrordescent: MDLOO: oldLP[%d] (prompt %d, response %d) = %v", i, i/o.K, i%o.K, v)
		}
		if refLP == nil {
			continue
		}
		if v := refLP[i]; math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, nil, fmt.Errorf("mirrordescent: MDLOO: refLP[%d] (prompt %d, response %d) = %v", i, i/o.K, i%o.K, v)
		}
	}
	if refLP == nil { // β = 0: no shaping, and no reference to shape with
		shaped = append([]float64(nil), scores...)
	} else {
		shaped, err = prefopt.ShapeRewards(scores, oldLP, refLP, o.Beta)
		if err != nil {
			return nil, nil, fmt.Errorf("mirrordescent: MDLOO: %w", err)
		}
	}
	for i, v := range shaped {
		if math.IsInf(v, 0) {
			return nil, nil, fmt.Errorf("mirrordescent: MDLOO: shaped reward %d (prompt %d, response %d) overflows", i, i/o.K, i%o.K)
		}
	}
	adv, err = prefopt.LeaveOneOut(shaped, o.K)
	if err != nil {
		return nil, nil, fmt.Errorf("mirrordescent: MDLOO: %w", err)
	}
	return adv, shaped, nil
}

// Update runs MDLOO iteration k (from 1) on one batch: Advantages, then
// MDPO with t = Schedule(k) for Steps inner steps. pol must report
// log-probs for the same N responses, in the same order, as scores; at
// entry its log-probs should equal oldLP (it is π_k). It returns the
// inner steps' surrogate results.
func (o MDLOO) Update(ctx context.Context, k int, pol Policy, scores, oldLP, refLP []float64) ([]Result, error) {
	adv, _, err := o.Advantages(scores, oldLP, refLP)
	if err != nil {
		return nil, err
	}
	t := o.Schedule(k)
	if math.IsNaN(t) || math.IsInf(t, 0) || t <= 0 {
		return nil, fmt.Errorf("mirrordescent: MDLOO: Schedule(%d) = %v, need finite and > 0", k, t)
	}
	return MDPO(ctx, pol, oldLP, adv, t, o.Steps)
}

package prefopt

import (
	"fmt"
	"math"
)

// PolicyResult is an online-RL objective's value and its gradient with
// respect to the new policy's log-probs.
type PolicyResult struct {
	Loss     float64   // mean over entries (sequences or tokens)
	Grad     []float64 // dLoss/dlogp[i]
	ClipFrac float64   // PPOClip: fraction of entries whose gradient the clip removed
	ApproxKL float64   // PPOClip: mean k3 estimate of KL(π_old ‖ π_θ), for early stopping
}

// GRPO returns group-normalized advantages (Shao et al. 2024, DeepSeekMath):
// for rewards laid out in contiguous groups of k samples per prompt,
//
//	Â_i = (R_i − mean R) / (std R + eps),
//
// with the unbiased (k−1) standard deviation of the group, as TRL computes
// it (TRL's default eps is 1e-4). A group of equal rewards gets advantages
// of exactly zero. Rewards anywhere in float64's finite range work (a group of
// ±1e308 gets its exact advantages). It returns an error if k < 2,
// len(rewards) is not a multiple of k, eps < 0, or a reward is NaN or ±Inf.
func GRPO(rewards []float64, k int, eps float64) ([]float64, error) {
	const op = "GRPO"
	if k < 2 {
		return nil, fmt.Errorf("prefopt: %s: group size k = %d, need at least 2", op, k)
	}
	if len(rewards)%k != 0 {
		return nil, fmt.Errorf("prefopt: %s: %d rewards do not split into groups of %d", op, len(rewards), k)
	}
	if !(eps >= 0) || math.IsInf(eps, 0) {
		return nil, fmt.Errorf("prefopt: %s: eps = %v, need a finite value ≥ 0", op, eps)
	}
	if err := checkFinite(op, "rewards", rewards); err != nil {
		return nil, err
	}
	adv := make([]float64, len(rewards))
	for g := 0; g < len(rewards); g += k {
		grp := rewards[g : g+k]
		if flat(grp) {
			continue // exactly 0, not the last-bit error of the mean scaled by 1/eps
		}
		if maxAbs(grp) < safeMagnitude {
			mean := groupMean(grp)
			var ss float64
			for _, r := range grp {
				ss += (r - mean) * (r - mean)
			}
			std := math.Sqrt(ss / float64(k-1))
			for i, r := range grp {
				if d := r - mean; d != 0 {
					adv[g+i] = d / (std + eps)
				}
			}
			continue
		}
		// Rewards near float64's range: work with halved deviations
		// h = (R − mean)/2, which cannot overflow, and the sum of squares
		// scaled by the largest; Â = h/(std_h + eps/2) is the same ratio.
		mean := groupMean(grp)
		var hmax float64
		for i, r := range grp {
			adv[g+i] = r/2 - mean/2
			hmax = max(hmax, math.Abs(adv[g+i]))
		}
		if hmax == 0 {
			clear(adv[g : g+k])
			continue
		}
		var ss float64
		for _, h := range adv[g : g+k] {
			ss += (h / hmax) * (h / hmax)
		}
		std := hmax * math.Sqrt(ss/float64(k-1))
		for i := range grp {
			adv[g+i] /= std + eps/2
		}
	}
	return adv, nil
}

// safeMagnitude bounds values whose sums, differences and squares over a
// group cannot overflow float64 (√MaxFloat64 ≈ 1.3e154, with room for the
// group size).
const safeMagnitude = 1e150

func maxAbs(v []float64) float64 {
	var m float64
	for _, x := range v {
		m = max(m, math.Abs(x))
	}
	return m
}

// groupMean is the mean of finite values without overflow: the plain sum
// where it is safe, else the sum of v_i/n.
func groupMean(v []float64) float64 {
	n := float64(len(v))
	var s float64
	if maxAbs(v) < safeMagnitude {
		for _, x := range v {
			s += x
		}
		return s / n
	}
	for _, x := range v {
		s += x / n
	}
	return s
}

// Reinforce is the REINFORCE policy-gradient surrogate with a baseline
// (Williams 1992): L = −mean_i (R_i − b_i)·log π(y_i), whose gradient with
// respect to logp[i] is −(R_i − b_i)/n. baseline nil uses the batch mean
// reward for every sample; pass LeaveOneOut or GRPO output as rewards with a
// zero baseline to use those estimators instead. NaN or ±Inf inputs, and
// an advantage or advantage·logp that overflows float64, are errors naming
// the entry.
func Reinforce(logp, rewards, baseline []float64) (PolicyResult, error) {
	const op = "Reinforce"
	n := len(logp)
	if n == 0 {
		return PolicyResult{}, fmt.Errorf("prefopt: %s: empty batch", op)
	}
	if err := sameLen(op, n, "rewards", len(rewards)); err != nil {
		return PolicyResult{}, err
	}
	if err := checkFinite(op, "logp", logp); err != nil {
		return PolicyResult{}, err
	}
	if err := checkFinite(op, "rewards", rewards); err != nil {
		return PolicyResult{}, err
	}
	var mean float64
	if baseline == nil {
		mean = groupMean(rewards)
	} else {
		if err := sameLen(op, n, "baseline", len(baseline)); err != nil {
			return PolicyResult{}, err
		}
		if err := checkFinite(op, "baseline", baseline); err != nil {
			return PolicyResult{}, err
		}
	}
	res := PolicyResult{Grad: make([]float64, n)}
	fn := float64(n)
	for i := range n {
		b := mean
		if baseline != nil {
			b = baseline[i]
		}
		a := rewards[i] - b
		term := a * logp[i]
		if math.IsInf(a, 0) || math.IsInf(term, 0) {
			return PolicyResult{}, fmt.Errorf("prefopt: %s: entry %d: (rewards[%d] = %v − baseline %v)·logp %v overflows float64", op, i, i, rewards[i], b, logp[i])
		}
		res.Loss -= term / fn               // the mean, accumulated scaled so the sum cannot overflow first
		res.Grad[i] = (b - rewards[i]) / fn // −a/n, but +0 when a = 0
	}
	return res, nil
}

// PPOClip is the clipped surrogate of PPO (Schulman et al. 2017):
//
//	L = −mean_i min(ρ_i·A_i, clip(ρ_i, 1−ε, 1+ε)·A_i),   ρ_i = exp(logp_i − oldLogp_i).
//
// Entries are whatever the ratio is taken over: sequences (summed
// log-probs, one advantage each) or tokens (per-token log-probs with each
// sequence's advantage repeated over its tokens, see Expand); the mean is
// over entries. The gradient with respect to logp[i] is −ρ_i·A_i/n where the
// unclipped term is the minimum and 0 where the clip is active. Log-ratio
// gaps of a thousand nats are handled at their limits (a ratio of +Inf with
// a positive advantage is simply clipped); the one truly infinite case, a
// ratio overflowing with a negative advantage, is an error. ApproxKL is a
// diagnostic and may be +Inf for such far off-policy batches. eps must be
// in (0, 1). A term ρ·A or clip(ρ)·A that overflows float64 is an error
// naming the entry; the mean is accumulated so that finite terms never
// overflow it.
func PPOClip(logp, oldLogp, adv []float64, eps float64) (PolicyResult, error) {
	const op = "PPOClip"
	n := len(logp)
	if n == 0 {
		return PolicyResult{}, fmt.Errorf("prefopt: %s: empty batch", op)
	}
	if !(eps > 0 && eps < 1) {
		return PolicyResult{}, fmt.Errorf("prefopt: %s: eps = %v, need 0 < ε < 1", op, eps)
	}
	if err := sameLen(op, n, "oldLogp", len(oldLogp)); err != nil {
		return PolicyResult{}, err
	}
	if err := sameLen(op, n, "adv", len(adv)); err != nil {
		return PolicyResult{}, err
	}
	for _, f := range []struct {
		name string
		v    []float64
	}{{"logp", logp}, {"oldLogp", oldLogp}, {"adv", adv}} {
		if err := checkFinite(op, f.name, f.v); err != nil {
			return PolicyResult{}, err
		}
	}
	res := PolicyResult{Grad: make([]float64, n)}
	fn := float64(n)
	var clipped int
	for i := range n {
		d := logp[i] - oldLogp[i]
		a := adv[i]
		// k3 with ratio ρ = π_θ/π_old: (ρ − 1) − log ρ estimates
		// KL(π_old‖π_θ) from the samples π_old drew.
		res.ApproxKL += math.Expm1(d) - d
		if a == 0 {
			continue // both terms are 0 (and ρ·0 would be NaN for ρ = +Inf)
		}
		rho := math.Exp(d) // +Inf past d ≈ 709, 0 below ≈ −745: both exact limits
		if math.IsInf(rho, 1) && a < 0 {
			return PolicyResult{}, fmt.Errorf("prefopt: %s: entry %d: ratio exp(%v) overflows with negative advantage %v: the loss is +Inf", op, i, d, a)
		}
		c := min(max(rho, 1-eps), 1+eps)
		un, cl := rho*a, c*a
		if math.IsInf(cl, 0) || math.IsInf(un, -1) {
			return PolicyResult{}, fmt.Errorf("prefopt: %s: entry %d: ratio exp(%v) × advantage adv[%d] = %v overflows float64", op, i, d, i, a)
		}
		if un <= cl {
			res.Loss -= un / fn
			res.Grad[i] = -un / fn
		} else {
			res.Loss -= cl / fn
			clipped++
		}
	}
	res.ApproxKL /= fn
	res.ClipFrac = float64(clipped) / fn
	return res, nil
}

// Expand repeats each sequence's value over its tokens: for lens
// [2, 3] and v [a, b] it returns [a, a, b, b, b]. It turns per-sequence
// advantages into the per-token layout of token-level PPOClip.
func Expand(v []float64, lens []int) ([]float64, error) {
	if len(v) != len(lens) {
		return nil, fmt.Errorf("prefopt: Expand: %d values for %d lengths", len(v), len(lens))
	}
	total := 0
	for i, l := range lens {
		if l < 0 {
			return nil, fmt.Errorf("prefopt: Expand: lens[%d] = %d is negative", i, l)
		}
		if l > MaxExpand-total {
			return nil, fmt.Errorf("prefopt: Expand: lens[%d] = %d brings the total past MaxExpand = %d tokens", i, l, MaxExpand)
		}
		total += l
	}
	out := make([]float64, 0, total)
	for i, l := range lens {
		for range l {
			out = append(out, v[i])
		}
	}
	return out, nil
}

// MaxExpand bounds Expand's output: 2³¹−1 tokens (16 GiB of float64), far
// beyond any batch, so a corrupt length is an error instead of an
// allocation that kills the process.
const MaxExpand = 1<<31 - 1

// KLEstimator selects one of Schulman's (2020) single-sample estimators of
// KL(π_θ ‖ π_ref) from tokens sampled by π_θ, with δ = log π_ref − log π_θ.
type KLEstimator uint8

const (
	K1 KLEstimator = iota + 1 // −δ: unbiased, high variance, can be negative
	K2                        // δ²/2: biased, low variance, ≥ 0
	K3                        // (e^δ − 1) − δ: unbiased, low variance, ≥ 0 (GRPO's)
)

// String returns the estimator's name in Schulman's notation: "k1", "k2"
// or "k3".
func (e KLEstimator) String() string {
	switch e {
	case K1:
		return "k1"
	case K2:
		return "k2"
	case K3:
		return "k3"
	}
	return fmt.Sprintf("KLEstimator(%d)", uint8(e))
}

// Estimate returns the estimator's value at one token and its derivative
// with respect to logp.
func (e KLEstimator) Estimate(logp, refLogp float64) (kl, dlogp float64) {
	d := refLogp - logp
	switch e {
	case K1:
		return -d, 1
	case K2:
		return d * d / 2, -d
	case K3:
		// expm1 keeps (e^δ − 1) − δ accurate for small δ, where it is ≈ δ²/2.
		return math.Expm1(d) - d, -math.Expm1(d)
	}
	return math.NaN(), math.NaN()
}

// KL returns the mean of the estimator over tokens and its gradient with
// respect to logp, for use as a KL penalty in the loss (as GRPO does).
// logp and refLogp are per-token log-probs of the sampled tokens.
func KL(est KLEstimator, logp, refLogp []float64) (PolicyResult, error) {
	const op = "KL"
	if est < K1 || est > K3 {
		return PolicyResult{}, fmt.Errorf("prefopt: %s: unknown estimator %v", op, est)
	}
	n := len(logp)
	if n == 0 {
		return PolicyResult{}, fmt.Errorf("prefopt: %s: no tokens", op)
	}
	if err := sameLen(op, n, "refLogp", len(refLogp)); err != nil {
		return PolicyResult{}, err
	}
	if err := checkFinite(op, "logp", logp); err != nil {
		return PolicyResult{}, err
	}
	if err := checkFinite(op, "refLogp", refLogp); err != nil {
		return PolicyResult{}, err
	}
	res := PolicyResult{Grad: make([]float64, n)}
	for i := range n {
		kl, g := est.Estimate(logp[i], refLogp[i])
		res.Loss += kl
		res.Grad[i] = g / float64(n)
	}
	res.Loss /= float64(n)
	if !finite(res.Loss) {
		return PolicyResult{}, fmt.Errorf("prefopt: %s: %v estimate overflowed", op, est)
	}
	for i, g := range res.Grad {
		if !finite(g) {
			return PolicyResult{}, fmt.Errorf("prefopt: %s: %v gradient at token %d overflowed", op, est, i)
		}
	}
	return res, nil
}

// ShapeRewards returns KL-shaped rewards R = r − β·(log π_old(y) − log
// π_ref(y)), as AFM's MDLOO and TRL's RLOO use, from per-sequence rewards
// and summed log-probs of the sampling policy and the reference. The
// penalty is computed under π_old, the policy that sampled y, so R is a
// constant with respect to the new policy: its gradient with respect to the
// new policy's log-probs is zero, and the KL pressure reaches the policy
// only through the advantages built from R. beta must be finite and ≥ 0;
// a shaped reward that overflows float64 is an error naming the entry.
func ShapeRewards(r, oldLogp, refLogp []float64, beta float64) ([]float64, error) {
	const op = "ShapeRewards"
	if !(beta >= 0) || math.IsInf(beta, 0) {
		return nil, fmt.Errorf("prefopt: %s: beta = %v, need a finite value ≥ 0", op, beta)
	}
	n := len(r)
	if err := sameLen(op, n, "oldLogp", len(oldLogp)); err != nil {
		return nil, err
	}
	if err := sameLen(op, n, "refLogp", len(refLogp)); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		name string
		v    []float64
	}{{"r", r}, {"oldLogp", oldLogp}, {"refLogp", refLogp}} {
		if err := checkFinite(op, f.name, f.v); err != nil {
			return nil, err
		}
	}
	out := make([]float64, n)
	for i := range n {
		out[i] = r[i] - beta*(oldLogp[i]-refLogp[i])
		if !finite(out[i]) {
			return nil, fmt.Errorf("prefopt: %s: entry %d: r %v − beta %v·(oldLogp %v − refLogp %v) overflows float64", op, i, r[i], beta, oldLogp[i], refLogp[i])
		}
	}
	return out, nil
}

func checkFinite(op, name string, v []float64) error {
	for i, x := range v {
		if !finite(x) {
			return fmt.Errorf("prefopt: %s: %s[%d] is %v", op, name, i, x)
		}
	}
	return nil
}

func sameLen(op string, n int, name string, m int) error {
	if m != n {
		return fmt.Errorf("prefopt: %s: %s has %d entries, want %d", op, name, m, n)
	}
	return nil
}

package prefopt

import (
	"fmt"
	"math"
)

// GRPOLossType selects how GRPOLoss shapes and normalizes the per-token
// surrogate: TRL's GRPOConfig.loss_type.
type GRPOLossType uint8

const (
	// LossGRPO is DeepSeekMath's (Shao et al. 2024): the clipped surrogate
	// averaged over each sequence's tokens, then over sequences. Long
	// completions weigh less per token.
	LossGRPO GRPOLossType = iota + 1
	// LossBNPO averages over all tokens of the batch (TRL's "bnpo").
	LossBNPO
	// LossDrGRPO is Dr. GRPO (Liu et al. 2025, "Understanding R1-Zero-Like
	// Training: A Critical Perspective"): the token sum divided by a
	// constant, sequences × MaxCompletionLen, removing GRPO's length bias.
	LossDrGRPO
	// LossDAPO is DAPO's token-level normalization (Yu et al. 2025, "DAPO:
	// An Open-Source LLM Reinforcement Learning System at Scale"): the
	// token sum divided by the number of tokens in the whole (accumulated)
	// batch, NumItems. Pair it with EpsHigh > EpsLow (clip-higher) and
	// DynamicSampling.
	LossDAPO
	// LossCISPO is MiniMax-M1's clipped importance-sampling policy
	// optimization (MiniMax 2025): REINFORCE on every token weighted by the
	// importance ratio clipped from above at EpsHigh and detached,
	// −min(ρ, ε_high)·A·log π, normalized as LossDAPO. No token's gradient
	// is dropped.
	LossCISPO
)

// String returns TRL's name for t.
func (t GRPOLossType) String() string {
	switch t {
	case LossGRPO:
		return "grpo"
	case LossBNPO:
		return "bnpo"
	case LossDrGRPO:
		return "dr_grpo"
	case LossDAPO:
		return "dapo"
	case LossCISPO:
		return "cispo"
	}
	return fmt.Sprintf("GRPOLossType(%d)", uint8(t))
}

// ImportanceLevel is where GRPOLoss takes the importance ratio: TRL's
// importance_sampling_level.
type ImportanceLevel uint8

const (
	// TokenLevel uses each token's ratio π_θ(y_t)/π_old(y_t).
	TokenLevel ImportanceLevel = iota
	// SequenceLevel is GSPO (Zheng et al. 2025, "Group Sequence Policy
	// Optimization"): one ratio per sequence, the length-normalized
	// s_i = exp(mean_t (log π_θ(y_t) − log π_old(y_t))), clipped and
	// applied to every token of the sequence.
	SequenceLevel
)

// Rollout is a batch of sampled completions as per-token log-probs,
// sequence after sequence: sequence i owns the next Len[i] entries of
// Logp, OldLogp and RefLogp.
type Rollout struct {
	Logp    []float64 // log π_θ(y_t) under the policy being trained
	OldLogp []float64 // under the policy that sampled; nil means Logp (one update per batch: ratios of 1)
	RefLogp []float64 // under the reference, for the KL penalty; needed when Beta > 0
	Len     []int     // completion tokens per sequence, each ≥ 1
	Adv     []float64 // one advantage per sequence (GroupAdvantages)
}

// GRPOLoss is the policy loss of TRL's GRPOTrainer in all its loss types
// (huggingface/trl v1.9.0, trl/trainer/grpo_trainer.py, _compute_loss).
// Per token t of sequence i, with the importance ratio r (per token, or per
// sequence under GSPO) and the sequence's advantage A,
//
//	ℓ_it = −min(r·A, clip(r, 1−ε_low, 1+ε_high)·A) + β·k3_it
//
// (CISPO: −sg(min(r, ε_high))·A·log π_θ(y_t) + β·k3_it), where
// k3 = e^δ − δ − 1, δ = log π_ref − log π_θ, is Schulman's KL estimator, and
// the loss is Σ_it ℓ_it weighted as Type says. Grad is the gradient with
// respect to Logp; OldLogp, RefLogp and Adv are constants.
//
// The zero Level is TokenLevel. EpsHigh 0 means EpsHigh = EpsLow (TRL's
// epsilon_high default); DAPO's clip-higher is EpsLow 0.2, EpsHigh 0.28.
// For LossCISPO, EpsHigh is the cap on the ratio itself (MiniMax and TRL
// suggest 5) and EpsLow is unused. Delta, if > 0, also caps the unclipped
// ratio from above (TRL's delta, two-sided GRPO). Beta ≥ 0 weighs the KL
// penalty (0 drops it). MaxCompletionLen, LossDrGRPO's constant, must be
// at least the longest completion. NumItems, for LossDAPO and LossCISPO, is
// the token count of the whole batch when this is one micro-batch of it;
// 0 means this rollout's tokens.
//
// An empty completion (Len 0) is an error, as is a ratio that overflows
// with a negative advantage (the loss would be +Inf); ratios of e^±1000
// otherwise give their exact limits.
type GRPOLoss struct {
	Type             GRPOLossType
	Level            ImportanceLevel
	EpsLow, EpsHigh  float64
	Delta            float64
	Beta             float64
	MaxCompletionLen int
	NumItems         int
}

// GRPOResult is GRPOLoss's value, gradient and TRL's diagnostics.
type GRPOResult struct {
	Loss float64
	Grad []float64 // dLoss/dLogp[t]
	KL   float64   // kl: mean k3 over tokens (0 without RefLogp)
	// clip_ratio/low_mean, high_mean and region_mean: the fraction of
	// tokens (of sequences under GSPO) whose ratio is clipped, below with
	// A < 0, above with A > 0, or either. For LossCISPO, ClipHigh (and so
	// ClipRegion) is TRL's cispo_clip_ratio, the fraction with r > ε_high
	// and A > 0.
	ClipLow, ClipHigh, ClipRegion float64
}

// Loss returns the loss of r.
func (o GRPOLoss) Loss(r Rollout) (GRPOResult, error) {
	op := "GRPOLoss"
	if o.Type < LossGRPO || o.Type > LossCISPO {
		return GRPOResult{}, fmt.Errorf("prefopt: %s: unknown loss type %v", op, o.Type)
	}
	op += " " + o.Type.String()
	if o.Level > SequenceLevel {
		return GRPOResult{}, fmt.Errorf("prefopt: %s: unknown importance level %d", op, o.Level)
	}
	epsLow, epsHigh := o.EpsLow, o.EpsHigh
	if epsHigh == 0 {
		epsHigh = epsLow
	}
	if o.Type == LossCISPO {
		if !(epsHigh > 0) || math.IsInf(epsHigh, 0) {
			return GRPOResult{}, fmt.Errorf("prefopt: %s: EpsHigh = %v, need the ratio cap > 0", op, o.EpsHigh)
		}
	} else {
		if !(epsLow > 0 && epsLow < 1) {
			return GRPOResult{}, fmt.Errorf("prefopt: %s: EpsLow = %v, need 0 < ε_low < 1", op, o.EpsLow)
		}
		if !(epsHigh > 0) || math.IsInf(epsHigh, 0) {
			return GRPOResult{}, fmt.Errorf("prefopt: %s: EpsHigh = %v, need a finite value > 0", op, o.EpsHigh)
		}
	}
	if !(o.Delta >= 0) || math.IsInf(o.Delta, 0) || (o.Delta > 0 && o.Delta <= 1) {
		return GRPOResult{}, fmt.Errorf("prefopt: %s: Delta = %v, need 0 (off) or a finite value > 1", op, o.Delta)
	}
	if !(o.Beta >= 0) || math.IsInf(o.Beta, 0) {
		return GRPOResult{}, fmt.Errorf("prefopt: %s: Beta = %v, need a finite value ≥ 0", op, o.Beta)
	}
	b := len(r.Len)
	if b == 0 {
		return GRPOResult{}, fmt.Errorf("prefopt: %s: empty batch", op)
	}
	if err := sameLen(op, b, "Adv", len(r.Adv)); err != nil {
		return GRPOResult{}, err
	}
	tokens, longest := 0, 0
	for i, l := range r.Len {
		if l <= 0 {
			return GRPOResult{}, fmt.Errorf("prefopt: %s: Len[%d] = %d: empty completion", op, i, l)
		}
		tokens += l
		longest = max(longest, l)
	}
	if err := sameLen(op, tokens, "Logp", len(r.Logp)); err != nil {
		return GRPOResult{}, err
	}
	old := r.OldLogp
	if old == nil {
		old = r.Logp
	}
	if err := sameLen(op, tokens, "OldLogp", len(old)); err != nil {
		return GRPOResult{}, err
	}
	if o.Beta > 0 && r.RefLogp == nil {
		return GRPOResult{}, fmt.Errorf("prefopt: %s: Beta = %v needs RefLogp", op, o.Beta)
	}
	if r.RefLogp != nil {
		if err := sameLen(op, tokens, "RefLogp", len(r.RefLogp)); err != nil {
			return GRPOResult{}, err
		}
	}
	for _, f := range []struct {
		name string
		v    []float64
	}{{"Logp", r.Logp}, {"OldLogp", r.OldLogp}, {"RefLogp", r.RefLogp}, {"Adv", r.Adv}} {
		if err := checkFinite(op, f.name, f.v); err != nil {
			return GRPOResult{}, err
		}
	}
	var norm float64 // the per-token weight's denominator, except for LossGRPO
	switch o.Type {
	case LossBNPO:
		norm = float64(tokens)
	case LossDrGRPO:
		if o.MaxCompletionLen < longest {
			return GRPOResult{}, fmt.Errorf("prefopt: %s: MaxCompletionLen = %d, but a completion has %d tokens", op, o.MaxCompletionLen, longest)
		}
		norm = float64(b * o.MaxCompletionLen)
	case LossDAPO, LossCISPO:
		norm = float64(tokens)
		if o.NumItems != 0 {
			if o.NumItems < tokens {
				return GRPOResult{}, fmt.Errorf("prefopt: %s: NumItems = %d, fewer than the rollout's %d tokens", op, o.NumItems, tokens)
			}
			norm = float64(o.NumItems)
		}
	}

	res := GRPOResult{Grad: make([]float64, tokens)}
	var loss float64
	var low, high, region, entries int
	count := func(c clip) {
		if c.low {
			low++
		}
		if c.high {
			high++
		}
		if c.low || c.high {
			region++
		}
		entries++
	}
	start := 0
	for i, l := range r.Len {
		a := r.Adv[i]
		w := 1 / norm // the weight of each of this sequence's token losses
		if o.Type == LossGRPO {
			w = 1 / (float64(l) * float64(b))
		}
		seq, oldSeq := r.Logp[start:start+l], old[start:start+l]
		// Under GSPO one log ratio, the mean over the sequence, serves every
		// token, and d(mean)/dlogp_t = 1/l; the token losses are l equal
		// copies, so each token's gradient is w·l·(1/l)·dℓ/ds = w·dℓ/ds.
		var seqRatio float64
		if o.Level == SequenceLevel {
			for t := range l {
				seqRatio += seq[t] - oldSeq[t]
			}
			seqRatio /= float64(l)
		}
		for t := range l {
			lr := seq[t] - oldSeq[t]
			if o.Level == SequenceLevel {
				lr = seqRatio
			}
			var v, d float64
			var c clip
			if o.Type == LossCISPO {
				// −sg(min(ρ, ε_high))·A·log π: the weight is a constant.
				rho := math.Exp(lr)
				cw := min(rho, epsHigh)
				c.high = rho > epsHigh && a > 0
				v, d = -cw*a*seq[t], -cw*a
			} else {
				var err error
				v, d, c, err = o.clipped(lr, a, epsLow, epsHigh)
				if err != nil {
					return GRPOResult{}, fmt.Errorf("prefopt: %s: sequence %d: %w", op, i, err)
				}
			}
			loss += w * v
			res.Grad[start+t] = w * d
			if o.Level == TokenLevel || t == 0 {
				count(c)
			}
			if r.RefLogp != nil {
				kl, dkl := K3.Estimate(seq[t], r.RefLogp[start+t])
				res.KL += kl
				if o.Beta > 0 {
					loss += w * o.Beta * kl
					res.Grad[start+t] += w * o.Beta * dkl
				}
			}
		}
		start += l
	}
	res.Loss = loss
	res.KL /= float64(tokens)
	fe := float64(entries)
	res.ClipLow, res.ClipHigh, res.ClipRegion = float64(low)/fe, float64(high)/fe, float64(region)/fe
	if !finite(res.Loss) {
		return GRPOResult{}, fmt.Errorf("prefopt: %s: loss overflowed to %v", op, res.Loss)
	}
	for t, g := range res.Grad {
		if !finite(g) {
			return GRPOResult{}, fmt.Errorf("prefopt: %s: gradient at token %d overflowed", op, t)
		}
	}
	return res, nil
}

// clip says which side of the trust region clipped an entry's ratio.
type clip struct{ low, high bool }

// clipped returns the clipped surrogate −min(r·A, clip(r, 1−ε_low,
// 1+ε_high)·A) for the log ratio lr = log r and advantage a, with its
// derivative with respect to lr: −r·A where the unclipped term is the
// minimum (and r is not capped by Delta), else 0.
func (o GRPOLoss) clipped(lr, a, epsLow, epsHigh float64) (v, d float64, c clip, err error) {
	rho := math.Exp(lr) // +Inf past lr ≈ 709, 0 below ≈ −745: exact limits
	c = clip{low: rho < 1-epsLow && a < 0, high: rho > 1+epsHigh && a > 0}
	if a == 0 {
		return 0, 0, c, nil // both terms are 0 (and ∞·0 would be NaN)
	}
	c1 := rho
	if o.Delta > 0 {
		c1 = min(rho, o.Delta)
	}
	if math.IsInf(c1, 1) && a < 0 {
		return 0, 0, c, fmt.Errorf("ratio exp(%v) overflows with negative advantage %v: the loss is +Inf", lr, a)
	}
	c2 := min(max(rho, 1-epsLow), 1+epsHigh)
	un, cl := c1*a, c2*a
	if un > cl {
		return -cl, 0, c, nil
	}
	if c1 < rho { // capped by Delta: a constant
		return -un, 0, c, nil
	}
	return -un, -un, c, nil
}

// RewardScale is how GroupAdvantages scales rewards: TRL's scale_rewards.
type RewardScale uint8

const (
	// ScaleGroup divides by the group's standard deviation (GRPO's).
	ScaleGroup RewardScale = iota
	// ScaleBatch divides by the standard deviation of the whole batch
	// (Hu et al. 2025, REINFORCE++-style; robust to low-variance groups).
	ScaleBatch
	// ScaleNone only subtracts the group mean (Dr. GRPO's advice: scaling
	// by the group std favours too-easy and too-hard prompts).
	ScaleNone
)

// String returns TRL's name for s.
func (s RewardScale) String() string {
	switch s {
	case ScaleGroup:
		return "group"
	case ScaleBatch:
		return "batch"
	case ScaleNone:
		return "none"
	}
	return fmt.Sprintf("RewardScale(%d)", uint8(s))
}

// GroupAdvantages returns TRL's GRPO advantages for rewards laid out in
// contiguous groups of k completions per prompt: each reward minus its
// group's mean, divided by std + 1e-4 where std is the group's (ScaleGroup,
// as GRPO does) or the batch's (ScaleBatch) unbiased standard deviation,
// or not divided (ScaleNone). A group of equal rewards gets zero
// advantages whatever the scale. It returns an error if k < 2, the rewards
// do not split into groups of k, or a reward is NaN or ±Inf.
func GroupAdvantages(rewards []float64, k int, scale RewardScale) ([]float64, error) {
	const op = "GroupAdvantages"
	if k < 2 {
		return nil, fmt.Errorf("prefopt: %s: group size k = %d, need at least 2", op, k)
	}
	if len(rewards)%k != 0 {
		return nil, fmt.Errorf("prefopt: %s: %d rewards do not split into groups of %d", op, len(rewards), k)
	}
	if err := checkFinite(op, "rewards", rewards); err != nil {
		return nil, err
	}
	switch scale {
	case ScaleGroup:
		return GRPO(rewards, k, 1e-4)
	case ScaleBatch, ScaleNone:
	default:
		return nil, fmt.Errorf("prefopt: %s: unknown scale %v", op, scale)
	}
	for i, r := range rewards {
		// Sums and squares of deviations stay finite below this.
		if math.Abs(r) > maxReward {
			return nil, fmt.Errorf("prefopt: %s: rewards[%d] = %v, beyond ±%g", op, i, r, maxReward)
		}
	}
	adv := make([]float64, len(rewards))
	for g := 0; g < len(rewards); g += k {
		grp := rewards[g : g+k]
		if flat(grp) {
			continue // exactly 0, not the last-bit error of the mean
		}
		var mean float64
		for _, r := range grp {
			mean += r
		}
		mean /= float64(k)
		for i, r := range grp {
			adv[g+i] = r - mean
		}
	}
	if scale == ScaleNone {
		return adv, nil
	}
	_, std := meanStd(rewards)
	for i := range adv {
		adv[i] /= std + 1e-4
	}
	return adv, nil
}

// meanStd returns the mean of v and its unbiased standard deviation, as
// torch's std (len(v) ≥ 2).
func meanStd(v []float64) (mean, std float64) {
	for _, x := range v {
		mean += x
	}
	mean /= float64(len(v))
	var ss float64
	for _, x := range v {
		ss += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(ss / float64(len(v)-1))
}

// maxReward bounds the rewards GroupAdvantages scales by the batch or not
// at all, so that sums and squared deviations over a batch cannot
// overflow float64.
const maxReward = 1e150

// flat reports whether v's values are all equal. Advantage functions give
// such a group exactly 0 rather than computing it: the group's mean can
// differ from the rewards in the last bit (three rewards of 0.7 have mean
// 0.7 − 1.1e−16), which the std division would blow up to a spurious
// ±1e−12.
func flat(v []float64) bool {
	for _, x := range v[1:] {
		if x != v[0] {
			return false
		}
	}
	return true
}

// WeightedRewards combines the scores of several reward functions into one
// reward per completion, Σ_j w_j·rewards[j][i], as TRL's GRPOTrainer does
// with reward_weights before computing advantages. rewards[j] holds
// function j's scores; weights nil weighs every function 1. Every row must
// have the same length; NaN or ±Inf is an error (TRL's None for "this
// function does not score this completion" is not supported: score it 0).
func WeightedRewards(rewards [][]float64, weights []float64) ([]float64, error) {
	const op = "WeightedRewards"
	if len(rewards) == 0 {
		return nil, fmt.Errorf("prefopt: %s: no reward functions", op)
	}
	if weights != nil {
		if err := sameLen(op, len(rewards), "weights", len(weights)); err != nil {
			return nil, err
		}
		if err := checkFinite(op, "weights", weights); err != nil {
			return nil, err
		}
	}
	n := len(rewards[0])
	for j, r := range rewards {
		if len(r) != n {
			return nil, fmt.Errorf("prefopt: %s: rewards[%d] has %d entries, rewards[0] %d", op, j, len(r), n)
		}
		if err := checkFinite(op, fmt.Sprintf("rewards[%d]", j), r); err != nil {
			return nil, err
		}
	}
	out := make([]float64, n)
	for j, r := range rewards {
		w := 1.0
		if weights != nil {
			w = weights[j]
		}
		for i, x := range r {
			out[i] += w * x
		}
	}
	for i, x := range out {
		if !finite(x) {
			return nil, fmt.Errorf("prefopt: %s: the weighted sum for completion %d overflows float64", op, i)
		}
	}
	return out, nil
}

// DecoupledAdvantages combines several reward functions the GDPO way
// (Group reward-Decoupled Normalization Policy Optimization, 2026; TRL's
// multi_objective_aggregation "normalize_then_sum"): each function's
// rewards rewards[j] are first normalized within each group of k, as
// GroupAdvantages with ScaleGroup does, so that no function's scale
// dominates; the weighted sum is then normalized over the whole batch,
// (s − mean s)/(std s + 1e-4) with the unbiased std. weights nil weighs
// every function 1. A batch whose sums are all equal gets zero advantages.
// Errors as for WeightedRewards and GroupAdvantages.
func DecoupledAdvantages(rewards [][]float64, weights []float64, k int) ([]float64, error) {
	const op = "DecoupledAdvantages"
	if len(rewards) == 0 {
		return nil, fmt.Errorf("prefopt: %s: no reward functions", op)
	}
	norm := make([][]float64, len(rewards))
	for j, r := range rewards {
		a, err := GroupAdvantages(r, k, ScaleGroup)
		if err != nil {
			return nil, fmt.Errorf("prefopt: %s: reward function %d: %w", op, j, err)
		}
		norm[j] = a
	}
	s, err := WeightedRewards(norm, weights)
	if err != nil {
		return nil, fmt.Errorf("prefopt: %s: %w", op, err)
	}
	adv := make([]float64, len(s))
	if flat(s) {
		return adv, nil
	}
	mean, std := meanStd(s)
	for i, x := range s {
		adv[i] = (x - mean) / (std + 1e-4)
	}
	return adv, nil
}

// DynamicSampling returns the indices of the groups (of k contiguous
// completions) whose rewards are not all equal: DAPO's dynamic sampling
// (Yu et al. 2025, §3.2), which drops prompts whose completions all
// succeed or all fail because their advantages, and so their gradients,
// are zero. The caller keeps sampling until it has enough groups. It
// returns an error if k < 1 or the rewards do not split into groups of k,
// or a reward is NaN or ±Inf.
func DynamicSampling(rewards []float64, k int) ([]int, error) {
	const op = "DynamicSampling"
	if k < 1 {
		return nil, fmt.Errorf("prefopt: %s: group size k = %d, need at least 1", op, k)
	}
	if len(rewards)%k != 0 {
		return nil, fmt.Errorf("prefopt: %s: %d rewards do not split into groups of %d", op, len(rewards), k)
	}
	if err := checkFinite(op, "rewards", rewards); err != nil {
		return nil, err
	}
	var keep []int
	for g := 0; g < len(rewards); g += k {
		if !flat(rewards[g : g+k]) {
			keep = append(keep, g/k)
		}
	}
	return keep, nil
}

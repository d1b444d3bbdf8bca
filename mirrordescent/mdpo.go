package mirrordescent

import (
	"context"
	"fmt"
	"math"
)

// TabularMDPO performs MDPO's exact update for a tabular softmax policy at
// one state, in log space:
//
//	π_{k+1} ∝ π_k·exp(t·A_k),   i.e.   logp ← logp + t·A − logΣexp(logp + t·A),
//
// the maximizer of E_π[A_k] − (1/t)·KL(π‖π_k) over the simplex (Tomar et
// al. 2020, eq. 5 with the tabular closed form). It is EntropicStep with
// grad = −A, but on log-probs, so actions with probability below 1e-308
// keep their resolution. logp need not be normalized on entry (it is on
// exit); entries may be −Inf (impossible actions stay impossible).
//
// It returns an error, leaving logp untouched, if the lengths differ, a
// log-prob is NaN or +Inf or all are −Inf, an advantage is not finite, or
// t is negative, NaN or infinite.
func TabularMDPO(logp, adv []float64, t float64) error {
	const op = "TabularMDPO"
	if len(logp) != len(adv) {
		return fmt.Errorf("mirrordescent: %s: len(logp) = %d but len(adv) = %d", op, len(logp), len(adv))
	}
	if math.IsNaN(t) || math.IsInf(t, 0) || t < 0 {
		return fmt.Errorf("mirrordescent: %s: step size t = %v, need finite and ≥ 0", op, t)
	}
	support := false
	for i, l := range logp {
		if math.IsNaN(l) || math.IsInf(l, 1) {
			return fmt.Errorf("mirrordescent: %s: logp[%d] = %v", op, i, l)
		}
		support = support || !math.IsInf(l, -1)
		if math.IsNaN(adv[i]) || math.IsInf(adv[i], 0) {
			return fmt.Errorf("mirrordescent: %s: adv[%d] = %v", op, i, adv[i])
		}
	}
	if !support {
		return fmt.Errorf("mirrordescent: %s: every logp is −Inf (or logp is empty)", op)
	}
	// Shift by the largest advantage on the support so t·(A − A_max) ≤ 0
	// and cannot overflow; a shift is absorbed by the normalization.
	amax := math.Inf(-1)
	for i, l := range logp {
		if !math.IsInf(l, -1) {
			amax = max(amax, adv[i])
		}
	}
	top := math.Inf(-1)
	for i, l := range logp {
		logp[i] = l + t*(adv[i]-amax)
		top = max(top, logp[i])
	}
	var s float64
	for _, l := range logp {
		s += math.Exp(l - top)
	}
	lse := top + math.Log(s)
	for i := range logp {
		logp[i] -= lse
	}
	return nil
}

// Result is one evaluation of the MDPO surrogate.
type Result struct {
	Loss float64 // −Gain + KL/t, the quantity minimized
	// Gain is mean(ρ·Â), the importance-weighted advantage.
	Gain float64
	// KL estimates KL(π_θ‖π_k) as mean(ρ·log ρ − ρ + 1) (see Surrogate).
	KL float64
	// MeanRatio is mean(ρ); it drifts from 1 as π_θ leaves π_k.
	MeanRatio float64
	// MaxLogRatio is max |log ρ| over the batch.
	MaxLogRatio float64
}

// LogRatioLimit bounds log ρ = log π_θ − log π_k accepted by the surrogates:
// e^700 ≈ 1e304 is near float64's limit, and a ratio that large means the
// batch is no longer anywhere near on-policy, so the surrogates return an
// error naming the sample instead of an infinite loss.
const LogRatioLimit = 700

// Surrogate evaluates MDPO's per-iteration objective at sequence level
// (Tomar et al. 2020, on-policy MDPO), to be minimized over θ:
//
//	L(θ) = −mean_i(ρ_i·Â_i) + (1/t)·mean_i(ρ_i·log ρ_i − ρ_i + 1),
//	ρ_i = exp(log π_θ(y_i) − log π_k(y_i)),
//
// for N responses y_i sampled from π_k with advantages Â_i; newLP and
// oldLP hold the summed log-probs of each response under π_θ and π_k.
//
// The second term estimates KL(π_θ‖π_k) from samples of π_k: KL(π_θ‖π_k)
// = E_{π_k}[ρ·log ρ], and adding E_{π_k}[1 − ρ] = 0 keeps it unbiased
// while making every sample's term nonnegative (it is the f-divergence
// form with f(ρ) = ρ·log ρ − ρ + 1), which cuts variance; its gradient
// vanishes at ρ = 1, so the first inner step is a pure policy-gradient
// step. Note the direction: the new policy against the old, as MDPO's
// mirror-descent derivation asks, the opposite of PPO-penalty's KL.
//
// If grad is not nil it receives dL/dnewLP (length N):
//
//	∂L/∂newLP_i = (−ρ_i·Â_i + (1/t)·ρ_i·log ρ_i) / N.
//
// It returns an error naming the bad input, writing nothing to grad, if
// lengths differ, N = 0, t is not finite and > 0, a log-prob or advantage
// is not finite, or log ρ exceeds LogRatioLimit.
func Surrogate(grad, newLP, oldLP, adv []float64, t float64) (Result, error) {
	return surrogate("Surrogate", grad, newLP, oldLP, nil, adv, t)
}

// TokenSurrogate is the token-level variant of Surrogate: every
// completion token gets its own ratio ρ_j = exp(newLP_j − oldLP_j) and the
// advantage of its sequence, and both terms average over all completion
// tokens of the batch (the token-mean of TRL/OpenRLHF PPO, so long
// responses weigh more):
//
//	L = −mean_j(ρ_j·Â_{seq(j)}) + (1/t)·mean_j(ρ_j·log ρ_j − ρ_j + 1).
//
// lengths gives each sequence's token count (zero allowed); the tokens are
// laid out contiguously in newLP and oldLP, so Σ lengths = len(newLP). The
// per-token KL term is the usual per-step approximation of the sequence
// KL. grad (nil allowed) receives dL/dnewLP_j, in float32 like its input
// (prefopt.TokenLogProbs produces float32 per-token log-probs); sums run
// in float64.
func TokenSurrogate(grad, newLP, oldLP []float32, lengths []int, adv []float64, t float64) (Result, error) {
	if lengths == nil {
		return Result{}, fmt.Errorf("mirrordescent: TokenSurrogate: nil lengths")
	}
	return surrogate("TokenSurrogate", grad, newLP, oldLP, lengths, adv, t)
}

// surrogate is the one implementation behind both surrogates: lengths ==
// nil means one item per sequence.
func surrogate[F float32 | float64](op string, grad, newLP, oldLP []F, lengths []int, adv []float64, t float64) (Result, error) {
	n := len(newLP)
	if len(oldLP) != n {
		return Result{}, fmt.Errorf("mirrordescent: %s: len(newLP) = %d but len(oldLP) = %d", op, n, len(oldLP))
	}
	if grad != nil && len(grad) != n {
		return Result{}, fmt.Errorf("mirrordescent: %s: len(grad) = %d but len(newLP) = %d", op, len(grad), n)
	}
	if math.IsNaN(t) || math.IsInf(t, 0) || t <= 0 {
		return Result{}, fmt.Errorf("mirrordescent: %s: step size t = %v, need finite and > 0", op, t)
	}
	if lengths == nil {
		if len(adv) != n {
			return Result{}, fmt.Errorf("mirrordescent: %s: len(adv) = %d but len(newLP) = %d", op, len(adv), n)
		}
	} else {
		if len(adv) != len(lengths) {
			return Result{}, fmt.Errorf("mirrordescent: %s: len(adv) = %d but len(lengths) = %d", op, len(adv), len(lengths))
		}
		total := 0
		for i, l := range lengths {
			if l < 0 {
				return Result{}, fmt.Errorf("mirrordescent: %s: lengths[%d] = %d", op, i, l)
			}
			total += l
		}
		if total != n {
			return Result{}, fmt.Errorf("mirrordescent: %s: lengths sum to %d but len(newLP) = %d", op, total, n)
		}
	}
	if n == 0 {
		return Result{}, fmt.Errorf("mirrordescent: %s: empty batch", op)
	}
	for i, a := range adv {
		if math.IsNaN(a) || math.IsInf(a, 0) {
			return Result{}, fmt.Errorf("mirrordescent: %s: adv[%d] = %v", op, i, a)
		}
	}
	// Pass 1: validate and reduce, writing nothing.
	var gain, kl, ratio, maxLR float64
	it := items{lengths: lengths}
	for j := range n {
		seq := it.seq(j)
		nl, ol := float64(newLP[j]), float64(oldLP[j])
		if math.IsNaN(nl) || math.IsInf(nl, 0) {
			return Result{}, fmt.Errorf("mirrordescent: %s: newLP[%d]%s = %v", op, j, it.where(j, seq), nl)
		}
		if math.IsNaN(ol) || math.IsInf(ol, 0) {
			return Result{}, fmt.Errorf("mirrordescent: %s: oldLP[%d]%s = %v", op, j, it.where(j, seq), ol)
		}
		lr := nl - ol
		if lr > LogRatioLimit {
			return Result{}, fmt.Errorf("mirrordescent: %s: log-ratio newLP[%d] − oldLP[%d]%s = %v exceeds %v", op, j, j, it.where(j, seq), lr, float64(LogRatioLimit))
		}
		rho := math.Exp(lr)
		gain += rho * adv[seq]
		kl += rho*lr - math.Expm1(lr)
		ratio += rho
		maxLR = max(maxLR, math.Abs(lr))
	}
	inv := 1 / float64(n)
	r := Result{Gain: gain * inv, KL: kl * inv, MeanRatio: ratio * inv, MaxLogRatio: maxLR}
	r.Loss = -r.Gain + r.KL/t
	if math.IsInf(r.Loss, 0) || math.IsNaN(r.Loss) {
		return Result{}, fmt.Errorf("mirrordescent: %s: loss overflows (gain %v, KL %v, t %v)", op, r.Gain, r.KL, t)
	}
	if grad == nil {
		return r, nil
	}
	it = items{lengths: lengths}
	for j := range n {
		seq := it.seq(j)
		lr := float64(newLP[j]) - float64(oldLP[j])
		rho := math.Exp(lr)
		grad[j] = F((-rho*adv[seq] + rho*lr/t) * inv)
	}
	return r, nil
}

// items walks items j = 0, 1, … in order and tells which sequence each
// belongs to: itself when lengths is nil, else by the running lengths.
type items struct {
	lengths  []int
	cur, end int
}

func (it *items) seq(j int) int {
	if it.lengths == nil {
		return j
	}
	for j >= it.end {
		it.end += it.lengths[it.cur]
		it.cur++
	}
	return it.cur - 1
}

func (it *items) where(j, seq int) string {
	if it.lengths == nil {
		return ""
	}
	return fmt.Sprintf(" (token %d of sequence %d)", j-(it.end-it.lengths[seq]), seq)
}

// Policy is a parametric policy seen through one batch of N sampled
// responses, for MDPO's inner loop. Any model fits: LogProbs runs the
// forward pass, Step the backward pass and an optimizer step. Both run a
// model, which can take long: they get the caller's context and should
// return its error promptly once it is cancelled.
type Policy interface {
	// LogProbs writes the current summed log-prob of each of the batch's
	// N responses to dst (len N).
	LogProbs(ctx context.Context, dst []float64) error
	// Step backpropagates grad = dLoss/dLogProbs (len N) through the model
	// and applies one optimizer step.
	Step(ctx context.Context, grad []float64) error
}

// MDPO approximately solves one MDPO iteration with m gradient steps on
// the same batch (Tomar et al. 2020, on-policy MDPO): each step evaluates
// Surrogate at the policy's current log-probs against oldLP (the log-probs
// under π_k that sampled the batch) and hands the gradient to pol.Step.
// It returns the m results, the first one at θ = θ_k. The context is
// checked before every step. On an error (or cancellation) it returns the
// results of the steps already taken, which the policy keeps, and the
// context's error (wrapped, if the policy returned it) for errors.Is.
func MDPO(ctx context.Context, pol Policy, oldLP, adv []float64, t float64, m int) ([]Result, error) {
	if m < 1 {
		return nil, fmt.Errorf("mirrordescent: MDPO: inner steps m = %d, need at least 1", m)
	}
	n := len(oldLP)
	lp := make([]float64, n)
	grad := make([]float64, n)
	res := make([]Result, 0, m)
	for i := range m {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if err := pol.LogProbs(ctx, lp); err != nil {
			return res, fmt.Errorf("mirrordescent: MDPO: inner step %d: log-probs: %w", i, err)
		}
		r, err := Surrogate(grad, lp, oldLP, adv, t)
		if err != nil {
			return res, fmt.Errorf("mirrordescent: MDPO: inner step %d: %w", i, err)
		}
		if err := pol.Step(ctx, grad); err != nil {
			return res, fmt.Errorf("mirrordescent: MDPO: inner step %d: policy step: %w", i, err)
		}
		res = append(res, r)
	}
	return res, nil
}

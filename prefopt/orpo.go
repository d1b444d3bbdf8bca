package prefopt

import (
	"fmt"
	"math"
)

// ORPO is odds-ratio preference optimization (Hong et al. 2024, "ORPO:
// Monolithic Preference Optimization without Reference Model"): a
// reference-free loss that adds to the supervised NLL of the chosen
// response a penalty on the odds ratio of chosen over rejected. With
// length-averaged log-probs a = log π(y)/|y| and odds(y) = p/(1−p),
// p = e^a (eqs. 4 and 7; TRL's ORPOTrainer.odds_ratio_loss),
//
//	log OR = (a_c − a_r) − (log(1 − e^a_c) − log(1 − e^a_r)),
//	L = NLL − β·mean_i logσ(log OR_i),   NLL = −Σ_i log π(y_c,i) / Σ_i |y_c,i|.
//
// β is the paper's λ, TRL's beta (default 0.1). log(1 − e^a) is computed
// as log1p(−e^a) below −ln 2 and log(−expm1(a)) above, so a response the
// model already finds near certain (a → 0⁻) keeps its precision; a = 0
// exactly (odds of ∞) is an error naming the pair. NLL here runs over the
// chosen completion tokens, the paper's L_SFT; TRL's experimental trainer
// also counts the prompt tokens. Rewards in Stats are β·a, as TRL logs
// them, and LogPChosen/LogPRejected the averaged log-probs; NLL,
// LogOddsRatio and LogOddsChosen are TRL's nll_loss, log_odds_ratio and
// log_odds_chosen. It needs ChosenLen and RejectedLen. Beta > 0.
type ORPO struct{ Beta float64 }

// log1mexp returns log(1 − e^x) for x < 0, accurate at both ends
// (Mächler 2012, "Accurately Computing log(1 − exp(−|a|))").
func log1mexp(x float64) float64 {
	if x < -math.Ln2 {
		return math.Log1p(-math.Exp(x))
	}
	return math.Log(-math.Expm1(x))
}

// Loss implements Objective.
func (o ORPO) Loss(b Batch) (Result, error) {
	const op = "ORPO"
	if err := checkBeta(op, "Beta", o.Beta); err != nil {
		return Result{}, err
	}
	n, err := check(op, b, need{chosenLen: true, rejectedLen: true})
	if err != nil {
		return Result{}, err
	}
	var sum float64
	var tokens int
	for i := range n {
		for _, s := range []struct {
			name string
			v    float64
		}{{"PolicyChosen", b.PolicyChosen[i]}, {"PolicyRejected", b.PolicyRejected[i]}} {
			if !(s.v < 0) {
				return Result{}, fmt.Errorf("prefopt: %s: %s[%d] = %v, need a log-prob < 0 (the odds of a certain response are infinite)", op, s.name, i, s.v)
			}
		}
		sum += b.PolicyChosen[i]
		tokens += b.ChosenLen[i]
	}
	nll := -sum / float64(tokens)
	r := newResult(n)
	var loss float64
	fn := float64(n)
	for i := range n {
		lc, lr := float64(b.ChosenLen[i]), float64(b.RejectedLen[i])
		ac, ar := b.PolicyChosen[i]/lc, b.PolicyRejected[i]/lr
		lo := (ac - ar) - (log1mexp(ac) - log1mexp(ar))
		ls := logSigmoid(lo)
		loss -= o.Beta * ls
		// d log OR/da_c = 1/(1 − e^a_c), d log OR/da_r = −1/(1 − e^a_r).
		g := -o.Beta * sigmoid(-lo) / fn
		r.GradChosen[i] = g/(-math.Expm1(ac))/lc - 1/float64(tokens)
		r.GradRejected[i] = -g / (-math.Expm1(ar)) / lr
		r.Stats.add(o.Beta*ac, o.Beta*ar, ac, ar)
		r.Stats.LogOddsRatio += ls
		r.Stats.LogOddsChosen += lo
	}
	r.Stats.LogOddsRatio /= fn
	r.Stats.LogOddsChosen /= fn
	r, err = r.finish(op, loss+nll*fn, n)
	if err != nil {
		return Result{}, err
	}
	r.Stats.NLL = nll
	return r, nil
}

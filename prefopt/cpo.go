package prefopt

import (
	"fmt"
	"math"
)

// CPO is contrastive preference optimization (Xu et al. 2024, "Contrastive
// Preference Optimization: Pushing the Boundaries of LLM Performance in
// Machine Translation", eq. 3; TRL's experimental CPOTrainer): DPO's
// logistic loss with the reference dropped, plus a behaviour-cloning NLL
// on the chosen responses,
//
//	L = mean_i [−(1−ε)·logσ(z_i) − ε·logσ(−z_i)] + α·NLL,   z = β·(log π(y_c) − log π(y_r)),
//
// with NLL = −Σ_i log π(y_c,i) / Σ_i |y_c,i| over the chosen completion
// tokens (TRL's cross-entropy also counts the prompt). α is TRL's
// cpo_alpha, 1 in the paper and TRL's default; 0 drops the NLL (and the
// need for ChosenLen).
//
// With SimPO set it is TRL's CPO-SimPO (loss_type "simpo"): log-probs are
// averaged over the completion and the margin γ (simpo_gamma) is
// subtracted, z = β·(log π(y_c)/|y_c| − log π(y_r)/|y_r|) − γ; with α = 0
// and ε = 0 that is SimPO itself.
//
// Rewards in Stats are β times the log-probs the loss uses (summed, or
// averaged under SimPO), as TRL logs them. Beta > 0, 0 ≤ ε < 0.5, α ≥ 0,
// Gamma finite.
type CPO struct {
	Beta, LabelSmoothing float64
	Alpha                float64
	SimPO                bool
	Gamma                float64
}

// Loss implements Objective.
func (o CPO) Loss(b Batch) (Result, error) {
	const op = "CPO"
	if err := checkBeta(op, "Beta", o.Beta); err != nil {
		return Result{}, err
	}
	if err := checkSmoothing(op, o.LabelSmoothing); err != nil {
		return Result{}, err
	}
	if !(o.Alpha >= 0) || math.IsInf(o.Alpha, 0) {
		return Result{}, fmt.Errorf("prefopt: %s: Alpha = %v, need a finite value ≥ 0", op, o.Alpha)
	}
	if !finite(o.Gamma) || (o.Gamma != 0 && !o.SimPO) {
		return Result{}, fmt.Errorf("prefopt: %s: Gamma = %v, need a finite value, and 0 unless SimPO is set", op, o.Gamma)
	}
	n, err := check(op, b, need{chosenLen: o.SimPO || o.Alpha > 0, rejectedLen: o.SimPO})
	if err != nil {
		return Result{}, err
	}
	eps, beta := o.LabelSmoothing, o.Beta
	r := newResult(n)
	var loss, sum float64
	var tokens int
	fn := float64(n)
	for i := range n {
		lc, lr := 1.0, 1.0
		if o.SimPO {
			lc, lr = float64(b.ChosenLen[i]), float64(b.RejectedLen[i])
		}
		ac, ar := b.PolicyChosen[i]/lc, b.PolicyRejected[i]/lr
		z := beta*(ac-ar) - o.Gamma
		loss += -(1-eps)*logSigmoid(z) - eps*logSigmoid(-z)
		g := beta * (-(1-eps)*sigmoid(-z) + eps*sigmoid(z)) / fn
		r.GradChosen[i] = g / lc
		r.GradRejected[i] = -g / lr
		r.Stats.add(beta*ac, beta*ar, ac, ar)
		if o.Alpha > 0 {
			sum += b.PolicyChosen[i]
			tokens += b.ChosenLen[i]
		}
	}
	var nll float64
	if o.Alpha > 0 {
		nll = -sum / float64(tokens)
		for i := range n {
			r.GradChosen[i] -= o.Alpha / float64(tokens)
		}
	}
	r, err = r.finish(op, loss+o.Alpha*nll*fn, n)
	if err != nil {
		return Result{}, err
	}
	r.Stats.NLL = nll
	return r, nil
}

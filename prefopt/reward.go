package prefopt

import (
	"fmt"
	"math"

	"github.com/posttrain/posttrain/tensor"
)

// Level is how strongly a labeler preferred the chosen response, AFM's
// four-point scale. The zero value, Unlabeled, means no level was given.
//
// In JSONL the levels are the strings "significantly_better", "better",
// "slightly_better" and "negligibly_better" (see MarshalText).
type Level uint8

const (
	Unlabeled           Level = iota // no level given
	SignificantlyBetter              // p = 0.95
	Better                           // p = 0.85
	SlightlyBetter                   // p = 0.75
	NegligiblyBetter                 // p = 0.65
)

var levelNames = [...]string{"", "significantly_better", "better", "slightly_better", "negligibly_better"}
var levelProbs = [...]float64{0, 0.95, 0.85, 0.75, 0.65}

// Prob returns the soft label p_ℓ, the probability that the chosen response
// is preferred, that AFM's ranking loss assigns to the level; 0 for
// Unlabeled or an unknown level.
func (l Level) Prob() float64 {
	if int(l) < len(levelProbs) {
		return levelProbs[l]
	}
	return 0
}

// Valid reports whether l is one of the four labeled levels.
func (l Level) Valid() bool { return l >= SignificantlyBetter && l <= NegligiblyBetter }

// String returns the level's JSONL name, "" for Unlabeled.
func (l Level) String() string {
	if int(l) < len(levelNames) {
		return levelNames[l]
	}
	return fmt.Sprintf("Level(%d)", uint8(l))
}

// MarshalText encodes a level as its name; Unlabeled encodes as "".
func (l Level) MarshalText() ([]byte, error) {
	if l != Unlabeled && !l.Valid() {
		return nil, fmt.Errorf("prefopt: invalid Level(%d)", uint8(l))
	}
	return []byte(levelNames[l]), nil
}

// UnmarshalText decodes a level name; "" decodes as Unlabeled.
func (l *Level) UnmarshalText(b []byte) error {
	for i, s := range levelNames {
		if string(b) == s {
			*l = Level(i)
			return nil
		}
	}
	return fmt.Errorf("unknown level %q (want significantly_better, better, slightly_better or negligibly_better)", b)
}

// BradleyTerry is the pairwise reward-model loss −logσ(r_c − r_r − m),
// averaged over pairs, with an optional per-pair margin m (Llama 2 uses a
// larger margin for more distinct pairs); margin nil means m = 0. The
// Result's gradients are with respect to the rewards r_c and r_r; its
// Stats hold the mean rewards, margin and accuracy.
func BradleyTerry(chosen, rejected, margin []float64) (Result, error) {
	const op = "BradleyTerry"
	n, err := checkRewards(op, chosen, rejected)
	if err != nil {
		return Result{}, err
	}
	if margin != nil {
		if len(margin) != n {
			return Result{}, fmt.Errorf("prefopt: %s: ragged batch: margin has %d entries, chosen %d", op, len(margin), n)
		}
		for i, m := range margin {
			if !finite(m) {
				return Result{}, fmt.Errorf("prefopt: %s: margin[%d] is %v", op, i, m)
			}
		}
	}
	r := newResult(n)
	var loss float64
	for i := range n {
		z := chosen[i] - rejected[i]
		if margin != nil {
			z -= margin[i]
		}
		loss -= logSigmoid(z)
		g := -sigmoid(-z) / float64(n)
		r.GradChosen[i], r.GradRejected[i] = g, -g
		r.Stats.addReward(chosen[i], rejected[i])
	}
	return r.finish(op, loss, n)
}

// SoftRanking is AFM's soft-label ranking loss for reward models: each pair
// carries a preference level ℓ whose soft label p_ℓ is the target
// probability that the chosen response wins,
//
//	ℓ = −p_ℓ·logσ(r_c − r_r) − (1−p_ℓ)·logσ(r_r − r_c),
//
// so ∂ℓ/∂(r_c − r_r) = σ(r_c − r_r) − p_ℓ: the reward gap is regressed to
// logit(p_ℓ) rather than pushed apart without bound. Every pair needs a
// labeled level. The mean over pairs is returned with gradients with
// respect to the rewards.
func SoftRanking(chosen, rejected []float64, levels []Level) (Result, error) {
	const op = "SoftRanking"
	n, err := checkRewards(op, chosen, rejected)
	if err != nil {
		return Result{}, err
	}
	if len(levels) != n {
		return Result{}, fmt.Errorf("prefopt: %s: ragged batch: levels has %d entries, chosen %d", op, len(levels), n)
	}
	for i, l := range levels {
		if !l.Valid() {
			return Result{}, fmt.Errorf("prefopt: %s: levels[%d] = %v is not one of the four preference levels", op, i, l)
		}
	}
	r := newResult(n)
	var loss float64
	for i := range n {
		p := levels[i].Prob()
		z := chosen[i] - rejected[i]
		loss += -p*logSigmoid(z) - (1-p)*logSigmoid(-z)
		g := (sigmoid(z) - p) / float64(n)
		r.GradChosen[i], r.GradRejected[i] = g, -g
		r.Stats.addReward(chosen[i], rejected[i])
	}
	return r.finish(op, loss, n)
}

func checkRewards(op string, chosen, rejected []float64) (int, error) {
	n := len(chosen)
	if n == 0 {
		return 0, fmt.Errorf("prefopt: %s: empty batch", op)
	}
	if len(rejected) != n {
		return 0, fmt.Errorf("prefopt: %s: ragged batch: rejected has %d entries, chosen %d", op, len(rejected), n)
	}
	for i := range n {
		if !finite(chosen[i]) {
			return 0, fmt.Errorf("prefopt: %s: chosen[%d] is %v", op, i, chosen[i])
		}
		if !finite(rejected[i]) {
			return 0, fmt.Errorf("prefopt: %s: rejected[%d] is %v", op, i, rejected[i])
		}
	}
	return n, nil
}

func (s *Stats) addReward(rc, rr float64) {
	s.RewardsChosen += rc
	s.RewardsRejected += rr
	s.Margin += rc - rr
	if rc > rr {
		s.Accuracy++
	}
}

// Grading is AFM's single-sided grading regularizer for reward models: each
// response is also graded on its own, per aspect (instruction following,
// verbosity, truthfulness, harmlessness), and a classification head over
// the grade classes is trained with cross-entropy next to the ranking loss.
//
// logits is [M, C]: one row per (response, aspect) grade with C grade
// classes; labels[i] is row i's class, or negative to skip the row (an
// aspect not graded for that response). The result is λ times the mean
// cross-entropy over counted rows, exact for logits of any finite
// magnitude. grad (nil allowed, may be logits itself) receives
// dResult/dlogits = λ·(softmax − onehot)/count, zero on skipped rows.
//
// Errors, which leave grad untouched: nil logits, bad shapes or labels,
// grad overlapping the logits other than by being them,
// every label negative, a counted row holding NaN or +Inf or −Inf at its
// label's logit (probability 0, an infinite loss; −Inf elsewhere masks a
// class), λ negative or not finite, and a λ so large that the loss or the
// float32 gradient scale λ/count overflows.
func Grading(grad, logits *tensor.Dense, labels []int32, lambda float64) (float64, error) {
	const op = "Grading"
	if logits == nil || logits.Dims() != 2 {
		var shape []int
		if logits != nil {
			shape = logits.Shape()
		}
		return 0, fmt.Errorf("prefopt: %s: logits must be [M, C], have shape %v", op, shape)
	}
	m, c := logits.Rows(), logits.Cols()
	if len(labels) != m {
		return 0, fmt.Errorf("prefopt: %s: %d labels for %d rows of logits", op, len(labels), m)
	}
	if grad != nil && !grad.SameShape(logits) {
		return 0, fmt.Errorf("prefopt: %s: grad shape %v, logits %v", op, grad.Shape(), logits.Shape())
	}
	if err := checkInPlace(op, grad, logits); err != nil {
		return 0, err
	}
	if !(lambda >= 0) || math.IsInf(lambda, 0) {
		return 0, fmt.Errorf("prefopt: %s: lambda = %v, need a finite value ≥ 0", op, lambda)
	}
	var sum float64
	count := 0
	for i, y := range labels {
		if y < 0 {
			continue
		}
		if int(y) >= c {
			return 0, fmt.Errorf("prefopt: %s: labels[%d] = %d, out of range [0, %d)", op, i, y, c)
		}
		lp, _, ok := tensor.LogSoftmaxAt(logits.Row(i), int(y))
		if !ok {
			return 0, fmt.Errorf("prefopt: %s: row %d of logits holds NaN or +Inf, or −Inf at its label %d", op, i, y)
		}
		sum -= lp
		count++
	}
	if count == 0 {
		return 0, fmt.Errorf("prefopt: %s: every label is negative, no row to count", op)
	}
	scale := lambda / float64(count)
	loss := scale * sum
	if math.IsInf(loss, 0) || grad != nil && scale > math.MaxFloat32 {
		return 0, fmt.Errorf("prefopt: %s: lambda = %v overflows: loss %v, gradient scale λ/count = %v (float32 holds 3.4e38)", op, lambda, loss, scale)
	}
	if grad != nil {
		s32 := float32(scale)
		for i, y := range labels {
			g := grad.Row(i)
			if y < 0 {
				clear(g)
				continue
			}
			tensor.ScaledSoftmax(g, s32, logits.Row(i))
			g[y] -= s32
		}
	}
	return loss, nil
}

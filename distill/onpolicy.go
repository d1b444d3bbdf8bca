package distill

import (
	"fmt"
	"math/rand/v2"

	"github.com/posttrain/posttrain/tensor"
)

// GKD configures on-policy distillation: generalized knowledge
// distillation (Agarwal et al. 2024, "On-Policy Distillation of Language
// Models: Learning from Self-Generated Mistakes"; TRL's GKDTrainer), of
// which MiniLLM's reverse-KL distillation (Gu et al. 2024) is the β = 1
// case.
//
// Off-policy distillation trains the student on fixed sequences (the
// dataset's, or the teacher's); at inference the student conditions on its
// own, possibly wrong, prefixes, a train–test mismatch that compounds over
// long outputs. GKD closes it: at a fraction λ of the steps the student
// generates the completions itself, the teacher scores those very tokens
// (a forward pass over the student's sequences), and the student is
// trained towards the teacher's next-token distribution at every position
// of them. The other steps use the dataset's completions. Either way the
// per-token loss is the generalized Jensen–Shannon divergence
// (GeneralizedJSD) between the student's and teacher's next-token
// distributions: β = 1 is the mode-seeking reverse KL(p_S ‖ p_T) that suits
// on-policy data, β = 0 the forward KL of classic distillation.
//
// The generation is the caller's (a recipe's trainer); GKD supplies the
// coin (OnPolicy) and the loss (Loss).
type GKD struct {
	Lambda      float64 // fraction λ of steps on student-generated sequences, in [0, 1] (TRL's lmbda, default 0.5)
	Beta        float64 // GeneralizedJSD's β in [0, 1] (TRL's default 0.5)
	Temperature float64 // the loss's softmax temperature T > 0 (TRL's loss uses 1; its temperature 0.9 is for sampling)
	Seed        uint64  // seeds OnPolicy
}

// OnPolicy reports whether the given step trains on sequences the student
// generates (with probability Lambda, as TRL's random.random() <= lmbda).
// The draw depends only on Seed and step, so a resumed run, or any number
// of workers, makes the same choices. Lambda 0 never and 1 always chooses
// on-policy.
func (g GKD) OnPolicy(step int) bool {
	r := rand.New(rand.NewPCG(g.Seed, uint64(step)))
	return r.Float64() < g.Lambda
}

// Loss returns the GKD loss of one batch: the generalized JSD between the
// student's and the teacher's next-token distributions at the rows whose
// label is not negative (the completion tokens; PyTorch's −100 marks the
// prompt and padding), averaged over those rows, as TRL's
// generalized_jsd_loss with its labels mask and batchmean reduction.
// student and teacher are [N, V] logits over the same N positions — on an
// on-policy step, of the student's own sequences, the teacher scoring the
// tokens the student chose. Only the sign of a label is read.
//
// When grad is not nil it receives dLoss/dstudent; ignored rows get zero
// gradient. grad may be student itself. If every row is ignored the loss
// is 0 with a zero gradient, so a step whose completions were all
// truncated away changes nothing. Errors as for GeneralizedJSD, plus a
// label count that is not N and Lambda outside [0, 1]; the inputs are all
// checked before grad is first written.
func (g GKD) Loss(grad, student, teacher *tensor.Dense, labels []int32) (float64, error) {
	const op = "GKD"
	if err := checkUnit(op, "Lambda", g.Lambda); err != nil {
		return 0, err
	}
	if err := checkUnit(op, "beta", g.Beta); err != nil {
		return 0, err
	}
	if err := checkTemperature(op, g.Temperature); err != nil {
		return 0, err
	}
	n, v, err := dims(op, "student", student)
	if err != nil {
		return 0, err
	}
	if err := checkSame(op, "teacher", teacher, n, v); err != nil {
		return 0, err
	}
	if err := checkGrad(op, grad, n, v); err != nil {
		return 0, err
	}
	if len(labels) != n {
		return 0, fmt.Errorf("distill: %s: %d labels for %d rows", op, len(labels), n)
	}
	if grad != nil && n > 0 && &grad.Data()[0] == &teacher.Data()[0] {
		return 0, fmt.Errorf("distill: %s: grad aliases teacher", op)
	}
	if err := checkFinite(op, "student", student, "teacher", teacher); err != nil {
		return 0, err
	}
	count := 0
	for _, y := range labels {
		if y >= 0 {
			count++
		}
	}
	if count == 0 {
		if grad != nil {
			grad.Zero()
		}
		return 0, nil
	}
	// Runs of counted rows go to GeneralizedJSD as row views: its mean over
	// a run, weighted by the run's share of the counted rows, sums to the
	// mean over all of them, and its gradient scales the same way.
	sd, td := student.Data(), teacher.Data()
	var gd []float32
	if grad != nil {
		gd = grad.Data()
	}
	var sum float64
	for lo := 0; lo < n; {
		if labels[lo] < 0 {
			if gd != nil {
				clear(gd[lo*v : (lo+1)*v])
			}
			lo++
			continue
		}
		hi := lo + 1
		for hi < n && labels[hi] >= 0 {
			hi++
		}
		rows := hi - lo
		var gv *tensor.Dense
		if gd != nil {
			gv = tensor.FromSlice(gd[lo*v:hi*v], rows, v)
		}
		l, err := GeneralizedJSD(gv, tensor.FromSlice(sd[lo*v:hi*v], rows, v), tensor.FromSlice(td[lo*v:hi*v], rows, v), g.Beta, g.Temperature)
		if err != nil {
			return 0, fmt.Errorf("distill: %s: rows %d–%d: %w", op, lo, hi-1, err)
		}
		share := float64(rows) / float64(count)
		sum += l * share
		if gd != nil && rows != count {
			tensor.Scale(gv.Data(), float32(share), gv.Data())
		}
		lo = hi
	}
	return sum, nil
}

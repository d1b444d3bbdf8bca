package mirrordescent_test

import (
	"context"
	"fmt"
	"math"

	"github.com/posttrain/posttrain/mirrordescent"
)

func ExampleEntropicStep() {
	x := []float64{0.25, 0.25, 0.5}
	// The second coordinate had the largest loss: it loses mass. A huge
	// gradient would not overflow: the step runs in log space.
	if err := mirrordescent.EntropicStep(x, []float64{0, 1, 0}, math.Log(2)); err != nil {
		panic(err)
	}
	fmt.Printf("%.4f\n", x)
	// Output: [0.2857 0.1429 0.5714]
}

func ExampleProjectSimplex() {
	x := []float64{0.6, 0.8, -0.2}
	mirrordescent.ProjectSimplex(x)
	fmt.Printf("%.2f\n", x)
	// Output: [0.40 0.60 0.00]
}

func ExampleTabularMDPO() {
	// π_{k+1} ∝ π_k·exp(t·A), on log-probs.
	logp := []float64{math.Log(0.5), math.Log(0.5)}
	if err := mirrordescent.TabularMDPO(logp, []float64{math.Log(3), 0}, 1); err != nil {
		panic(err)
	}
	fmt.Printf("%.2f %.2f\n", math.Exp(logp[0]), math.Exp(logp[1]))
	// Output: 0.75 0.25
}

func ExampleSurrogate() {
	// At θ = θ_k every ratio is 1: the KL term is 0 and its gradient too,
	// so the gradient is the policy gradient −Â/N.
	old := []float64{-3, -5}
	grad := make([]float64, 2)
	r, err := mirrordescent.Surrogate(grad, old, old, []float64{1, -1}, 1)
	if err != nil {
		panic(err)
	}
	fmt.Println(r.Loss, r.KL, grad)
	// Output: 0 0 [-0.5 0.5]
}

func ExampleMDLOO_Advantages() {
	o := mirrordescent.DefaultMDLOO()
	o.K = 2
	// One prompt, two responses: scores 1 and 0, the first drifted from
	// the reference by 2 nats, which β = 0.05 charges 0.1 for.
	adv, shaped, err := o.Advantages([]float64{1, 0}, []float64{-3, -4}, []float64{-5, -4})
	if err != nil {
		panic(err)
	}
	fmt.Printf("shaped %.2f, advantages %.2f\n", shaped, adv)
	// Output: shaped [0.90 0.00], advantages [0.90 -0.90]
}

// logits is a tabular softmax policy over three responses, seen through
// a batch of sampled responses, trained by gradient descent.
type logits struct {
	theta []float64
	batch []int
	lr    float64
}

func (p *logits) logProbs() []float64 {
	m := math.Inf(-1)
	for _, v := range p.theta {
		m = math.Max(m, v)
	}
	var s float64
	for _, v := range p.theta {
		s += math.Exp(v - m)
	}
	out := make([]float64, len(p.theta))
	for i, v := range p.theta {
		out[i] = v - m - math.Log(s)
	}
	return out
}

func (p *logits) LogProbs(_ context.Context, dst []float64) error {
	lp := p.logProbs()
	for i, a := range p.batch {
		dst[i] = lp[a]
	}
	return nil
}

func (p *logits) Step(_ context.Context, grad []float64) error {
	lp := p.logProbs()
	for i, a := range p.batch {
		for j := range p.theta {
			d := -math.Exp(lp[j])
			if j == a {
				d++
			}
			p.theta[j] -= p.lr * grad[i] * d
		}
	}
	return nil
}

func ExampleMDLOO_Update() {
	o := mirrordescent.DefaultMDLOO()
	o.K = 3
	pol := &logits{theta: []float64{0, 0, 0}, lr: 1, batch: []int{0, 1, 2}} // π_k = π_ref = uniform
	old := make([]float64, 3)
	_ = pol.LogProbs(context.Background(), old)
	// One prompt, three sampled responses scored 1, 0 and 0.
	res, err := o.Update(context.Background(), 1, pol, []float64{1, 0, 0}, old, old)
	if err != nil {
		panic(err)
	}
	// Leave-one-out advantages are [1, −0.5, −0.5]; the exact MDPO step
	// would give π ∝ exp(Â) = [0.691 0.154 0.154]; four gradient steps on
	// the surrogate get most of the way there.
	lp := pol.logProbs()
	fmt.Printf("%d inner steps, π = [%.3f %.3f %.3f]\n", len(res), math.Exp(lp[0]), math.Exp(lp[1]), math.Exp(lp[2]))
	// Output: 4 inner steps, π = [0.635 0.182 0.182]
}

// Command mdloo compares AFM's MDLOO with PPO-clip and plain RLOO on a
// synthetic contextual bandit: a few prompt types, a few dozen responses
// each, true rewards in [0, 1], a noisy reward model, and a reference
// policy that prefers the wrong responses. All three learners see the same
// number of samples per iteration (prompts × K), the same KL-shaped
// reward r − β·(log π_old − log π_ref), the same leave-one-out advantages
// (prefopt.LeaveOneOut), and the same tabular softmax policy trained by
// gradient descent on its logits; they differ only in the policy loss:
//
//	MDLOO       m steps on −mean(ρ·Â) + (1/t)·KL̂(π_θ‖π_old), t = 1
//	MDLOO t_k↓  the same with MDPO's annealed t_k = 1 − (k−1)/iters
//	PPO-clip    m steps on −mean min(ρ·Â, clip(ρ, 1±ε)·Â)   (private here)
//	RLOO        1 step on −mean(Â·log π_θ)                    (REINFORCE)
//
// It prints, per learner and learning rate, the expected true reward at
// the end (the mean over seeds with a 95% Student-t confidence interval,
// from gonum's stat and distuv), how many samples it took to close 80%
// of the gap between π_ref and the KL-regularized optimum
// π* ∝ π_ref·exp(r/β), how often the expected reward fell from one
// iteration to the next, and the final KL(π‖π_ref).
//
// What to expect: with plain gradient descent on the logits, the three
// learners trade places as the learning rate grows. RLOO takes one step
// per batch, so it is slowest at small rates. MDLOO and PPO-clip take m
// steps; MDLOO's proximity term (1/t)·KL̂ has curvature about 1/t in each
// log-ratio, so its inner loop is stable only while lr·(n_s/N)/t stays
// below about 2 (N samples per batch, n_s of them for one prompt type),
// and annealing t_k towards 0 tightens that bound as training goes on;
// PPO-clip instead zeroes the gradient of any sample whose ratio left
// [1−ε, 1+ε], so no rate here makes it diverge. Run it and read the
// table: these are measurements on one toy problem, not a ranking.
//
// The PPO-clip loss here is a few lines private to this example, written
// for the comparison; the library's PPO-clip lives in package prefopt.
//
// Usage:
//
//	go run ./examples/mdloo [-seeds 10] [-iters 100] [-prompts 16]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"text/tabwriter"

	"gonum.org/v1/gonum/stat"
	"gonum.org/v1/gonum/stat/distuv"

	"github.com/posttrain/posttrain/mirrordescent"
)

type config struct {
	Seeds, Iters, Prompts int       // runs, iterations per run, prompts per iteration
	Types, Responses      int       // prompt types and responses per prompt
	Noise                 float64   // reward-model noise (std)
	LRs                   []float64 // learning rates of the logits' gradient descent
}

func main() {
	cfg := config{Types: 8, Responses: 32, Noise: 0.1, LRs: []float64{4, 16, 64}}
	flag.IntVar(&cfg.Seeds, "seeds", 10, "independent runs per learner")
	flag.IntVar(&cfg.Iters, "iters", 100, "iterations per run")
	flag.IntVar(&cfg.Prompts, "prompts", 16, "prompts per iteration (each gets K responses)")
	quick := flag.Bool("quick", false, "a few seconds' run with fewer seeds and iterations (for CI)")
	flag.Parse()
	if *quick {
		cfg.Seeds, cfg.Iters = 2, 20
	}
	if err := run(os.Stdout, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "mdloo:", err)
		os.Exit(1)
	}
}

// env is the bandit: true rewards and reference log-probs per prompt type.
type env struct {
	r, ref [][]float64
}

func newEnv(rng *rand.Rand, types, responses int) *env {
	e := &env{}
	for range types {
		r := make([]float64, responses)
		ref := make([]float64, responses)
		for a := range r {
			r[a] = rng.Float64()
			// The reference prefers low-reward responses: there is
			// something to learn, and drifting from π_ref costs KL.
			ref[a] = -2*r[a] + rng.NormFloat64()
		}
		e.r = append(e.r, r)
		e.ref = append(e.ref, logNormalize(ref))
	}
	return e
}

// policy is a tabular softmax policy per prompt type; batch lists the
// (type, response) pairs of the current batch.
type policy struct {
	theta [][]float64
	batch [][2]int
	lr    float64
}

func (p *policy) logProbs(s int) []float64 { return logNormalize(slices.Clone(p.theta[s])) }

func (p *policy) LogProbs(_ context.Context, dst []float64) error {
	for i, sa := range p.batch {
		dst[i] = p.logProbs(sa[0])[sa[1]]
	}
	return nil
}

// Step applies θ_s ← θ_s − lr·Σ_i g_i·(e_{a_i} − π_s) for the samples i
// of each prompt type s: the chain rule through log π = θ − logΣexp θ.
func (p *policy) Step(_ context.Context, grad []float64) error {
	lps := make([][]float64, len(p.theta))
	for s := range p.theta {
		lps[s] = p.logProbs(s)
	}
	for i, sa := range p.batch {
		s, a := sa[0], sa[1]
		for j := range p.theta[s] {
			d := -math.Exp(lps[s][j])
			if j == a {
				d++
			}
			p.theta[s][j] -= p.lr * grad[i] * d
		}
	}
	return nil
}

type learner int

const (
	mdloo       learner = iota // DefaultMDLOO: constant t = 1
	mdlooLinear                // MDPO's annealed t_k = 1 − (k−1)/iters
	ppoClip
	rloo
)

func (l learner) String() string {
	return [...]string{"MDLOO", "MDLOO t_k↓", "PPO-clip", "RLOO"}[l]
}

// outcome of one run: expected true reward before each iteration and
// after the last, and the final KL to the reference.
type outcome struct {
	curve []float64
	kl    float64
}

func train(ctx context.Context, l learner, e *env, seed uint64, cfg config, lr float64) (outcome, error) {
	o := mirrordescent.DefaultMDLOO()
	rng := rand.New(rand.NewPCG(seed, uint64(l)+1))
	pol := &policy{lr: lr}
	for _, ref := range e.ref {
		pol.theta = append(pol.theta, slices.Clone(ref))
	}
	n := cfg.Prompts * o.K
	scores, oldLP, refLP := make([]float64, n), make([]float64, n), make([]float64, n)
	out := outcome{curve: []float64{expectedReward(pol, e)}}
	for k := 1; k <= cfg.Iters; k++ {
		pol.batch = pol.batch[:0]
		for i := range cfg.Prompts {
			s := rng.IntN(len(e.r))
			lp := pol.logProbs(s)
			for j := range o.K {
				a := sample(rng, lp)
				pol.batch = append(pol.batch, [2]int{s, a})
				idx := i*o.K + j
				scores[idx] = e.r[s][a] + cfg.Noise*rng.NormFloat64()
				oldLP[idx], refLP[idx] = lp[a], e.ref[s][a]
			}
		}
		var err error
		switch l {
		case mdloo:
			_, err = o.Update(ctx, k, pol, scores, oldLP, refLP)
		case mdlooLinear:
			lin := o
			lin.Schedule = mirrordescent.Linear(cfg.Iters)
			_, err = lin.Update(ctx, k, pol, scores, oldLP, refLP)
		case ppoClip:
			err = ppoUpdate(ctx, pol, o, scores, oldLP, refLP)
		case rloo:
			err = rlooUpdate(ctx, pol, o, scores, oldLP, refLP)
		}
		if err != nil {
			return out, err
		}
		out.curve = append(out.curve, expectedReward(pol, e))
	}
	for s := range e.ref {
		out.kl += kl(pol.logProbs(s), e.ref[s]) / float64(len(e.ref))
	}
	return out, nil
}

// ppoUpdate runs m steps of PPO-clip (Schulman et al. 2017) on the same
// shaped rewards and leave-one-out advantages as MDLOO, with ε = 0.2:
// L = −mean min(ρ·Â, clip(ρ, 1−ε, 1+ε)·Â), whose gradient with respect
// to log π_θ is −ρ·Â/N where the unclipped term is the smaller, else 0.
func ppoUpdate(ctx context.Context, pol *policy, o mirrordescent.MDLOO, scores, oldLP, refLP []float64) error {
	const eps = 0.2
	adv, _, err := o.Advantages(scores, oldLP, refLP)
	if err != nil {
		return err
	}
	lp := make([]float64, len(adv))
	grad := make([]float64, len(adv))
	for range o.Steps {
		_ = pol.LogProbs(ctx, lp)
		for i, a := range adv {
			rho := math.Exp(lp[i] - oldLP[i])
			grad[i] = 0
			if rho*a <= min(max(rho, 1-eps), 1+eps)*a {
				grad[i] = -rho * a / float64(len(adv))
			}
		}
		if err := pol.Step(ctx, grad); err != nil {
			return err
		}
	}
	return nil
}

// rlooUpdate takes one REINFORCE step with the leave-one-out baseline
// (Ahmadian et al. 2024): L = −mean(Â·log π_θ), gradient −Â/N.
func rlooUpdate(ctx context.Context, pol *policy, o mirrordescent.MDLOO, scores, oldLP, refLP []float64) error {
	adv, _, err := o.Advantages(scores, oldLP, refLP)
	if err != nil {
		return err
	}
	grad := make([]float64, len(adv))
	for i, a := range adv {
		grad[i] = -a / float64(len(adv))
	}
	return pol.Step(ctx, grad)
}

func run(w io.Writer, cfg config) error {
	beta := mirrordescent.DefaultBeta
	k := mirrordescent.DefaultK
	fmt.Fprintf(w, "contextual bandit: %d prompt types × %d responses, reward-model noise %.2f\n", cfg.Types, cfg.Responses, cfg.Noise)
	fmt.Fprintf(w, "%d prompts × K=%d responses = %d samples per iteration, %d iterations, %d seeds; β=%.2f; MDLOO t=%.0f, m=%d; PPO ε=0.2, m=%d\n\n",
		cfg.Prompts, k, cfg.Prompts*k, cfg.Iters, cfg.Seeds, beta, mirrordescent.DefaultStepSize, mirrordescent.DefaultSteps, mirrordescent.DefaultSteps)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "learner\tlr\tE[r] start\tE[r] final\t± 95% CI\tE[r] π*\tsamples to 80%\truns reached\tdrops/run\tworst drop\tKL(π‖π_ref)\t")
	for _, lr := range cfg.LRs {
		for _, l := range []learner{mdloo, mdlooLinear, ppoClip, rloo} {
			var start, opt, drops, worst, klSum float64
			var reach []int
			finals := make([]float64, 0, cfg.Seeds)
			for seed := range uint64(cfg.Seeds) {
				e := newEnv(rand.New(rand.NewPCG(seed, 0)), cfg.Types, cfg.Responses)
				out, err := train(context.Background(), l, e, seed, cfg, lr)
				if err != nil {
					return fmt.Errorf("%v, lr %v, seed %d: %w", l, lr, seed, err)
				}
				c := out.curve
				ro, rs := optimumReward(e, beta), c[0]
				start += rs
				opt += ro
				finals = append(finals, c[len(c)-1])
				klSum += out.kl
				for i := 1; i < len(c); i++ {
					if d := c[i-1] - c[i]; d > 0 {
						drops++
						worst = max(worst, d)
					}
				}
				first := math.MaxInt // not reached
				for i, v := range c {
					if v >= rs+0.8*(ro-rs) {
						first = i * cfg.Prompts * k
						break
					}
				}
				reach = append(reach, first)
			}
			s := float64(cfg.Seeds)
			mean, ci := meanCI(finals)
			// The median over all runs, unreached runs counting as never.
			slices.Sort(reach)
			samples, reached := "never", 0
			if m := reach[(len(reach)-1)/2]; m != math.MaxInt {
				samples = fmt.Sprint(m)
			}
			for _, r := range reach {
				if r != math.MaxInt {
					reached++
				}
			}
			fmt.Fprintf(tw, "%v\t%g\t%.3f\t%.3f\t%s\t%.3f\t%s\t%d/%d\t%.1f\t%.3f\t%.2f\t\n",
				l, lr, start/s, mean, ci, opt/s, samples, reached, cfg.Seeds, drops/s, worst, klSum/s)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\n± 95% CI: half-width of the Student-t confidence interval of the mean over seeds.")
	fmt.Fprintln(w, "samples to 80%: median over runs of the samples drawn before E[r] closed 80% of the gap")
	fmt.Fprintln(w, "from π_ref to π* (never: the median run did not); drops/run: iterations whose expected true reward fell;\nworst drop: the largest such fall.")
	return nil
}

// optimumReward is E_{π*}[r] averaged over prompt types, π* ∝ π_ref·exp(r/β),
// the maximizer of the KL-regularized objective every learner targets.
// meanCI returns the mean of x and the half-width of its 95% confidence
// interval, t_{0.975, n−1}·s/√n with s the sample standard deviation, as
// text ("—" for fewer than two values).
func meanCI(x []float64) (float64, string) {
	mean, sd := stat.MeanStdDev(x, nil)
	if len(x) < 2 {
		return mean, "—"
	}
	n := float64(len(x))
	t := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: n - 1}.Quantile(0.975)
	return mean, fmt.Sprintf("%.3f", t*sd/math.Sqrt(n))
}

func optimumReward(e *env, beta float64) float64 {
	var s float64
	for t := range e.r {
		lp := make([]float64, len(e.r[t]))
		for a := range lp {
			lp[a] = e.ref[t][a] + e.r[t][a]/beta
		}
		s += expect(logNormalize(lp), e.r[t])
	}
	return s / float64(len(e.r))
}

func expectedReward(p *policy, e *env) float64 {
	var s float64
	for t := range e.r {
		s += expect(p.logProbs(t), e.r[t])
	}
	return s / float64(len(e.r))
}

func expect(lp, r []float64) float64 {
	var s float64
	for a, l := range lp {
		s += math.Exp(l) * r[a]
	}
	return s
}

func kl(p, q []float64) float64 {
	var s float64
	for a := range p {
		s += math.Exp(p[a]) * (p[a] - q[a])
	}
	return s
}

func logNormalize(x []float64) []float64 {
	m := slices.Max(x)
	var s float64
	for _, v := range x {
		s += math.Exp(v - m)
	}
	lse := m + math.Log(s)
	for i := range x {
		x[i] -= lse
	}
	return x
}

func sample(rng *rand.Rand, lp []float64) int {
	u := rng.Float64()
	for a, l := range lp {
		u -= math.Exp(l)
		if u <= 0 {
			return a
		}
	}
	return len(lp) - 1
}

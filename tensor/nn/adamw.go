package nn

import (
	"fmt"
	"math"

	"github.com/posttrain/posttrain/internal/parallel"
	"github.com/posttrain/posttrain/tensor/autograd"
	"github.com/posttrain/posttrain/tensor/internal/simd"
)

// AdamW is Adam with decoupled weight decay (Loshchilov & Hutter 2019),
// with optional clipping of the global gradient norm before the update.
//
// Weight decay applies to parameters of two or more dimensions (the
// matrices); norm gains are not decayed, the usual practice for language
// models.
type AdamW struct {
	LR          float64 // learning rate of the next Step; set it from a schedule
	Beta1       float64
	Beta2       float64
	Eps         float64
	WeightDecay float64
	ClipNorm    float64 // clip the global gradient L2 norm to this; 0 turns clipping off

	params []*autograd.Var
	decay  []bool
	m, v   [][]float32
	step   int
	spans  []span    // the parameters cut into pieces for the workers
	sums   []float64 // GradNorm's partial sums, one per span
}

// span is elements [lo, hi) of parameter k: a piece of an update that one
// worker takes. The cut depends on the parameters' sizes alone.
type span struct{ k, lo, hi int }

// spanLen is the most elements a span holds: big enough that handing it
// out costs little, small enough that two cores share a model evenly.
const spanLen = 1 << 16

// NewAdamW returns an optimizer for params with PyTorch's defaults:
// β = (0.9, 0.999), ε = 1e-8, weight decay 0.01, no clipping.
func NewAdamW(params []Named, lr float64) *AdamW {
	o := &AdamW{LR: lr, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01}
	for _, p := range params {
		n := p.Var.Value.Len()
		o.params = append(o.params, p.Var)
		o.decay = append(o.decay, p.Var.Value.Dims() >= 2)
		o.m = append(o.m, make([]float32, n))
		o.v = append(o.v, make([]float32, n))
		for lo := 0; lo < n; lo += spanLen {
			o.spans = append(o.spans, span{len(o.params) - 1, lo, min(n, lo+spanLen)})
		}
	}
	o.sums = make([]float64, len(o.spans))
	// The moments are fresh pages. The first Step would read each (the
	// kernel maps the shared zero page) and then write it (a copy-on-write
	// fault and a TLB shootdown across the cores), ten times the cost of
	// faulting it by a write: at SmolLM2-135M's 1 GB of moments the first
	// Step took 5 s instead of 0.14 s. Writing them here, on the workers,
	// faults each page once.
	parallel.For(len(o.spans), func(i int) {
		sp := o.spans[i]
		clear(o.m[sp.k][sp.lo:sp.hi])
		clear(o.v[sp.k][sp.lo:sp.hi])
	})
	return o
}

// Steps returns the number of updates taken.
func (o *AdamW) Steps() int { return o.step }

// GradNorm returns the global L2 norm of the parameters' gradients,
// accumulated in float64: per span on the workers, then the spans' sums
// in order, so the result does not depend on the number of workers.
func (o *AdamW) GradNorm() float64 {
	parallel.For(len(o.spans), func(i int) {
		sp := o.spans[i]
		var s float64
		for _, g := range o.params[sp.k].Grad.Data()[sp.lo:sp.hi] {
			s += float64(g) * float64(g)
		}
		o.sums[i] = s
	})
	var s float64
	for _, x := range o.sums {
		s += x
	}
	return math.Sqrt(s)
}

// Step updates every parameter from its gradient and returns the gradient
// norm before clipping. A non-finite gradient norm is an error and leaves
// the parameters and moments untouched. Step does not zero the gradients.
func (o *AdamW) Step() (float64, error) {
	norm := o.GradNorm()
	if math.IsNaN(norm) || math.IsInf(norm, 0) {
		return norm, fmt.Errorf("nn: AdamW step %d: gradient norm is %v", o.step+1, norm)
	}
	clip := 1.0
	if o.ClipNorm > 0 && norm > o.ClipNorm {
		clip = o.ClipNorm / norm
	}
	o.step++
	b1, b2 := o.Beta1, o.Beta2
	c1 := 1 - math.Pow(b1, float64(o.step))
	c2 := 1 - math.Pow(b2, float64(o.step))
	// p ← p − lr·wd·p − lr·m̂/(√v̂ + ε), with m̂ = m/c1, v̂ = v/c2, by
	// the vector kernel, which rounds every operation as its generic twin
	// does (simd.AdamWStep), so the update has the same bits on every
	// tier and architecture.
	fb1, fb2 := float32(b1), float32(b2)
	base := simd.AdamWStep{Clip: float32(clip), B1: fb1, OneMinusB1: 1 - fb1, B2: fb2, OneMinusB2: 1 - fb2,
		Shrink: 1, Step: float32(o.LR / c1), SC2: float32(1 / math.Sqrt(c2)), Eps: float32(o.Eps)}
	decayed := base
	decayed.Shrink = float32(1 - o.LR*o.WeightDecay)
	parallel.For(len(o.spans), func(i int) {
		sp := o.spans[i]
		p := o.params[sp.k]
		s := &base
		if o.decay[sp.k] {
			s = &decayed
		}
		simd.K.AdamW(p.Value.Data()[sp.lo:sp.hi], p.Grad.Data()[sp.lo:sp.hi],
			o.m[sp.k][sp.lo:sp.hi], o.v[sp.k][sp.lo:sp.hi], s)
	})
	return norm, nil
}

// WarmupCosine is the learning rate at step (0-based) of a schedule that
// rises linearly over the first warmup steps (peak·(step+1)/warmup, so
// step warmup−1 reaches peak), then follows a cosine from peak at step
// warmup down to floor at step total, and stays at floor after. It is
// CosineSchedule{Warmup: warmup, Total: total, Peak: peak, Floor: floor}.LR(step),
// kept positional for existing callers; new code names the settings.
func WarmupCosine(step, warmup, total int, peak, floor float64) float64 {
	return CosineSchedule{Warmup: warmup, Total: total, Peak: peak, Floor: floor}.LR(step)
}

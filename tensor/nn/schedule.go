package nn

import "math"

// CosineSchedule is a learning-rate schedule by name: a linear warmup
// over the first Warmup steps (Peak·(step+1)/Warmup, so step Warmup−1
// reaches Peak), then a cosine from Peak at step Warmup down to Floor at
// step Total, and Floor after. It is WarmupCosine's settings as a struct,
// so that Peak and Floor (or Warmup and Total) cannot be swapped
// silently. The zero value is a learning rate of 0 at every step.
//
// A typical loop builds it once:
//
//	sched := nn.CosineSchedule{Warmup: 100, Total: steps, Peak: 3e-4, Floor: 3e-5}
//	for step := range steps {
//		opt.LR = sched.LR(step)
//		…
//	}
type CosineSchedule struct {
	Warmup int     // steps of linear warmup; 0 starts at Peak
	Total  int     // the step at which the cosine reaches Floor
	Peak   float64 // the learning rate at the end of warmup
	Floor  float64 // the learning rate at step Total and after
}

// LR returns the learning rate at step (0-based).
func (s CosineSchedule) LR(step int) float64 {
	switch {
	case step < s.Warmup:
		return s.Peak * float64(step+1) / float64(s.Warmup)
	case step >= s.Total:
		return s.Floor
	}
	p := float64(step-s.Warmup) / float64(max(1, s.Total-s.Warmup))
	return s.Floor + 0.5*(s.Peak-s.Floor)*(1+math.Cos(math.Pi*p))
}

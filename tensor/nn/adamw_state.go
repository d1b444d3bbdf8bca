package nn

import "fmt"

// Moments returns the optimizer's state for a checkpoint: the number of
// steps taken and, per parameter in the order NewAdamW was given them,
// the first and second moments. The slices are the optimizer's own.
func (o *AdamW) Moments() (step int, m, v [][]float32) { return o.step, o.m, o.v }

// SetMoments restores what Moments returned, so that a resumed run takes
// the same updates an uninterrupted one would. It returns an error,
// changing nothing, if the shapes differ from the optimizer's parameters.
func (o *AdamW) SetMoments(step int, m, v [][]float32) error {
	if step < 0 || len(m) != len(o.m) || len(v) != len(o.v) {
		return fmt.Errorf("nn: AdamW.SetMoments: step %d, %d and %d moments for %d parameters", step, len(m), len(v), len(o.m))
	}
	for i := range m {
		if len(m[i]) != len(o.m[i]) || len(v[i]) != len(o.v[i]) {
			return fmt.Errorf("nn: AdamW.SetMoments: parameter %d: moments of %d and %d values, want %d", i, len(m[i]), len(v[i]), len(o.m[i]))
		}
	}
	for i := range m {
		copy(o.m[i], m[i])
		copy(o.v[i], v[i])
	}
	o.step = step
	return nil
}

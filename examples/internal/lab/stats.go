package lab

import (
	"fmt"
	"math"
	"strings"

	"gonum.org/v1/gonum/stat"
	"gonum.org/v1/gonum/stat/distuv"
)

// Stat is a mean over independent runs (seeds, prompts) with the
// half-width of its two-sided 95 % confidence interval from Student's t
// distribution: the interval is Mean ± Half. With one run Half is NaN.
type Stat struct {
	Mean, Half float64
	N          int
}

// MeanCI returns the mean of xs and its 95 % interval.
func MeanCI(xs []float64) Stat {
	s := Stat{N: len(xs)}
	if len(xs) == 0 {
		s.Mean, s.Half = math.NaN(), math.NaN()
		return s
	}
	m, sd := stat.MeanStdDev(xs, nil)
	s.Mean, s.Half = m, math.NaN()
	if len(xs) > 1 {
		t := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: float64(len(xs) - 1)}.Quantile(0.975)
		s.Half = t * sd / math.Sqrt(float64(len(xs)))
	}
	return s
}

// Format prints s as "mean ± half" with the given verb for both, or the
// mean alone when there is no interval, or "n/a" when there is no mean
// (no runs, or runs that measured nothing).
func (s Stat) Format(verb string) string {
	if math.IsNaN(s.Mean) {
		return "n/a"
	}
	if math.IsNaN(s.Half) {
		return fmt.Sprintf(verb, s.Mean)
	}
	return fmt.Sprintf(verb+" ± "+strings.Replace(verb, "+", "", 1), s.Mean, s.Half)
}

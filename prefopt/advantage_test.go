package prefopt

import (
	"math"
	"testing"
)

// The definition, Â_i = R_i − mean of the others, computed directly.
func TestLeaveOneOutMatchesDefinition(t *testing.T) {
	r := []float64{1, 2, 6, -3, 0.5, 0.5, 10, -10}
	for _, k := range []int{2, 4, 8} {
		adv, err := LeaveOneOut(r, k)
		if err != nil {
			t.Fatal(err)
		}
		for g := 0; g < len(r); g += k {
			var sum float64
			for i := g; i < g+k; i++ {
				var others float64
				for j := g; j < g+k; j++ {
					if j != i {
						others += r[j]
					}
				}
				want := r[i] - others/float64(k-1)
				if math.Abs(adv[i]-want) > 1e-12 {
					t.Errorf("k=%d: adv[%d] = %v, want %v", k, i, adv[i], want)
				}
				sum += adv[i]
			}
			if math.Abs(sum) > 1e-12 {
				t.Errorf("k=%d: group %d advantages sum to %v", k, g/k, sum)
			}
		}
	}
}

func TestLeaveOneOutErrors(t *testing.T) {
	for _, c := range []struct {
		r []float64
		k int
	}{
		{[]float64{1, 2}, 1},
		{[]float64{1, 2, 3}, 2},
		{[]float64{1, math.NaN()}, 2},
		{[]float64{math.Inf(1), 2}, 2},
	} {
		if _, err := LeaveOneOut(c.r, c.k); err == nil {
			t.Errorf("LeaveOneOut(%v, %d): no error", c.r, c.k)
		}
	}
}

package simd

import (
	"math"
	"testing"
)

// TestSoftmaxLeadingNegInf: a row whose first blocks are entirely −Inf
// (masked logits) still has a softmax. A block of only −Inf once made the
// generic twin's running sum NaN (−Inf − (−Inf)); every tier must give the
// float64 reference.
func TestSoftmaxLeadingNegInf(t *testing.T) {
	for _, lead := range []int{1, softmaxBlock, 3*softmaxBlock + 5, 5000} {
		x := make([]float32, lead+100)
		for i := range x {
			if i < lead {
				x[i] = float32(math.Inf(-1))
			} else {
				x[i] = float32(i%7) - 3
			}
		}
		m, s, ok := softmaxStats64(x)
		if !ok {
			t.Fatal("reference: no softmax")
		}
		forTiers(t, func(t *testing.T, k *Kernels) {
			if g, w := k.LogSumExp(x), m+math.Log(s); math.Abs(float64(g)-w) > 1e-6*math.Abs(w) {
				t.Errorf("lead %d: LogSumExp = %v, want %v", lead, g, w)
			}
			sm, lsm := make([]float32, len(x)), make([]float32, len(x))
			k.Softmax(sm, x)
			k.LogSoftmax(lsm, x)
			for i, v := range x {
				lp := float64(v) - m - math.Log(s)
				if i < lead {
					if sm[i] != 0 || !math.IsInf(float64(lsm[i]), -1) {
						t.Fatalf("lead %d: [%d] = %v, %v; want 0, -Inf", lead, i, sm[i], lsm[i])
					}
					continue
				}
				if math.Abs(float64(lsm[i])-lp) > 1e-6*math.Abs(lp)+2e-6 || math.Abs(float64(sm[i])-math.Exp(lp)) > 2e-6*math.Exp(lp) {
					t.Fatalf("lead %d: [%d] = %v, %v; want %v, %v", lead, i, sm[i], lsm[i], math.Exp(lp), lp)
				}
			}
		})
	}
}

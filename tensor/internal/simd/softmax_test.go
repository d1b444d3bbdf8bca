package simd

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestSoftmaxLeadingNegInf: a row whose first blocks are entirely −Inf
// (masked logits) still has a softmax. A block of only −Inf once made the
// generic twin's running sum NaN (−Inf − (−Inf)); every tier must give the
// float64 reference.
func TestSoftmaxLeadingNegInf(t *testing.T) {
	for _, lead := range []int{1, softmaxBlock, 3*softmaxBlock + 5, 2*2048 + 3, 5000} {
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
		t.Run(fmt.Sprintf("lead=%d", lead), func(t *testing.T) {
			forTiers(t, func(t *testing.T, k *Kernels) {
				if g, w := k.LogSumExp(x), m+math.Log(s); math.Abs(float64(g)-w) > 1e-6*math.Abs(w) {
					t.Errorf("lead %d: LogSumExp = %v, want %v", lead, g, w)
				}
				sm, lsm := make([]float32, len(x)), make([]float32, len(x))
				k.Softmax(sm, 1, x)
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
		})
	}
}

// TestLogSumExpLong: on 1M elements LogSumExp stays within 1e-6 relative
// of float64 (float32 lanes within a block, float64 across blocks), and
// Softmax sums to 1; on a rising ramp, where every block raises the max
// and rescales the sum, too.
func TestLogSumExpLong(t *testing.T) {
	n := 1 << 20
	if testing.Short() {
		n = 1 << 17
	}
	r := rand.New(rand.NewPCG(21, 22))
	x := make([]float32, n)
	gen(r, x, normal)
	ramp := make([]float32, 40000)
	for i := range ramp {
		ramp[i] = float32(i)*1e-3 - 7
	}
	testLongSoftmax(t, x)
	testLongSoftmax(t, ramp)
}

func testLongSoftmax(t *testing.T, x []float32) {
	n := len(x)
	m, s, _ := softmaxStats64(x)
	want := m + math.Log(s)
	sm := make([]float32, n)
	forTiers(t, func(t *testing.T, k *Kernels) {
		if g := k.LogSumExp(x); math.Abs(float64(g)-want) > 1e-6*math.Abs(want) {
			t.Errorf("LogSumExp = %v, float64 %v (rel. error %.2g)", g, want, math.Abs(float64(g)-want)/math.Abs(want))
		}
		k.Softmax(sm, 1, x)
		var sum float64
		for _, v := range sm {
			sum += float64(v)
		}
		if math.Abs(sum-1) > 1e-6 {
			t.Errorf("Σ Softmax = %v", sum)
		}
	})
}

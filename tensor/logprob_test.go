package tensor

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// logSoftmax64 is the float64 reference: (x_i − max) − log Σ e^(x−max).
func logSoftmax64(x []float32, i int) float64 {
	m := math.Inf(-1)
	for _, v := range x {
		m = max(m, float64(v))
	}
	var s float64
	for _, v := range x {
		s += math.Exp(float64(v) - m)
	}
	return (float64(x[i]) - m) - math.Log(s)
}

func TestLogSoftmaxAt(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 5))
	for _, c := range []struct {
		name  string
		n     int
		scale float64 // logits' spread
		shift float64 // a common offset: the result must not depend on it
	}{
		{"small", 7, 3, 0},
		{"vocab", 49152, 5, 0},
		{"spread 1e4", 4096, 1e4, 0},
		{"offset 1e6", 1000, 3, 1e6},
		{"offset 1e16", 1000, 3, 1e16},     // past the fused kernel's exact range
		{"offset -3e38", 300, 1e30, -3e38}, // near float32's limit
	} {
		t.Run(c.name, func(t *testing.T) {
			forEachTier(t, func(t *testing.T) {
				x := make([]float32, c.n)
				for k := range x {
					x[k] = float32(c.shift + c.scale*r.NormFloat64())
				}
				for _, i := range []int{0, c.n / 2, c.n - 1} {
					lp, lse, ok := LogSoftmaxAt(x, i)
					require.True(t, ok)
					want := logSoftmax64(x, i)
					// Relative to the log-prob's own size: the row's values
					// are float32, their differences exact in float64.
					assert.InDelta(t, want, lp, 1e-6*(1+math.Abs(want)), "index %d", i)
					assert.InDelta(t, float64(x[i])-want, lse, 1e-6*(1+math.Abs(lse)), "lse at index %d", i)
				}
			})
		})
	}
	t.Run("equal huge logits", func(t *testing.T) {
		for _, v := range []float32{1e16, 3e38, -3e38} {
			x := []float32{v, v, v, v}
			lp, _, ok := LogSoftmaxAt(x, 2)
			require.True(t, ok)
			assert.InDelta(t, -math.Log(4), lp, 1e-12, "logits all %v", v)
		}
	})
	t.Run("bad rows", func(t *testing.T) {
		inf, nan := float32(math.Inf(1)), float32(math.NaN())
		for _, c := range []struct {
			name string
			x    []float32
			i    int
			ok   bool
		}{
			{"NaN", []float32{0, nan, 1}, 0, false},
			{"+Inf", []float32{0, inf, 1}, 0, false},
			{"-Inf at i", []float32{0, -inf, 1}, 1, false},
			{"-Inf elsewhere", []float32{0, -inf, 0}, 0, true},
			{"NaN past 2^24", []float32{1e20, nan, 1e20}, 0, false},
		} {
			lp, _, ok := LogSoftmaxAt(c.x, c.i)
			assert.Equal(t, c.ok, ok, c.name)
			if ok {
				assert.InDelta(t, -math.Log(2), lp, 1e-12, c.name)
			}
		}
	})
	mustPanicShape(t, "index", func() { LogSoftmaxAt([]float32{1, 2}, 2) })
	mustPanicShape(t, "empty", func() { LogSoftmaxAt(nil, 0) })
}

// TestSoftmaxLSEHuge: past 2²⁴ SoftmaxLSE ignores the float64 lse, which
// has lost its small term, and still gives the softmax.
func TestSoftmaxLSEHuge(t *testing.T) {
	for _, base := range []float32{1e8, 1e16} {
		t.Run(fmt.Sprint(base), func(t *testing.T) {
			x := []float32{base, base, base, base}
			_, lse, ok := LogSoftmaxAt(x, 0)
			require.True(t, ok)
			dst := make([]float32, 4)
			SoftmaxLSE(dst, 2, x, lse)
			assert.InDeltaSlice(t, []float32{0.5, 0.5, 0.5, 0.5}, dst, 1e-6)
		})
	}
}

package tensor

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/posttrain/posttrain/tensor/internal/simd"
)

// The per-tier, per-length comparisons with the generic twins live in
// internal/simd. These tests check the public API's promises on every tier:
// the precision of the reductions on large inputs, LogSoftmax on stress
// logits, TopK's order, and the conversions' rounding.

// eachTier runs f with every available tier active in turn.
func eachTier(t *testing.T, f func(t *testing.T)) {
	for _, tier := range f32TiersTensor() {
		t.Run(tier.String(), func(t *testing.T) {
			prev, err := simd.Use(tier)
			require.NoError(t, err)
			defer simd.Use(prev)
			f(t)
		})
	}
}

func TestReductionsMillion(t *testing.T) {
	const n = 1 << 20
	r := rand.New(rand.NewPCG(1, 1))
	x, y := make([]float32, n), make([]float32, n)
	var sum, dot float64
	for i := range x {
		x[i] = float32(r.Float64()) // same sign: no cancellation to hide behind
		y[i] = float32(r.Float64())
		sum += float64(x[i])
		dot += float64(x[i]) * float64(y[i])
	}
	m := 0.0
	for _, v := range x {
		m = math.Max(m, float64(v))
	}
	var s float64
	for _, v := range x {
		s += math.Exp(float64(v) - m)
	}
	lse := m + math.Log(s)
	eachTier(t, func(t *testing.T) {
		for _, c := range []struct {
			name      string
			got, want float64
		}{
			{"Sum", float64(Sum(x)), sum},
			{"Dot", float64(Dot(x, y)), dot},
			{"LogSumExp", float64(LogSumExp(x)), lse},
		} {
			if rel := math.Abs(c.got-c.want) / math.Abs(c.want); rel > 1e-6 {
				t.Errorf("%s of 1M: %v, float64 %v, relative error %.2g > 1e-6", c.name, c.got, c.want, rel)
			}
		}
	})
}

// A row of 49,152 logits of magnitude 1e4 gives log-probs within 1e-5
// relative of a float64 reference.
func TestLogSoftmaxStress(t *testing.T) {
	const v = 49152
	r := rand.New(rand.NewPCG(2, 2))
	x := make([]float32, v)
	for i := range x {
		x[i] = float32(1e4 * r.NormFloat64())
	}
	// Put a few near-ties at the top so the sum is not just 1.
	top := ArgMax(x)
	for i := 0; i < 5; i++ {
		x[r.IntN(v)] = x[top] - float32(i)
	}
	m := math.Inf(-1)
	for _, xi := range x {
		m = math.Max(m, float64(xi))
	}
	var s float64
	for _, xi := range x {
		s += math.Exp(float64(xi) - m)
	}
	ls := math.Log(s)
	dst, p := make([]float32, v), make([]float32, v)
	eachTier(t, func(t *testing.T) {
		LogSoftmax(dst, x)
		Softmax(p, x)
		var total float64
		for i, xi := range x {
			want := float64(xi) - m - ls
			if d := math.Abs(float64(dst[i]) - want); d > 1e-5*math.Abs(want)+1e-6 {
				t.Fatalf("logp[%d] = %v, float64 %v", i, dst[i], want)
			}
			total += float64(p[i])
		}
		if math.Abs(total-1) > 1e-6 {
			t.Fatalf("softmax sums to %v", total)
		}
	})
}

func TestTopK(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	for _, n := range []int{0, 1, 2, 7, 100, 1000, 49152} {
		for _, k := range []int{0, 1, 2, 5, 32, 200, n + 3} {
			x := make([]float32, n)
			for i := range x {
				x[i] = float32(r.IntN(50)) // many ties
				if r.IntN(500) == 0 {
					x[i] = float32(math.NaN())
				}
			}
			// Reference: stable sort of indices, NaN first, then descending.
			ref := make([]int, n)
			for i := range ref {
				ref[i] = i
			}
			slices.SortStableFunc(ref, func(a, b int) int {
				va, vb := x[a], x[b]
				switch {
				case va != va && vb != vb:
					return 0
				case va != va:
					return -1
				case vb != vb:
					return 1
				case va > vb:
					return -1
				case va < vb:
					return 1
				}
				return 0
			})
			ref = ref[:min(k, n)]
			eachTier(t, func(t *testing.T) {
				idx, val := TopK(x, k)
				if !slices.Equal(idx, ref) {
					t.Fatalf("n=%d k=%d: TopK = %v, want %v", n, k, idx, ref)
				}
				for i, j := range idx {
					if math.Float32bits(val[i]) != math.Float32bits(x[j]) {
						t.Fatalf("n=%d k=%d: val[%d] = %v, x[%d] = %v", n, k, i, val[i], j, x[j])
					}
				}
			})
		}
	}
}

// nearest16 finds, by brute force over all 2^16 patterns, the finite
// binary16 or bfloat16 value nearest to f with ties to even, the reference
// for the conversions' rounding. It returns the magnitude's pattern.
func nearest16(f float32, from func(uint16) float32, maxPattern uint16) uint16 {
	a := math.Abs(float64(f))
	lo, hi := uint16(0), maxPattern // patterns are ordered by magnitude
	for lo < hi {
		mid := lo + (hi-lo+1)/2
		if float64(from(mid)) <= a {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	if lo == maxPattern {
		return lo
	}
	below, above := float64(from(lo)), float64(from(lo+1))
	switch {
	case a-below < above-a:
		return lo
	case a-below > above-a:
		return lo + 1
	case lo&1 == 0:
		return lo
	}
	return lo + 1
}

func TestConversionRounding(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	x := make([]float32, 1<<14)
	for i := range x {
		switch i % 4 {
		case 0:
			x[i] = math.Float32frombits(r.Uint32() & 0x7fffffff)
		case 1:
			x[i] = float32(math.Exp2(r.Float64()*45 - 28)) // binary16's range, subnormals included
		case 2: // exact midpoints between binary16 neighbours
			h := uint16(r.IntN(0x7bff))
			x[i] = float32((float64(fromF16(h)) + float64(fromF16(h+1))) / 2)
		default:
			x[i] = float32(r.NormFloat64())
		}
		if r.IntN(2) == 0 {
			x[i] = -x[i]
		}
	}
	h16, b16 := make([]uint16, len(x)), make([]uint16, len(x))
	back := make([]float32, len(x))
	eachTier(t, func(t *testing.T) {
		ToF16(h16, x)
		ToBF16(b16, x)
		for i, f := range x {
			if f != f {
				continue
			}
			sign := uint16(0)
			if math.Signbit(float64(f)) {
				sign = 0x8000
			}
			want := nearest16(f, fromF16, 0x7bff)
			if want == 0x7bff && math.Abs(float64(f)) >= 65520 {
				want = 0x7c00 // rounds past the largest finite: Inf
			}
			if h16[i] != sign|want {
				t.Fatalf("ToF16(%v) = %#04x, want %#04x", f, h16[i], sign|want)
			}
			wantB := nearest16(f, fromBF16, 0x7f7f)
			if wantB == 0x7f7f && math.Abs(float64(f)) >= float64(fromBF16(0x7f7f))+float64(fromBF16(0x7f7f)-fromBF16(0x7f7e))/2 {
				wantB = 0x7f80
			}
			if b16[i] != sign|wantB {
				t.Fatalf("ToBF16(%v) = %#04x, want %#04x", f, b16[i], sign|wantB)
			}
		}
		FromF16(back, h16)
		for i, f := range x {
			if f == f && math.Abs(float64(f)) <= 65504 && math.Abs(float64(back[i])-float64(f)) > math.Abs(float64(f))/2048+1.0/(1<<25) {
				t.Fatalf("FromF16(ToF16(%v)) = %v", f, back[i])
			}
		}
	})
}

// fromF16 and fromBF16 decode by the formula of the formats, independent of
// the kernels under test.
func fromF16(h uint16) float32 {
	e, m := int(h>>10&0x1f), float64(h&0x3ff)
	var v float64
	switch e {
	case 0:
		v = m * math.Exp2(-24)
	case 0x1f:
		v = math.Inf(1)
	default:
		v = (1 + m/1024) * math.Exp2(float64(e-15))
	}
	if h&0x8000 != 0 {
		v = -v
	}
	return float32(v)
}

func fromBF16(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

func TestNaNConversions(t *testing.T) {
	nan := []float32{float32(math.NaN()), math.Float32frombits(0x7f800001), math.Float32frombits(0xffc12345)}
	h, b := make([]uint16, len(nan)), make([]uint16, len(nan))
	back := make([]float32, len(nan))
	eachTier(t, func(t *testing.T) {
		ToF16(h, nan)
		ToBF16(b, nan)
		FromF16(back, h)
		for i := range nan {
			if h[i]&0x7c00 != 0x7c00 || h[i]&0x3ff == 0 || b[i]&0x7f80 != 0x7f80 || b[i]&0x7f == 0 || back[i] == back[i] {
				t.Fatalf("NaN %#08x → f16 %#04x, bf16 %#04x, back %v", math.Float32bits(nan[i]), h[i], b[i], back[i])
			}
		}
	})
}

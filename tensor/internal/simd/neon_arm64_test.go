//go:build gc && !purego

package simd

import (
	"math"
	"math/rand/v2"
	"testing"
)

// Extra NEON checks beyond the tier harness: conversions at every rounding
// boundary, and softmax rows whose maximum moves or that open with a whole
// block of −Inf.

// TestNEONConversionBoundaries converts, for every pattern of the bits a
// half format keeps, the dropped bits at and around the rounding tie:
// FCVTN's rounding, subnormals, overflow and NaN quieting must match
// toF16 bit for bit, and the integer rounding of ToBF16 must match toBF16.
func TestNEONConversionBoundaries(t *testing.T) {
	k := Table(NEON)
	r := rand.New(rand.NewPCG(21, 22))
	check := func(what string, x []float32, tier, ref func([]uint16, []float32)) {
		got, want := make([]uint16, len(x)), make([]uint16, len(x))
		tier(got, x)
		ref(want, x)
		for i := range x {
			if got[i] != want[i] {
				t.Fatalf("%s(%#08x) = %#04x, generic %#04x", what, math.Float32bits(x[i]), got[i], want[i])
			}
		}
	}
	var x []float32
	for hi := range uint32(1 << 19) { // sign, exponent, top 10 mantissa bits
		for _, lo := range []uint32{0, 1, 0x0fff, 0x1000, 0x1001, 0x1fff, r.Uint32() & 0x1fff} {
			x = append(x, math.Float32frombits(hi<<13|lo))
		}
	}
	check("ToF16", x, k.ToF16, toF16Generic)
	x = x[:0]
	for hi := range uint32(1 << 16) {
		for _, lo := range []uint32{0, 1, 0x7fff, 0x8000, 0x8001, 0xffff, r.Uint32() & 0xffff} {
			x = append(x, math.Float32frombits(hi<<16|lo))
		}
	}
	check("ToBF16", x, k.ToBF16, toBF16Generic)
}

// TestNEONSoftmaxRows checks rows the random harness rarely builds against
// the float64 reference: a maximum that rises in every block (each rise
// rescales the running sum), and rows that open with a whole block of −Inf.
// (The generic twin returns NaN for the latter: its first block's sum is
// exp(−Inf − (−Inf)) = NaN. That is a twin bug, reported, not copied.)
func TestNEONSoftmaxRows(t *testing.T) {
	k := Table(NEON)
	r := rand.New(rand.NewPCG(23, 24))
	rising := make([]float32, 49152)
	for i := range rising {
		rising[i] = float32(i)*0.25 + float32(r.NormFloat64())
	}
	logits := make([]float32, 49152)
	for i := range logits {
		logits[i] = float32(1e4*r.NormFloat64()) + float32(i)*0.5
	}
	negInf := make([]float32, 2*BlockLen+37)
	for i := range negInf {
		negInf[i] = float32(math.Inf(-1))
		if i >= BlockLen && i%3 == 0 {
			negInf[i] = float32(r.NormFloat64())
		}
	}
	short := []float32{float32(math.Inf(-1)), float32(math.Inf(-1)), 2, float32(math.Inf(-1))}
	for _, c := range []struct {
		name string
		x    []float32
	}{{"rising", rising}, {"rising logits", logits}, {"-Inf block", negInf}, {"short -Inf", short}} {
		x := c.x
		m, s, ok := softmaxStats64(x)
		if !ok {
			t.Fatalf("%s: bad test row", c.name)
		}
		lse := m + math.Log(s)
		if g := k.LogSumExp(x); math.Abs(float64(g)-lse) > 1e-6*math.Abs(lse)+2e-6 {
			t.Errorf("%s: LogSumExp = %v, float64 %v", c.name, g, lse)
		}
		sm, lsm := make([]float32, len(x)), make([]float32, len(x))
		k.Softmax(sm, 1, x)
		k.LogSoftmax(lsm, x)
		for i, v := range x {
			lp := float64(v) - lse
			if math.IsInf(lp, -1) {
				if !math.IsInf(float64(lsm[i]), -1) || sm[i] != 0 {
					t.Fatalf("%s: [%d] = %v, %v; want -Inf, 0", c.name, i, lsm[i], sm[i])
				}
				continue
			}
			if d := math.Abs(float64(lsm[i]) - lp); d > 1e-5*math.Abs(lp)+2e-6 {
				t.Fatalf("%s: LogSoftmax[%d] = %v, float64 %v", c.name, i, lsm[i], lp)
			}
			if p := math.Exp(lp); math.Abs(float64(sm[i])-p) > 2e-6*p+2e-38 {
				t.Fatalf("%s: Softmax[%d] = %v, float64 %v", c.name, i, sm[i], p)
			}
		}
	}
}

// TestNEONLongReductions: on a million elements, Sum, Dot and LogSumExp
// stay within 1e-6 relative of float64 (the bound).
func TestNEONLongReductions(t *testing.T) {
	k := Table(NEON)
	r := rand.New(rand.NewPCG(25, 26))
	x, y := make([]float32, 1<<20), make([]float32, 1<<20)
	for i := range x {
		x[i] = float32(1 + r.NormFloat64())
		y[i] = float32(0.5 + r.NormFloat64())
	}
	var sum, dot float64
	for i, v := range x {
		sum += float64(v)
		dot += float64(v) * float64(y[i])
	}
	m, s, _ := softmaxStats64(x)
	for _, c := range []struct {
		name      string
		got       float32
		want, tol float64
	}{
		{"Sum", k.Sum(x), sum, 1e-6},
		{"Dot", k.Dot(x, y), dot, 1e-6},
		{"LogSumExp", float32(k.LogSumExp(x)), m + math.Log(s), 1e-6},
	} {
		if d := math.Abs(float64(c.got)-c.want) / math.Abs(c.want); d > c.tol {
			t.Errorf("%s = %v, float64 %v: relative error %.2g", c.name, c.got, c.want, d)
		}
	}
}

// TestNEONExpLogSweep runs Exp and Log over every 4093rd float32 bit
// pattern and every float32 in [−88, −87] and [88, 89] (the flush and
// overflow edges), within 2 ulp of float64. (A stride-251 sweep, 17M inputs,
// gave at most 0.97 ulp for Exp and 0.77 ulp for Log under qemu.)
func TestNEONExpLogSweep(t *testing.T) {
	var x []float32
	for b := uint64(0); b < 1<<32; b += 4093 {
		x = append(x, math.Float32frombits(uint32(b)))
	}
	for _, lo := range []float32{-88, 88} {
		for v := lo; v <= lo+1; v = math.Nextafter32(v, 100) {
			x = append(x, v)
		}
	}
	k := Table(NEON)
	got := make([]float32, len(x))
	k.Exp(got, x)
	for i, v := range x {
		if u := ulps(got[i], expRef(v)); u > 2 {
			t.Fatalf("exp(%v) = %v, want %v (%.2f ulp)", v, got[i], expRef(v), u)
		}
	}
	k.Log(got, x)
	for i, v := range x {
		if u := ulps(got[i], math.Log(float64(v))); u > 2 {
			t.Fatalf("log(%v) = %v, want %v (%.2f ulp)", v, got[i], math.Log(float64(v)), u)
		}
	}
}

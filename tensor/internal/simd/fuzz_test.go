package simd

import (
	"encoding/binary"
	"math"
	"testing"
)

// Fuzz targets feed arbitrary bit patterns to every tier and compare with
// the generic twin: bit for bit where the kernel is exact, against float64
// where tiers may round differently. Run one with, e.g.,
//
//	go test -run '^$' -fuzz FuzzArith -fuzztime 30s ./tensor/internal/simd/
//
// The seed corpus is in testdata/fuzz.

// floats decodes b as little-endian float32s; a trailing partial word is
// dropped.
func floats(b []byte) []float32 {
	x := make([]float32, len(b)/4)
	for i := range x {
		x[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return x
}

// halves splits b's floats into two slices of equal length.
func halves(b []byte) (x, y []float32) {
	f := floats(b)
	n := len(f) / 2
	return f[:n], f[n : 2*n]
}

func FuzzArith(f *testing.F) {
	f.Add([]byte{0, 0, 0x80, 0x7f, 0, 0, 0xc0, 0x7f, 1, 0, 0, 0, 0, 0, 0x80, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		x, y := halves(b)
		n := len(x)
		got, want := make([]float32, n), make([]float32, n)
		for _, tier := range f32Tiers() {
			k := Table(tier)
			for _, op := range []struct {
				name string
				run  func(k *Kernels, d []float32)
			}{
				{"Add", func(k *Kernels, d []float32) { k.Add(d, x, y) }},
				{"Sub", func(k *Kernels, d []float32) { k.Sub(d, x, y) }},
				{"Mul", func(k *Kernels, d []float32) { k.Mul(d, x, y) }},
				{"Scale", func(k *Kernels, d []float32) { k.Scale(d, 0.37, x) }},
			} {
				op.run(k, got)
				op.run(&genericKernels, want)
				for i := range want {
					if !sameBits(got[i], want[i]) {
						t.Fatalf("%v %s [%d]: %v, generic %v", tier, op.name, i, got[i], want[i])
					}
				}
			}
			if g, w := k.Max(x), maxGeneric(x); !(g == w || g != g && w != w) {
				t.Fatalf("%v Max = %v, generic %v", tier, g, w)
			}
			if g, w := k.ArgMax(x), argMaxGeneric(x); g != w {
				t.Fatalf("%v ArgMax = %d, generic %d", tier, g, w)
			}
			if n > 0 {
				if g, w := k.FirstAbove(x[1:], y[0]), firstAboveGeneric(x[1:], y[0]); g != w {
					t.Fatalf("%v FirstAbove = %d, generic %d", tier, g, w)
				}
			}
		}
	})
}

func FuzzExpLog(f *testing.F) {
	f.Add([]byte{0x18, 0x72, 0xb1, 0x42, 0x19, 0x72, 0xb1, 0x42, 0x3f, 0xb1, 0xae, 0xc2, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		x := floats(b)
		got := make([]float32, len(x))
		for _, tier := range f32Tiers() {
			k := Table(tier)
			k.Exp(got, x)
			for i, v := range x {
				if u := ulps(got[i], expRef(v)); u > 2 {
					t.Fatalf("%v exp(%v) = %v, want %v (%.2f ulp)", tier, v, got[i], expRef(v), u)
				}
			}
			k.Log(got, x)
			for i, v := range x {
				if u := ulps(got[i], math.Log(float64(v))); u > 2 {
					t.Fatalf("%v log(%v) = %v, want %v (%.2f ulp)", tier, v, got[i], math.Log(float64(v)), u)
				}
			}
		}
	})
}

func FuzzReduce(f *testing.F) {
	f.Add([]byte{0, 0, 0x80, 0x3f, 0, 0, 0x80, 0xbf, 0, 0, 0, 0x40, 0, 0, 0x80, 0x7f})
	f.Fuzz(func(t *testing.T, b []byte) {
		x, y := halves(b)
		clampHuge(x)
		clampHuge(y)
		var sum, abs, dot, dabs float64
		for i, v := range x {
			sum += float64(v)
			abs += math.Abs(float64(v))
			p := float64(v) * float64(y[i])
			dot += p
			dabs += math.Abs(p)
		}
		for _, tier := range f32Tiers() {
			k := Table(tier)
			checkReduction(t, tier.String()+" Sum", k.Sum(x), sum, abs)
			checkReduction(t, tier.String()+" Dot", k.Dot(x, y), dot, dabs)
		}
	})
}

func FuzzSoftmax(f *testing.F) {
	f.Add([]byte{0, 0, 0x80, 0x3f, 0, 0, 0x80, 0xff, 0, 0x40, 0x1c, 0x46, 0, 0x40, 0x1c, 0xc6})
	f.Fuzz(func(t *testing.T, b []byte) {
		x := floats(b)
		m, s, ok := softmaxStats64(x)
		sm, lsm := make([]float32, len(x)), make([]float32, len(x))
		for _, tier := range f32Tiers() {
			k := Table(tier)
			g, w := float32(k.LogSumExp(x)), float32(logSumExpGeneric(x))
			if !ok && !sameBits(g, w) {
				t.Fatalf("%v LogSumExp = %v, generic %v", tier, g, w)
			}
			if ok {
				if ref := m + math.Log(s); math.Abs(float64(g)-ref) > 1e-6*math.Abs(ref)+2e-6 {
					t.Fatalf("%v LogSumExp = %v, float64 %v", tier, g, ref)
				}
			}
			k.Softmax(sm, 1, x)
			k.LogSoftmax(lsm, x)
			for i, v := range x {
				if !ok {
					if sm[i] == sm[i] || lsm[i] == lsm[i] {
						t.Fatalf("%v softmax of an undefined row: [%d] = %v, %v", tier, i, sm[i], lsm[i])
					}
					continue
				}
				lp := float64(v) - m - math.Log(s)
				if lp < -math.MaxFloat32 { // rounds to −Inf or, from (v−m)−ls in float32, −MaxFloat32
					if lsm[i] > -math.MaxFloat32 {
						t.Fatalf("%v LogSoftmax [%d] = %v, want ≤ −MaxFloat32", tier, i, lsm[i])
					}
					continue
				}
				if d := math.Abs(float64(lsm[i]) - lp); d > 1e-6*math.Abs(lp)+2e-6 {
					t.Fatalf("%v LogSoftmax [%d] = %v, float64 %v", tier, i, lsm[i], lp)
				}
				if p := math.Exp(lp); math.Abs(float64(sm[i])-p) > 2e-6*p+2e-38 {
					t.Fatalf("%v Softmax [%d] = %v, float64 %v", tier, i, sm[i], p)
				}
			}
		}
	})
}

func FuzzConvert(f *testing.F) {
	f.Add([]byte{0x00, 0xf0, 0x7f, 0x47, 0x01, 0x00, 0x80, 0x7f, 0x00, 0x00, 0x00, 0x33, 0x01, 0x00, 0x00, 0x33})
	f.Fuzz(func(t *testing.T, b []byte) {
		x := floats(b)
		h := make([]uint16, len(b)/2)
		for i := range h {
			h[i] = binary.LittleEndian.Uint16(b[2*i:])
		}
		g16, w16 := make([]uint16, len(x)), make([]uint16, len(x))
		g32, w32 := make([]float32, len(h)), make([]float32, len(h))
		for _, tier := range f32Tiers() {
			k := Table(tier)
			for _, c := range []struct {
				name      string
				tier, ref func([]uint16, []float32)
			}{{"ToBF16", k.ToBF16, toBF16Generic}, {"ToF16", k.ToF16, toF16Generic}} {
				c.tier(g16, x)
				c.ref(w16, x)
				for i := range w16 {
					if g16[i] != w16[i] {
						t.Fatalf("%v %s(%#08x) = %#04x, generic %#04x", tier, c.name, math.Float32bits(x[i]), g16[i], w16[i])
					}
				}
			}
			for _, c := range []struct {
				name      string
				tier, ref func([]float32, []uint16)
			}{{"FromBF16", k.FromBF16, fromBF16Generic}, {"FromF16", k.FromF16, fromF16Generic}} {
				c.tier(g32, h)
				c.ref(w32, h)
				for i := range w32 {
					if math.Float32bits(g32[i]) != math.Float32bits(w32[i]) {
						t.Fatalf("%v %s(%#04x) = %#08x, generic %#08x", tier, c.name, h[i], math.Float32bits(g32[i]), math.Float32bits(w32[i]))
					}
				}
			}
		}
	})
}

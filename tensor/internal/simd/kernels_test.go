package simd

import (
	"math"
	"math/rand/v2"
	"testing"
)

// Each test below runs one kernel family on every assembly tier and checks
// it against the generic twin (exact kernels) or a float64 reference
// (kernels whose rounding may differ by tier), with guard regions.

// input makes a misaligned, guarded copy of fresh random data.
func input(r *rand.Rand, n, off int, f flavor) *arena {
	a := newSlice(n, off)
	gen(r, a.s(), f)
	return a
}

func TestElementwise(t *testing.T) {
	type op struct {
		name string
		tier func(k *Kernels, dst, x, y []float32)
	}
	ops := []op{
		{"Add", func(k *Kernels, d, x, y []float32) { k.Add(d, x, y) }},
		{"Sub", func(k *Kernels, d, x, y []float32) { k.Sub(d, x, y) }},
		{"Mul", func(k *Kernels, d, x, y []float32) { k.Mul(d, x, y) }},
		{"Scale", func(k *Kernels, d, x, y []float32) {
			alpha := float32(-1.75)
			if len(y) > 0 {
				alpha = y[0]
			}
			k.Scale(d, alpha, x)
		}},
	}
	forTiers(t, func(t *testing.T, k *Kernels) {
		r := rand.New(rand.NewPCG(1, 2))
		for _, o := range ops {
			for _, f := range []flavor{normal, wide, special} {
				cases(func(n, off int) {
					x, y := input(r, n, off, f), input(r, n, (off+5)%maxMisalign, f)
					got, want := newSlice(n, (off+3)%maxMisalign), make([]float32, n)
					o.tier(k, got.s(), x.s(), y.s())
					o.tier(&genericKernels, want, x.s(), y.s())
					got.checkGuard(t, name(o.name, f, n, off))
					for i := range want {
						if !sameBits(got.s()[i], want[i]) {
							t.Fatalf("%s: [%d] = %v, generic %v (x=%v y=%v)", name(o.name, f, n, off), i, got.s()[i], want[i], x.s()[i], y.s()[i])
						}
					}
					// In place: dst is x.
					if n > 0 && off == 0 {
						want2 := append([]float32(nil), want...)
						o.tier(k, x.s(), x.s(), y.s())
						for i := range want2 {
							if !sameBits(x.s()[i], want2[i]) {
								t.Fatalf("%s in place: [%d] = %v, want %v", name(o.name, f, n, off), i, x.s()[i], want2[i])
							}
						}
					}
				})
			}
		}
	})
}

// Axpy may fuse the multiply-add or not: it must be within the rounding of
// the two operations, 0.5 ulp of alpha·x plus 0.5 ulp of the sum (a fused
// result is within 0.5 ulp of the exact y + alpha·x).
func TestAxpy(t *testing.T) {
	forTiers(t, func(t *testing.T, k *Kernels) {
		r := rand.New(rand.NewPCG(3, 4))
		for _, f := range []flavor{normal, special} {
			cases(func(n, off int) {
				x, y := input(r, n, off, f), input(r, n, (off+9)%maxMisalign, f)
				clampHuge(x.s()) // an overflowing alpha·x is finite only when fused
				y0 := append([]float32(nil), y.s()...)
				alpha := float32(r.NormFloat64())
				k.Axpy(alpha, x.s(), y.s())
				y.checkGuard(t, name("Axpy", f, n, off))
				for i, v := range y.s() {
					prod := float64(alpha) * float64(x.s()[i])
					want := float64(y0[i]) + prod
					if u := ulps(v, want); u > 0.5+0.5*ulpAt(prod)/ulpAt(want) {
						t.Fatalf("%s: [%d] = %v, exact %v (%.1f ulp)", name("Axpy", f, n, off), i, v, want, u)
					}
				}
			})
		}
	})
}

// reductionFlavors avoid huge finite values, whose overflow to ±Inf
// legitimately depends on the order of summation.
var reductionFlavors = []flavor{normal, special}

func TestSumDot(t *testing.T) {
	forTiers(t, func(t *testing.T, k *Kernels) {
		r := rand.New(rand.NewPCG(5, 6))
		for _, f := range reductionFlavors {
			cases(func(n, off int) {
				x, y := input(r, n, off, f), input(r, n, (off+1)%maxMisalign, f)
				if f == special {
					clampHuge(x.s())
					clampHuge(y.s())
				}
				var sum, abs, dot, dabs float64
				for i, v := range x.s() {
					sum += float64(v)
					abs += math.Abs(float64(v))
					p := float64(v) * float64(y.s()[i])
					dot += p
					dabs += math.Abs(p)
				}
				checkReduction(t, name("Sum", f, n, off), k.Sum(x.s()), sum, abs)
				checkReduction(t, name("Dot", f, n, off), k.Dot(x.s(), y.s()), dot, dabs)
				x.checkGuard(t, "Sum")
			})
		}
	})
}

// clampHuge replaces finite values beyond ±1e30 by ±1: reductions of them
// overflow in an order-dependent way.
func clampHuge(x []float32) {
	for i, v := range x {
		if !math.IsInf(float64(v), 0) && math.Abs(float64(v)) > 1e30 {
			x[i] = 1
		}
	}
}

func checkReduction(t *testing.T, what string, got float32, want, abs float64) {
	t.Helper()
	if abs > 1e37 && !math.IsNaN(want) {
		return // partial sums may overflow float32, depending on their order
	}
	if math.IsNaN(want) || math.IsInf(want, 0) {
		if ulps(got, want) != 0 {
			t.Fatalf("%s = %v, want %v", what, got, want)
		}
		return
	}
	if d := math.Abs(float64(got) - want); d > 2e-6*abs+1e-30 {
		t.Fatalf("%s = %v, float64 %v: error %g > 2e-6·Σ|terms| (%g)", what, got, want, d, abs)
	}
}

func TestMaxArgMaxFirstAbove(t *testing.T) {
	forTiers(t, func(t *testing.T, k *Kernels) {
		r := rand.New(rand.NewPCG(7, 8))
		for _, f := range []flavor{normal, wide, special} {
			cases(func(n, off int) {
				x := input(r, n, off, f)
				if f == special && r.IntN(2) == 0 {
					// Mostly NaN-free rows, so the non-NaN paths are hit too.
					for i, v := range x.s() {
						if v != v {
							x.s()[i] = 0
						}
					}
				}
				gm, wm := k.Max(x.s()), maxGeneric(x.s())
				if !(gm == wm || gm != gm && wm != wm) {
					t.Fatalf("%s = %v, generic %v", name("Max", f, n, off), gm, wm)
				}
				if g, w := k.ArgMax(x.s()), argMaxGeneric(x.s()); g != w {
					t.Fatalf("%s = %d, generic %d", name("ArgMax", f, n, off), g, w)
				}
				thresholds := []float32{0, float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN())}
				if n > 0 {
					thresholds = append(thresholds, x.s()[r.IntN(n)], wm)
				}
				for _, th := range thresholds {
					if g, w := k.FirstAbove(x.s(), th), firstAboveGeneric(x.s(), th); g != w {
						t.Fatalf("%s threshold %v = %d, generic %d", name("FirstAbove", f, n, off), th, g, w)
					}
				}
				x.checkGuard(t, "Max")
			})
		}
	})
}

// Exp and Log: within 2 ulp of float64's math.Exp and math.Log, with the
// documented flush of subnormal Exp results to 0.
func TestExpLog(t *testing.T) {
	forTiers(t, func(t *testing.T, k *Kernels) {
		r := rand.New(rand.NewPCG(9, 10))
		for _, f := range []flavor{normal, wide, special, logits} {
			cases(func(n, off int) {
				x := input(r, n, off, f)
				if f == normal {
					for i := range x.s() {
						x.s()[i] *= 10 // cover the whole of Exp's finite range
					}
				}
				got := newSlice(n, (off+2)%maxMisalign)
				k.Exp(got.s(), x.s())
				got.checkGuard(t, name("Exp", f, n, off))
				for i, v := range x.s() {
					if u := ulps(got.s()[i], expRef(v)); u > 2 {
						t.Fatalf("%s: exp(%v) = %v, want %v (%.2f ulp)", name("Exp", f, n, off), v, got.s()[i], expRef(v), u)
					}
				}
				for i, v := range x.s() {
					x.s()[i] = float32(math.Abs(float64(v))) // Log of negatives is NaN: tested by specials
					if f == special && r.IntN(4) == 0 {
						x.s()[i] = -x.s()[i]
					}
				}
				k.Log(got.s(), x.s())
				got.checkGuard(t, name("Log", f, n, off))
				for i, v := range x.s() {
					if u := ulps(got.s()[i], math.Log(float64(v))); u > 2 {
						t.Fatalf("%s: log(%v) = %v, want %v (%.2f ulp)", name("Log", f, n, off), v, got.s()[i], math.Log(float64(v)), u)
					}
				}
			})
		}
	})
}

// expRef is exp in float64, with Exp's documented flush: results below the
// smallest normal float32 are 0.
func expRef(x float32) float64 {
	if x < ExpUnderflow {
		return 0
	}
	return math.Exp(float64(x))
}

func TestSoftmaxFamily(t *testing.T) {
	forTiers(t, func(t *testing.T, k *Kernels) {
		r := rand.New(rand.NewPCG(11, 12))
		for _, f := range []flavor{normal, special, logits} {
			cases(func(n, off int) {
				x := input(r, n, off, f)
				if f == special && r.IntN(3) > 0 {
					// Most special rows keep only the values softmax can
					// handle (−Inf, ±0, subnormals), to check the numbers.
					for i, v := range x.s() {
						if v != v || v > 1e30 || v < -1e30 && !math.IsInf(float64(v), -1) {
							x.s()[i] = 0
						}
					}
				}
				m, s, ok := softmaxStats64(x.s())
				what := name("LogSumExp", f, n, off)
				g, w := float32(k.LogSumExp(x.s())), float32(logSumExpGeneric(x.s()))
				if !ok || n == 0 {
					if !sameBits(g, w) {
						t.Fatalf("%s = %v, generic %v", what, g, w)
					}
				} else if ref := m + math.Log(s); math.Abs(float64(g)-ref) > 1e-6*math.Abs(ref)+2e-6 {
					t.Fatalf("%s = %v, float64 %v", what, g, ref)
				}

				sm, lsm := newSlice(n, (off+4)%maxMisalign), newSlice(n, (off+6)%maxMisalign)
				alpha := float32(1)
				if n%3 == 1 {
					alpha = -0.37 // ScaledSoftmax: the scale rides on 1/s
				}
				k.Softmax(sm.s(), alpha, x.s())
				k.LogSoftmax(lsm.s(), x.s())
				// SoftmaxOut alone, shifted by the float32-rounded
				// log-sum-exp with the exact remainder folded into inv, as
				// tensor.SoftmaxLSE calls it.
				so := newSlice(n, (off+5)%maxMisalign)
				var shift float32
				var inv float32
				// A float64 lse keeps ln s only while |max| ≪ 2^53; the
				// huge specials (±1e38) are past that.
				lseOK := ok && math.Abs(m) < 1e12
				if lseOK {
					lse := m + math.Log(s)
					shift = float32(lse)
					inv = float32(float64(alpha) * math.Exp(float64(shift)-lse))
					k.SoftmaxOut(so.s(), x.s(), shift, inv)
					so.checkGuard(t, name("SoftmaxOut", f, n, off))
				}
				sm.checkGuard(t, name("Softmax", f, n, off))
				lsm.checkGuard(t, name("LogSoftmax", f, n, off))
				for i, v := range x.s() {
					gs, gl := sm.s()[i], lsm.s()[i]
					if !ok {
						if gs == gs || gl == gl {
							t.Fatalf("%s: [%d] = %v, %v for a row with no softmax; want NaN", name("Softmax", f, n, off), i, gs, gl)
						}
						continue
					}
					lp := float64(v) - m - math.Log(s)
					if lp < -math.MaxFloat32 { // rounds to −Inf or, from (v−m)−ls in float32, −MaxFloat32
						if gl > -math.MaxFloat32 || gs != 0 {
							t.Fatalf("%s: [%d] = %v, %v; want ≤ −MaxFloat32, 0", name("LogSoftmax", f, n, off), i, gl, gs)
						}
						continue
					}
					if d := math.Abs(float64(gl) - lp); d > 1e-6*math.Abs(lp)+2e-6 {
						t.Fatalf("%s: [%d] = %v, float64 %v", name("LogSoftmax", f, n, off), i, gl, lp)
					}
					p := float64(alpha) * math.Exp(lp)
					if d := math.Abs(float64(so.s()[i]) - p); lseOK && d > 2e-6*math.Abs(p)+2e-38 {
						t.Fatalf("%s: [%d] = %v, float64 %v", name("SoftmaxOut", f, n, off), i, so.s()[i], p)
					}
					if d := math.Abs(float64(gs) - p); d > 2e-6*math.Abs(p)+2e-38 {
						t.Fatalf("%s: [%d] = %v, float64 %v", name("Softmax", f, n, off), i, gs, p)
					}
				}
			})
		}
	})
}

// softmaxStats64 is the float64 reference: max and Σ exp(x − max); ok is
// false where softmax is undefined (empty, NaN, +Inf, all −Inf).
func softmaxStats64(x []float32) (m, s float64, ok bool) {
	m = math.Inf(-1)
	for _, v := range x {
		if v != v || math.IsInf(float64(v), 1) {
			return 0, 0, false
		}
		m = math.Max(m, float64(v))
	}
	if math.IsInf(m, -1) {
		return 0, 0, false
	}
	for _, v := range x {
		s += math.Exp(float64(v) - m)
	}
	return m, s, true
}

func TestConversions(t *testing.T) {
	forTiers(t, func(t *testing.T, k *Kernels) {
		r := rand.New(rand.NewPCG(13, 14))
		for _, f := range []flavor{normal, wide, special} {
			cases(func(n, off int) {
				x := input(r, n, off, f)
				if f == wide {
					for i := range x.s() { // every float32 bit pattern
						x.s()[i] = math.Float32frombits(r.Uint32())
					}
				}
				for _, c := range []struct {
					name      string
					tier, ref func([]uint16, []float32)
				}{{"ToBF16", k.ToBF16, toBF16Generic}, {"ToF16", k.ToF16, toF16Generic}} {
					got, want := newSlice16(n, (off+1)%maxMisalign), make([]uint16, n)
					c.tier(got.s(), x.s())
					c.ref(want, x.s())
					got.checkGuard(t, name(c.name, f, n, off))
					for i := range want {
						if got.s()[i] != want[i] {
							t.Fatalf("%s: %v (%#08x) → %#04x, generic %#04x", name(c.name, f, n, off), x.s()[i], math.Float32bits(x.s()[i]), got.s()[i], want[i])
						}
					}
				}
				h := newSlice16(n, off)
				for i := range h.s() {
					h.s()[i] = uint16(r.Uint32())
				}
				for _, c := range []struct {
					name      string
					tier, ref func([]float32, []uint16)
				}{{"FromBF16", k.FromBF16, fromBF16Generic}, {"FromF16", k.FromF16, fromF16Generic}} {
					got, want := newSlice(n, (off+3)%maxMisalign), make([]float32, n)
					c.tier(got.s(), h.s())
					c.ref(want, h.s())
					got.checkGuard(t, name(c.name, f, n, off))
					for i := range want {
						if math.Float32bits(got.s()[i]) != math.Float32bits(want[i]) {
							t.Fatalf("%s: %#04x → %#08x, generic %#08x", name(c.name, f, n, off), h.s()[i], math.Float32bits(got.s()[i]), math.Float32bits(want[i]))
						}
					}
				}
			})
		}
		// Every 16-bit pattern, both directions round-trip through the tier.
		all := make([]uint16, 1<<16)
		for i := range all {
			all[i] = uint16(i)
		}
		f32, want := make([]float32, len(all)), make([]float32, len(all))
		for _, c := range []struct {
			name      string
			tier, ref func([]float32, []uint16)
		}{{"FromBF16", k.FromBF16, fromBF16Generic}, {"FromF16", k.FromF16, fromF16Generic}} {
			c.tier(f32, all)
			c.ref(want, all)
			for i := range all {
				if math.Float32bits(f32[i]) != math.Float32bits(want[i]) {
					t.Fatalf("%s(%#04x) = %#08x, generic %#08x", c.name, i, math.Float32bits(f32[i]), math.Float32bits(want[i]))
				}
			}
		}
	})
}

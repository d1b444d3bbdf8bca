package simd

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// adamWConsts are the update constants of step t of PyTorch's default
// AdamW (β = 0.9, 0.999, ε = 1e-8) at learning rate lr with weight decay
// 0.01 and clipping factor clip, rounded as package nn rounds them.
func adamWConsts(t int, lr, clip float64) AdamWStep {
	b1, b2 := float32(0.9), float32(0.999)
	c1 := 1 - math.Pow(0.9, float64(t))
	c2 := 1 - math.Pow(0.999, float64(t))
	return AdamWStep{Clip: float32(clip), B1: b1, OneMinusB1: 1 - b1, B2: b2, OneMinusB2: 1 - b2,
		Shrink: float32(1 - lr*0.01), Step: float32(lr / c1), SC2: float32(1 / math.Sqrt(c2)), Eps: 1e-8}
}

// Every tier's AdamW gives the generic twin's bits, at every length and
// misalignment, without writing outside its four slices; over special
// values too (NaN and ±Inf gradients, subnormal moments).
func TestAdamW(t *testing.T) {
	forTiers(t, func(t *testing.T, k *Kernels) {
		r := rand.New(rand.NewPCG(17, 18))
		for _, f := range []flavor{normal, wide, special} {
			cases(func(n, off int) {
				s := adamWConsts(1+r.IntN(1000), math.Exp2(-20*r.Float64()), 0.25+r.Float64())
				w, g := input(r, n, off, f), input(r, n, (off+5)%maxMisalign, f)
				m, v := input(r, n, (off+9)%maxMisalign, f), input(r, n, (off+2)%maxMisalign, f)
				for i, x := range v.s() {
					v.s()[i] = float32(math.Abs(float64(x))) // a second moment is ≥ 0
				}
				ww, wm, wv := slices.Clone(w.s()), slices.Clone(m.s()), slices.Clone(v.s())
				adamWGeneric(ww, g.s(), wm, wv, &s)
				k.AdamW(w.s(), g.s(), m.s(), v.s(), &s)
				what := name("AdamW", f, n, off)
				for _, a := range []*arena{w, g, m, v} {
					a.checkGuard(t, what)
				}
				for i := range n {
					if !sameBits(w.s()[i], ww[i]) || !sameBits(m.s()[i], wm[i]) || !sameBits(v.s()[i], wv[i]) {
						t.Fatalf("%s: [%d] = w %v m %v v %v, generic w %v m %v v %v", what, i,
							w.s()[i], m.s()[i], v.s()[i], ww[i], wm[i], wv[i])
					}
				}
			})
		}
	})
}

// The generic twin against the update in float64, operation by operation
// rounded to float32 as the twin's contract says: any fused multiply-add
// the compiler slipped in (arm64 fuses by default) would show here.
func TestAdamWRounding(t *testing.T) {
	r := rand.New(rand.NewPCG(19, 20))
	r32 := func(x float64) float64 { return float64(float32(x)) }
	for range 100000 {
		s := adamWConsts(1+r.IntN(1000), math.Exp2(-20*r.Float64()), 0.25+r.Float64())
		w := []float32{float32(r.NormFloat64())}
		g := []float32{float32(r.NormFloat64() * math.Exp2(-10*r.Float64()))}
		m := []float32{float32(r.NormFloat64() * 1e-3)}
		v := []float32{float32(math.Abs(r.NormFloat64()) * 1e-6)}
		gi := r32(float64(g[0]) * float64(s.Clip))
		mi := r32(r32(float64(s.B1)*float64(m[0])) + r32(float64(s.OneMinusB1)*gi))
		vi := r32(r32(float64(s.B2)*float64(v[0])) + r32(r32(float64(s.OneMinusB2)*gi)*gi))
		d := r32(r32(r32(math.Sqrt(vi))*float64(s.SC2)) + float64(s.Eps))
		want := r32(r32(float64(w[0])*float64(s.Shrink)) - r32(r32(float64(s.Step)*mi)/d))
		adamWGeneric(w, g, m, v, &s)
		if float64(w[0]) != want || float64(m[0]) != mi || float64(v[0]) != vi {
			t.Fatalf("w %v m %v v %v, want %v %v %v", w[0], m[0], v[0], want, mi, vi)
		}
	}
}

// FuzzAdamW feeds arbitrary bit patterns as weights, gradients and
// moments (and, from the first nine words, the constants) to every tier
// and compares with the generic twin bit for bit.
func FuzzAdamW(f *testing.F) {
	f.Add([]byte{0, 0, 0x80, 0x3f, 0, 0, 0xc0, 0x7f, 1, 0, 0, 0, 0, 0, 0x80, 0xff, 0xcd, 0xcc, 0x4c, 0x3d})
	f.Fuzz(func(t *testing.T, b []byte) {
		x := floats(b)
		s := adamWConsts(3, 1e-3, 1)
		if len(x) >= 9 {
			c := x[:9]
			s = AdamWStep{c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8]}
		}
		n := len(x) / 4
		for _, tier := range f32Tiers() {
			in := slices.Clone(x)
			w, g, m, v := in[:n], in[n:2*n], in[2*n:3*n], in[3*n:4*n]
			ww, wm, wv := slices.Clone(w), slices.Clone(m), slices.Clone(v)
			adamWGeneric(ww, g, wm, wv, &s)
			Table(tier).AdamW(w, g, m, v, &s)
			for i := range n {
				if !sameBits(w[i], ww[i]) || !sameBits(m[i], wm[i]) || !sameBits(v[i], wv[i]) {
					t.Fatalf("%v [%d]: w %v m %v v %v, generic %v %v %v", tier, i, w[i], m[i], v[i], ww[i], wm[i], wv[i])
				}
			}
		}
	})
}

// BenchmarkAdamW times one update per tier, the generic twin included, on
// a slice that fits in L2 (compute-bound: the square root and division)
// and one of a 135M-parameter model's largest matrices (memory-bound:
// 28 bytes move per weight).
func BenchmarkAdamW(b *testing.B) {
	for _, n := range []int{1 << 14, 49152 * 576} {
		w, g, m, v := make([]float32, n), make([]float32, n), make([]float32, n), make([]float32, n)
		r := rand.New(rand.NewPCG(1, 2))
		gen(r, w, normal)
		gen(r, g, normal)
		s := adamWConsts(10, 1e-3, 1)
		for _, tier := range f32Tiers() {
			k := Table(tier)
			b.Run(fmt.Sprintf("%v/%d", tier, n), func(b *testing.B) {
				for b.Loop() {
					k.AdamW(w, g, m, v, &s)
				}
				b.ReportMetric(28*float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
			})
		}
	}
}

package simd

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// f32Tiers are the tiers whose float32 kernels differ: AVX512BF16 shares
// AVX512's, so tests of float32 kernels skip it.
func f32Tiers() []Tier {
	var ts []Tier
	for _, t := range Available() {
		if t != AVX512BF16 {
			ts = append(ts, t)
		}
	}
	return ts
}

// randBF16 returns bfloat16 values of mixed magnitudes and signs, with
// some zeros, rounded from normal deviates.
func randBF16(r *rand.Rand, n int) []uint16 {
	h := make([]uint16, n)
	for i := range h {
		v := float32(r.NormFloat64() * math.Exp2(float64(r.IntN(9)-4)))
		if r.IntN(16) == 0 {
			v = 0
		}
		h[i] = toBF16(v)
	}
	return h
}

// TestBF16Kernel drives each tier's bfloat16 micro-kernel on packed
// operands of several depths (rounded up to the kernel's KBlock) and
// checks every element of the tile against a float64 sum of the exact
// products. The AMX kernel runs only where the CPU and OS allow it.
func TestBF16Kernel(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, tier := range Available() {
		kern := Table(tier).BF16
		if kern == nil {
			continue
		}
		t.Run(tier.String(), func(t *testing.T) {
			MR, NR, kb := kern.MR, kern.NR, max(kern.KBlock, 1)
			for _, kp := range []int{1, 2, 3, 4, 7, 64, 257} {
				kp = (kp + kb - 1) / kb * kb
				for _, acc := range []bool{false, true} {
					a, b := randBF16(r, 2*kp*MR), randBF16(r, 2*kp*NR)
					ldc := NR + 3
					c := make([]float32, MR*ldc)
					for i := range c {
						c[i] = float32(r.NormFloat64())
					}
					c0 := append([]float32(nil), c...)
					if !acc {
						c[0], c[ldc+5] = float32(math.NaN()), float32(math.Inf(1))
					}
					kern.Run(kp, a, b, c, ldc, acc)
					for i := range MR {
						for j := range ldc {
							got := c[i*ldc+j]
							if j >= NR {
								if got != c0[i*ldc+j] {
									t.Fatalf("kp=%d: wrote c[%d,%d] outside the tile", kp, i, j)
								}
								continue
							}
							var s, sa float64
							for q := range kp {
								for h := range 2 {
									p := float64(fromBF16(a[((q/kb*MR+i)*kb+q%kb)*2+h])) * float64(fromBF16(b[(q*NR+j)*2+h]))
									s += p
									sa += math.Abs(p)
								}
							}
							if acc {
								s += float64(c0[i*ldc+j])
								sa += math.Abs(float64(c0[i*ldc+j]))
							}
							if math.Abs(float64(got)-s) > 0x1p-23*float64(2*kp+1)*sa+0x1p-120 {
								t.Fatalf("kp=%d acc=%v: c[%d,%d] = %v, want %v", kp, acc, i, j, got, s)
							}
						}
					}
				}
			}
		})
	}
}

// TestRoundBF16 checks the exported scalar conversions against the slice
// kernels at the rounding boundaries.
func TestRoundBF16(t *testing.T) {
	for _, f := range []float32{0, 1, -1, 1.00390625, 1.01171875, 3.4e38, float32(math.Inf(-1)), 1e-40} {
		var h [1]uint16
		toBF16Generic(h[:], []float32{f})
		if got := RoundBF16(f); got != h[0] {
			t.Fatalf("RoundBF16(%v) = %#x, want %#x", f, got, h[0])
		}
		if got := WidenBF16(h[0]); math.Float32bits(got) != uint32(h[0])<<16 {
			t.Fatalf("WidenBF16(%#x) = %v", h[0], got)
		}
	}
}

// TestAMXBF16 makes the permission request and checks that asking again
// gives the same answer (the request is made once). No AMX kernel exists
// yet: the answer only tells whether one could run.
func TestAMXBF16(t *testing.T) {
	ok := AMXBF16()
	if ok != AMXBF16() {
		t.Fatal("AMXBF16 changed its answer")
	}
	t.Logf("AMX-BF16 usable: %v", ok)
}

// daz widens a bfloat16 as VDPBF16PS reads it: subnormals are zero.
func daz(h uint16) float64 {
	if h&0x7f80 == 0 {
		return 0
	}
	return float64(fromBF16(h))
}

// FuzzMatVecBF16 feeds arbitrary bfloat16 weights (NaN, Inf and
// subnormals included) and float32 x to every tier's DotsBF16 (one input
// row) and BF16 micro-kernel and checks each element against a float64 sum: NaN
// exactly where the sum is NaN, and within the float32 summation bound
// where no partial sum can overflow.
func FuzzMatVecBF16(f *testing.F) {
	f.Add(uint8(3), uint8(17), []byte{1, 2, 3, 4, 0x80, 0x7f, 0xc0, 0xff})
	f.Add(uint8(5), uint8(33), []byte{0x3f, 0x80, 0x00, 0x01, 0xff, 0x80})
	f.Fuzz(func(t *testing.T, rows, cols uint8, data []byte) {
		nr, nc := int(rows%9), int(cols%70)
		word := func(i int) uint16 {
			if len(data) < 2 {
				return 0x3f80
			}
			return uint16(data[(2*i)%len(data)]) | uint16(data[(2*i+1)%len(data)])<<8
		}
		w := make([]uint16, nr*nc)
		for i := range w {
			w[i] = word(i)
		}
		x := make([]float32, nc)
		for i := range x {
			x[i] = fromBF16(word(len(w)+i)) * 1.5 // a float32 that is not a bfloat16
		}
		check := func(tier Tier, got float32, want, scale float64, what string) {
			if math.IsNaN(want) != (got != got) && !math.IsInf(scale, 0) && scale < 1e38 {
				t.Fatalf("%v %s: %v, want %v", tier, what, got, want)
			}
			if math.IsNaN(want) || math.IsInf(scale, 0) || scale >= 1e38 {
				return
			}
			if math.Abs(float64(got)-want) > 0x1p-23*float64(nc+2)*scale+0x1p-100 {
				t.Fatalf("%v %s: %v, want %v", tier, what, got, want)
			}
		}
		for _, tier := range Available() {
			y := make([]float32, nr)
			xs := make([]float32, SplitLen(nc))
			SplitBF16(xs, x)
			Table(tier).DotsBF16(y, nr, w, nc, xs, 0, 1, nr, nc)
			for i := range y {
				var s, sa float64
				for j := range nc {
					p := float64(fromBF16(w[i*nc+j])) * float64(x[j])
					s += p
					sa += math.Abs(p)
				}
				check(tier, y[i], s, sa, fmt.Sprintf("DotsBF16 %dx%d y[%d]", nr, nc, i))
			}
			kern := Table(tier).BF16
			if kern == nil || kern.KBlock > 1 || nc == 0 { // blocked layouts: TestBF16Kernel
				continue
			}
			// The micro-kernel: A from the weights, B from x rounded.
			kp := (nc + 1) / 2
			a, b := make([]uint16, 2*kp*kern.MR), make([]uint16, 2*kp*kern.NR)
			for i := range a {
				a[i] = word(i)
			}
			for i := range b {
				b[i] = toBF16(x[i%nc])
			}
			c := make([]float32, kern.MR*kern.NR)
			kern.Run(kp, a, b, c, kern.NR, false)
			for i := range kern.MR {
				for j := range kern.NR {
					var s, sa float64
					for q := range 2 * kp {
						p := daz(a[(q/2*kern.MR+i)*2+q%2]) * daz(b[(q/2*kern.NR+j)*2+q%2])
						s += p
						sa += math.Abs(p)
					}
					// Results below 2^-126 flush to zero at each step.
					check(tier, c[i*kern.NR+j], s, sa+float64(2*kp)*0x1p-126*0x1p23, fmt.Sprintf("BF16 kernel c[%d,%d]", i, j))
				}
			}
		}
	})
}

// TestExhaustiveBF16 widens every one of the 65,536 bfloat16 patterns
// through each tier's DotsBF16 (as weights times 1, in the vector body)
// and BF16 micro-kernel (as A times 1) and checks the value: exact, NaN
// for NaN, and for VDPBF16PS zero for subnormals. It is cheap enough to
// run without SIMD_EXHAUSTIVE.
func TestExhaustiveBF16(t *testing.T) {
	const cols = 32 // whole vectors on every tier
	w := make([]uint16, 65536*cols)
	for p := range 65536 {
		w[p*cols] = uint16(p)
	}
	x := make([]float32, cols)
	for i := range x {
		x[i] = 1
	}
	for _, tier := range Available() {
		y := make([]float32, 65536)
		xs := make([]float32, SplitLen(cols))
		SplitBF16(xs, x)
		Table(tier).DotsBF16(y, 0, w, cols, xs, 0, 1, 65536, cols)
		for p, got := range y {
			want := fromBF16(uint16(p))
			if want != want && got == got || want == want && got != want {
				t.Fatalf("%v: DotsBF16 widened %#04x to %v, want %v", tier, p, got, want)
			}
		}
		kern := Table(tier).BF16
		if kern == nil || kern.KBlock > 1 { // blocked layouts: TestBF16Kernel
			continue
		}
		MR, NR := kern.MR, kern.NR
		a, b := make([]uint16, 2*MR), make([]uint16, 2*NR)
		for j := range NR {
			b[2*j] = 0x3f80 // 1.0 in the low half, 0 in the high
		}
		c := make([]float32, MR*NR)
		for p0 := 0; p0 < 65536; p0 += MR {
			for i := range MR {
				a[2*i] = uint16(p0 + i)
			}
			kern.Run(1, a, b, c, NR, false)
			for i := range MR {
				h := uint16(p0 + i)
				want := fromBF16(h)
				if h&0x7f80 == 0 {
					want = 0 // subnormal inputs read as zero
				}
				for j := range NR {
					got := c[i*NR+j]
					if want != want && got == got || want == want && got != want {
						t.Fatalf("%v: BF16 kernel widened %#04x to %v, want %v", tier, h, got, want)
					}
				}
			}
		}
	}
}

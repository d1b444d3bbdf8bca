package simd

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// dotsCase is one call of Dots or DotsBF16 with guarded, misaligned
// operands: rows of w and x padded with NaN past k (a kernel that reads
// them returns NaN) and y rows with guard words between the n outputs.
type dotsCase struct {
	m, n, k, ldw, ldx, ldy int
	w                      *arena // float32 weights
	w16                    *arena16
	x, y                   *arena
	bf16                   bool
}

func newDotsCase(r *rand.Rand, bf16 bool, m, n, k, off int) *dotsCase {
	c := &dotsCase{m: m, n: n, k: k, bf16: bf16}
	c.ldw, c.ldy = k+off%5, n+1+off%3
	c.ldx = k + (off*7)%5
	if bf16 {
		c.ldx = SplitLen(k) + (off*7)%5
	}
	nan := float32(math.NaN())
	if bf16 {
		c.w16 = newSlice16(n*c.ldw, off)
		w := c.w16.s()
		copy(w, randBF16(r, len(w)))
		for i := range n {
			for j := k; j < c.ldw; j++ {
				w[i*c.ldw+j] = 0x7fc0
			}
		}
	} else {
		c.w = newSlice(n*c.ldw, off)
		w := c.w.s()
		gen(r, w, normal)
		for i := range n {
			for j := k; j < c.ldw; j++ {
				w[i*c.ldw+j] = nan
			}
		}
	}
	c.x = newSlice(m*c.ldx, (off*5)%maxMisalign)
	x := c.x.s()
	for i := range x {
		x[i] = nan
	}
	for rr := range m {
		row := make([]float32, k)
		gen(r, row, normal)
		if bf16 {
			SplitBF16(x[rr*c.ldx:], row)
		} else {
			copy(x[rr*c.ldx:], row)
		}
	}
	c.y = newSlice(m*c.ldy, (off*3)%maxMisalign)
	y := c.y.s()
	for i := range y {
		y[i] = math.Float32frombits(guardBits)
	}
	return c
}

// run calls the tier's kernel on the case's whole operands.
func (c *dotsCase) run(k *Kernels) {
	if c.bf16 {
		k.DotsBF16(c.y.s(), c.ldy, c.w16.s(), c.ldw, c.x.s(), c.ldx, c.m, c.n, c.k)
	} else {
		k.Dots(c.y.s(), c.ldy, c.w.s(), c.ldw, c.x.s(), c.ldx, c.m, c.n, c.k)
	}
}

// one returns output (r, i) from a call on that weight row and input row
// alone.
func (c *dotsCase) one(k *Kernels, r, i int) float32 {
	var y [1]float32
	if c.bf16 {
		k.DotsBF16(y[:], 1, c.w16.s()[i*c.ldw:i*c.ldw+c.k], c.k, c.x.s()[r*c.ldx:r*c.ldx+SplitLen(c.k)], 0, 1, 1, c.k)
	} else {
		k.Dots(y[:], 1, c.w.s()[i*c.ldw:i*c.ldw+c.k], c.k, c.x.s()[r*c.ldx:r*c.ldx+c.k], 0, 1, 1, c.k)
	}
	return y[0]
}

// exact returns the float64 sum of output (r, i) and of its terms'
// magnitudes.
func (c *dotsCase) exact(r, i int) (s, sa float64) {
	x := c.x.s()[r*c.ldx:]
	for j := range c.k {
		var wv, xv float64
		if c.bf16 {
			wv, xv = float64(fromBF16(c.w16.s()[i*c.ldw+j])), float64(x[splitAt(j)])
		} else {
			wv, xv = float64(c.w.s()[i*c.ldw+j]), float64(x[j])
		}
		s += wv * xv
		sa += math.Abs(wv * xv)
	}
	return s, sa
}

// check compares the case's y, after run, with the float64 sums, and the
// words between the outputs with the guard.
func (c *dotsCase) check(t *testing.T, what string) {
	t.Helper()
	c.y.checkGuard(t, what)
	c.x.checkGuard(t, what)
	if c.w != nil {
		c.w.checkGuard(t, what)
	}
	y := c.y.s()
	for r := range c.m {
		for i := range c.ldy {
			got := y[r*c.ldy+i]
			if i >= c.n {
				if math.Float32bits(got) != guardBits {
					t.Fatalf("%s: wrote y[%d, %d] past the %d outputs", what, r, i, c.n)
				}
				continue
			}
			s, sa := c.exact(r, i)
			if math.Abs(float64(got)-s) > 0x1p-23*float64(c.k+2)*sa+0x1p-120 || got != got {
				t.Fatalf("%s: y[%d, %d] = %v, float64 %v", what, r, i, got, s)
			}
		}
	}
}

// TestDots runs every tier's Dots and DotsBF16 over every column count
// 0…300 and a few of the decoder's, with the row counts and misalignments
// varying together, against a float64 sum; and checks that every output
// equals, bit for bit, the same tier's output from a call on its two rows
// alone.
func TestDots(t *testing.T) {
	ks := make([]int, 0, 310)
	for k := range 301 {
		ks = append(ks, k)
	}
	ks = append(ks, 511, 576, 1025, 1536)
	for _, tier := range Available() {
		kern := Table(tier)
		t.Run(tier.String(), func(t *testing.T) {
			r := rand.New(rand.NewPCG(11, uint64(tier)))
			for _, bf16 := range []bool{false, true} {
				for _, k := range ks {
					if raceEnabled && k%3 != 0 && k <= 300 {
						// The race detector slows these Go loops tenfold;
						// CI runs every length without it.
						continue
					}
					m, n, off := 1+k%9, 1+(k/9)%11, k%maxMisalign
					if k > 300 {
						m, n = 9, 7
					}
					c := newDotsCase(r, bf16, m, n, k, off)
					what := fmt.Sprintf("bf16=%v m=%d n=%d k=%d off=%d", bf16, m, n, k, off)
					c.run(kern)
					c.check(t, what)
					if raceEnabled && k%7 != 0 {
						continue
					}
					y := c.y.s()
					for rr := range m {
						for i := range n {
							if one := c.one(kern, rr, i); !sameBits(one, y[rr*c.ldy+i]) {
								t.Fatalf("%s: y[%d, %d] = %v in the block, %v alone", what, rr, i, y[rr*c.ldy+i], one)
							}
						}
					}
				}
			}
		})
	}
}

// TestDotsNonFinite puts a NaN or an infinity in one weight row and
// checks that exactly that row's outputs are non-finite: blocks share
// loads, never sums.
func TestDotsNonFinite(t *testing.T) {
	for _, tier := range Available() {
		kern := Table(tier)
		r := rand.New(rand.NewPCG(12, uint64(tier)))
		for _, bf16 := range []bool{false, true} {
			for _, bad := range []int{0, 2, 5} {
				m, n, k := 6, 7, 70
				c := newDotsCase(r, bf16, m, n, k, 3)
				if bf16 {
					c.w16.s()[bad*c.ldw+bad*11] = 0x7f80 // +Inf
				} else {
					c.w.s()[bad*c.ldw+bad*11] = float32(math.NaN())
				}
				c.run(kern)
				y := c.y.s()
				for rr := range m {
					for i := range n {
						v := float64(y[rr*c.ldy+i])
						if (math.IsNaN(v) || math.IsInf(v, 0)) != (i == bad) {
							t.Fatalf("%v bf16=%v: NaN in row %d, y[%d, %d] = %v", tier, bf16, bad, rr, i, v)
						}
					}
				}
			}
		}
	}
}

// TestSplitBF16 checks the split order against its definition.
func TestSplitBF16(t *testing.T) {
	for _, k := range []int{0, 1, 2, 31, 32, 33, 64, 70} {
		x := make([]float32, k)
		for i := range x {
			x[i] = float32(i + 1)
		}
		dst := make([]float32, SplitLen(k)+1)
		dst[len(dst)-1] = -1
		SplitBF16(dst, x)
		for c := 0; c < SplitLen(k); c += 32 {
			for l := range 16 {
				for h := range 2 {
					want := float32(0)
					if j := c + 2*l + h; j < k {
						want = x[j]
					}
					if got := dst[c+16*h+l]; got != want {
						t.Fatalf("k=%d: dst[%d] = %v, want %v", k, c+16*h+l, got, want)
					}
				}
			}
		}
		for j := range k {
			if dst[splitAt(j)] != x[j] {
				t.Fatalf("k=%d: splitAt(%d) = %d holds %v", k, j, splitAt(j), dst[splitAt(j)])
			}
		}
		if dst[len(dst)-1] != -1 {
			t.Fatalf("k=%d: wrote past SplitLen", k)
		}
	}
}

// FuzzDots feeds arbitrary shapes and bit patterns to every tier's Dots
// and DotsBF16: each output NaN exactly where its float64 sum is, within
// the float32 summation bound where nothing overflows, and equal to the
// same tier's output from a call on its two rows alone.
func FuzzDots(f *testing.F) {
	f.Add(uint8(3), uint8(5), uint16(17), []byte{1, 2, 3, 4, 0x80, 0x7f, 0xc0, 0xff})
	f.Add(uint8(9), uint8(4), uint16(576), []byte{0x3f, 0x80, 0x00, 0x01, 0xff, 0x80, 0x12, 0x40})
	f.Fuzz(func(t *testing.T, mb, nb uint8, kb uint16, data []byte) {
		m, n, k := 1+int(mb%9), int(nb%10), int(kb%700)
		word := func(i int) uint16 {
			if len(data) < 2 {
				return 0x3f80
			}
			return uint16(data[(2*i)%len(data)]) | uint16(data[(2*i+1)%len(data)])<<8 ^ uint16(i*0x9e37)
		}
		w := make([]float32, n*k)
		w16 := make([]uint16, n*k)
		for i := range w {
			w16[i] = word(i)
			w[i] = fromBF16(w16[i]) * 1.25
		}
		x := make([]float32, m*k)
		xs := make([]float32, m*SplitLen(k))
		for i := range x {
			x[i] = fromBF16(word(len(w)+i)) * 1.5
		}
		for r := range m {
			SplitBF16(xs[r*SplitLen(k):], x[r*k:(r+1)*k])
		}
		for _, tier := range Available() {
			kern := Table(tier)
			for _, bf16 := range []bool{false, true} {
				y := make([]float32, m*n)
				if bf16 {
					kern.DotsBF16(y, n, w16, k, xs, SplitLen(k), m, n, k)
				} else {
					kern.Dots(y, n, w, k, x, k, m, n, k)
				}
				for r := range m {
					for i := range n {
						var s, sa float64
						var one [1]float32
						if bf16 {
							for j := range k {
								p := float64(fromBF16(w16[i*k+j])) * float64(x[r*k+j])
								s, sa = s+p, sa+math.Abs(p)
							}
							kern.DotsBF16(one[:], 1, w16[i*k:(i+1)*k], k, xs[r*SplitLen(k):(r+1)*SplitLen(k)], 0, 1, 1, k)
						} else {
							for j := range k {
								p := float64(w[i*k+j]) * float64(x[r*k+j])
								s, sa = s+p, sa+math.Abs(p)
							}
							kern.Dots(one[:], 1, w[i*k:(i+1)*k], k, x[r*k:(r+1)*k], 0, 1, 1, k)
						}
						got := y[r*n+i]
						what := fmt.Sprintf("%v bf16=%v m=%d n=%d k=%d y[%d, %d]", tier, bf16, m, n, k, r, i)
						if !sameBits(one[0], got) {
							t.Fatalf("%s = %v in the block, %v alone", what, got, one[0])
						}
						if math.IsInf(sa, 0) || sa >= 1e38 {
							continue // partial sums may overflow, depending on their order
						}
						if math.IsNaN(s) != (got != got) || !math.IsNaN(s) && math.Abs(float64(got)-s) > 0x1p-23*float64(k+2)*sa+0x1p-120 {
							t.Fatalf("%s = %v, float64 %v", what, got, s)
						}
					}
				}
			}
		}
	})
}

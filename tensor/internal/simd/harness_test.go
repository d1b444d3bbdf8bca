package simd

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// The harness runs every kernel of every available tier over every length
// 0…300 and a few large ones, at every start misalignment 0…15, with guard
// regions after each slice, and compares the result with the generic twin
// (or with a float64 reference where tiers may round differently).

// lengths are the slice lengths every kernel is run at.
var lengths = func() []int {
	var ls []int
	for n := 0; n <= 300; n++ {
		ls = append(ls, n)
	}
	return append(ls, 511, 1023, 1025, BlockLen-1, BlockLen, BlockLen+1, 3*BlockLen+17, 49152)
}()

const (
	maxMisalign = 16
	guardLen    = 16
	guardBits   = 0x7fa5a5a5 // a NaN payload no kernel produces
)

// arena hands out float32 and uint16 slices at a chosen misalignment,
// followed by guard words that must survive the kernel call.
type arena struct {
	buf   []float32
	off   int
	n     int
	guard bool
}

func newSlice(n, off int) *arena {
	a := &arena{buf: make([]float32, off+n+guardLen), off: off, n: n}
	for i := range a.buf {
		a.buf[i] = math.Float32frombits(guardBits)
	}
	return a
}

// s returns the slice under test; its capacity ends at its length so that
// a kernel writing past the end cannot do so through append-like slicing,
// only through a real out-of-bounds store, which checkGuard catches.
func (a *arena) s() []float32 { return a.buf[a.off : a.off+a.n : a.off+a.n] }

func (a *arena) checkGuard(t *testing.T, what string) {
	t.Helper()
	for i := 0; i < a.off; i++ {
		if math.Float32bits(a.buf[i]) != guardBits {
			t.Fatalf("%s: wrote before the slice at offset %d", what, i-a.off)
		}
	}
	for i := a.off + a.n; i < len(a.buf); i++ {
		if math.Float32bits(a.buf[i]) != guardBits {
			t.Fatalf("%s: wrote %d past the end of the slice", what, i-(a.off+a.n))
		}
	}
}

type arena16 struct {
	buf []uint16
	off int
	n   int
}

func newSlice16(n, off int) *arena16 {
	a := &arena16{buf: make([]uint16, off+n+guardLen), off: off, n: n}
	for i := range a.buf {
		a.buf[i] = 0xa5a5
	}
	return a
}

func (a *arena16) s() []uint16 { return a.buf[a.off : a.off+a.n : a.off+a.n] }

func (a *arena16) checkGuard(t *testing.T, what string) {
	t.Helper()
	for i, v := range a.buf {
		if (i < a.off || i >= a.off+a.n) && v != 0xa5a5 {
			t.Fatalf("%s: wrote outside the slice at index %d", what, i-a.off)
		}
	}
}

// gen fills x with test data of the given flavor.
type flavor int

const (
	normal  flavor = iota // standard normal ×3
	wide                  // log-uniform magnitudes over the whole float32 range
	special               // normal, with NaN, ±Inf, ±0, subnormals and ±1e38 sprinkled in
	logits                // N(0, 1e4): the stress input of the loss packages
)

func (f flavor) String() string {
	return [...]string{"normal", "wide", "special", "logits"}[f]
}

var specials = []float32{
	float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)),
	0, float32(math.Copysign(0, -1)),
	math.Float32frombits(1), math.Float32frombits(0x007fffff), -math.Float32frombits(0x00400000),
	1e38, -1e38, math.MaxFloat32, -math.MaxFloat32, math.SmallestNonzeroFloat32,
	88.72283, 88.72284, -87.33654, -87.33655, -103.97, 1, -1,
}

func gen(r *rand.Rand, x []float32, f flavor) {
	for i := range x {
		switch f {
		case normal:
			x[i] = float32(3 * r.NormFloat64())
		case wide:
			v := math.Exp2(r.Float64()*250 - 125)
			if r.IntN(2) == 0 {
				v = -v
			}
			x[i] = float32(v)
		case special:
			if r.IntN(8) == 0 {
				x[i] = specials[r.IntN(len(specials))]
			} else {
				x[i] = float32(3 * r.NormFloat64())
			}
		case logits:
			x[i] = float32(1e4 * r.NormFloat64())
		}
	}
}

// forTiers runs f once per available tier, the generic twin included: the
// checks against float64 references hold for every tier, and the checks
// against the twin are trivially true for the twin itself.
func forTiers(t *testing.T, f func(t *testing.T, k *Kernels)) {
	for _, tier := range f32Tiers() {
		t.Run(tier.String(), func(t *testing.T) { f(t, Table(tier)) })
	}
}

// cases calls f for every length × misalignment (misalignment 0…15 for
// lengths up to 64 and a few large ones; 0, 1, 3, 7 elsewhere, which
// covers every residue of the vector width at each length; 0 and 3 under
// the race detector).
func cases(f func(n, off int)) {
	for _, n := range lengths {
		offs := []int{0, 1, 3, 7}
		if n <= 64 || n == 1023 || n == BlockLen+1 {
			offs = offs[:0]
			for o := range maxMisalign {
				offs = append(offs, o)
			}
		}
		if raceEnabled {
			// The race detector slows the harness's Go loops tenfold and
			// cannot see into assembly; CI runs the full fan-out without
			// it, and under it every length at two misalignments.
			offs = []int{0, 3}
		}
		for _, off := range offs {
			f(n, off)
		}
	}
}

// sameBits reports whether a and b are identical, counting any two NaNs as
// equal (NaN payloads are not part of a kernel's contract).
func sameBits(a, b float32) bool {
	if a != a && b != b {
		return true
	}
	return math.Float32bits(a) == math.Float32bits(b)
}

// ulps returns the distance from got to the exact value want in units in
// the last place of float32 at want. Matching infinities and NaNs are 0 ulp;
// a mismatch of kind is +Inf.
func ulps(got float32, want float64) float64 {
	switch {
	case math.IsNaN(want) || got != got:
		if math.IsNaN(want) && got != got {
			return 0
		}
		return math.Inf(1)
	case math.IsInf(float64(got), 0) || math.IsInf(want, 0):
		if float64(got) == want {
			return 0
		}
		if math.Abs(want) > math.MaxFloat32 && float64(got) == math.Copysign(math.Inf(1), want) {
			return 0
		}
		return math.Inf(1)
	}
	return math.Abs(float64(got)-want) / ulpAt(want)
}

// ulpAt returns the spacing of float32 values at |v| (1 for non-finite v,
// where callers compare kinds rather than distances).
func ulpAt(v float64) float64 {
	w := float32(math.Abs(v))
	if math.IsInf(float64(w), 0) || math.IsNaN(v) {
		return 1
	}
	if w == math.MaxFloat32 {
		return float64(w) - float64(math.Nextafter32(w, 0))
	}
	return float64(math.Nextafter32(w, float32(math.Inf(1)))) - float64(w)
}

func name(kernel string, f flavor, n, off int) string {
	return fmt.Sprintf("%s/%v/n=%d/off=%d", kernel, f, n, off)
}

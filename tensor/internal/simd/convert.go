package simd

import "math"

// Half-precision conversions. Both directions are exact functions of the
// bits, so every tier must agree with these twins bit for bit.

// toBF16 rounds to nearest, ties to even. A NaN keeps its sign and top
// payload bits and is made quiet, so it can never round into ±Inf.
func toBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x0040
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

func fromBF16(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// toF16 converts to IEEE 754 binary16 with round to nearest, ties to even,
// including the subnormal range; overflow gives ±Inf. A NaN keeps its sign
// and top 10 payload bits and is made quiet, as x86's VCVTPS2PH and arm64's
// FCVTN do.
func toF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	a := b & 0x7fffffff
	switch {
	case a > 0x7f800000: // NaN
		return sign | 0x7e00 | uint16(a>>13)&0x03ff
	case a >= 0x477ff000: // rounds to ≥ 65520: Inf
		return sign | 0x7c00
	case a >= 0x38800000: // normal binary16
		a += 0x0fff + (a>>13)&1 // round the 13 dropped bits to nearest even
		return sign | uint16((a-0x38000000)>>13)
	case a >= 0x33000000: // subnormal binary16 (≥ 2^-25 rounds up to the smallest)
		e := a >> 23                   // 102 … 112
		m := a&0x007fffff | 0x00800000 // implicit bit
		shift := 126 - e               // 14 … 24: m>>shift is the result
		half := uint32(1) << (shift - 1)
		r := m >> shift
		rem := m & (1<<shift - 1)
		if rem > half || rem == half && r&1 == 1 {
			r++
		}
		return sign | uint16(r)
	}
	return sign // rounds to ±0
}

// fromF16 is exact: every binary16 value is a float32 value.
func fromF16(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	e := uint32(h>>10) & 0x1f
	m := uint32(h & 0x03ff)
	switch {
	case e == 0x1f && m != 0: // NaN, made quiet as hardware converters do
		return math.Float32frombits(sign | 0x7fc00000 | m<<13)
	case e == 0x1f: // ±Inf
		return math.Float32frombits(sign | 0x7f800000)
	case e != 0: // normal
		return math.Float32frombits(sign | (e+112)<<23 | m<<13)
	case m == 0:
		return math.Float32frombits(sign)
	}
	// subnormal: m·2^-24, normalize
	f := float32(m) * (1.0 / (1 << 24))
	return math.Float32frombits(sign | math.Float32bits(f))
}

func toBF16Generic(dst []uint16, x []float32) {
	dst = dst[:len(x)]
	for i, v := range x {
		dst[i] = toBF16(v)
	}
}

func fromBF16Generic(dst []float32, x []uint16) {
	dst = dst[:len(x)]
	for i, v := range x {
		dst[i] = fromBF16(v)
	}
}

func toF16Generic(dst []uint16, x []float32) {
	dst = dst[:len(x)]
	for i, v := range x {
		dst[i] = toF16(v)
	}
}

func fromF16Generic(dst []float32, x []uint16) {
	dst = dst[:len(x)]
	for i, v := range x {
		dst[i] = fromF16(v)
	}
}

package simd

import "math"

// Exp and Log follow Cephes' expf and logf (S. L. Moshier): a Cody–Waite
// range reduction and a short minimax polynomial, about 1 ulp in float32.
// Every tier evaluates the same steps with the same constants; the assembly
// fuses the multiply-adds, so tiers may differ from the twin by an ulp.

const (
	// ExpOverflow is the largest x with a finite float32 exp(x); above it
	// Exp returns +Inf.
	ExpOverflow = 88.72283935546875
	// ExpUnderflow is ln of the smallest normal float32. Below it Exp
	// returns 0: results that would be subnormal are flushed, so a row of
	// very negative logits never takes the slow subnormal path.
	ExpUnderflow = -87.33654475055310898657

	log2e  = 1.44269504088896341
	ln2Hi  = 0.693359375    // ln 2 rounded to 9 bits: n·ln2Hi is exact
	ln2Lo  = -2.12194440e-4 // ln 2 − ln2Hi
	sqrtHf = 0.707106781186547524

	expP0 = 1.9875691500e-4
	expP1 = 1.3981999507e-3
	expP2 = 8.3334519073e-3
	expP3 = 4.1665795894e-2
	expP4 = 1.6666665459e-1
	expP5 = 5.0000001201e-1

	logP0 = 7.0376836292e-2
	logP1 = -1.1514610310e-1
	logP2 = 1.1676998740e-1
	logP3 = -1.2420140846e-1
	logP4 = 1.4249322787e-1
	logP5 = -1.6668057665e-1
	logP6 = 2.0000714765e-1
	logP7 = -2.4999993993e-1
	logP8 = 3.3333331174e-1
)

// exp32 is the scalar algorithm every tier vectorizes.
//
//	n = round(x·log2e)            (to nearest, ties to even)
//	r = x − n·ln2Hi − n·ln2Lo     (|r| ≤ ln2/2)
//	p = 1 + r + r²·P(r)
//	exp(x) = p · 2^(n>>1) · 2^(n − n>>1)
//
// The scale is split in two so that n = 128 (x just below ExpOverflow)
// needs no special case.
func exp32(x float32) float32 {
	switch {
	case x != x:
		return x
	case x > ExpOverflow:
		return float32(math.Inf(1))
	case x < ExpUnderflow:
		return 0
	}
	n := float32(math.RoundToEven(float64(x * log2e)))
	r := x - n*ln2Hi
	r -= n * ln2Lo
	z := r * r
	p := expP0*r + expP1
	p = p*r + expP2
	p = p*r + expP3
	p = p*r + expP4
	p = p*r + expP5
	p = p*z + r
	p += 1
	ni := int32(n)
	e1 := ni >> 1
	e2 := ni - e1
	return p * math.Float32frombits(uint32(e1+127)<<23) * math.Float32frombits(uint32(e2+127)<<23)
}

// log32 is the scalar algorithm every tier vectorizes.
//
//	x = m·2^e, m in [√½, √2)      (subnormal x is first scaled by 2^23)
//	f = m − 1
//	log(x) = f − f²/2 + f³·P(f) + e·ln2Lo + e·ln2Hi
func log32(x float32) float32 {
	switch {
	case x != x:
		return x
	case x < 0:
		return float32(math.NaN())
	case x == 0:
		return float32(math.Inf(-1))
	case x > math.MaxFloat32:
		return x
	}
	b := math.Float32bits(x)
	var e float32
	if b < 0x00800000 { // subnormal
		x *= 1 << 23
		b = math.Float32bits(x)
		e = -23
	}
	e += float32(int32(b>>23) - 126)
	m := math.Float32frombits(b&0x007fffff | 0x3f000000) // [0.5, 1)
	if m < sqrtHf {
		e--
		m = m + m - 1
	} else {
		m -= 1
	}
	z := m * m
	y := logP0*m + logP1
	y = y*m + logP2
	y = y*m + logP3
	y = y*m + logP4
	y = y*m + logP5
	y = y*m + logP6
	y = y*m + logP7
	y = y*m + logP8
	y = y * m * z
	y += e * ln2Lo
	y -= 0.5 * z
	return m + y + e*ln2Hi
}

func expGeneric(dst, x []float32) {
	dst = dst[:len(x)]
	for i, v := range x {
		dst[i] = exp32(v)
	}
}

func logGeneric(dst, x []float32) {
	dst = dst[:len(x)]
	for i, v := range x {
		dst[i] = log32(v)
	}
}

// softmaxBlock is how many elements the generic twin reduces at a time in
// a stack buffer: the block's max, then the sum of exp(x − max) from cache.
const softmaxBlock = 256

// softmaxStats returns m = max(x) and s = Σ exp(x − m) in one pass over
// memory, block by block: when a block raises the running max, the sum so
// far is rescaled by exp(old − new). ok is false when x is empty or holds a
// NaN or +Inf, or every element is −Inf; the callers then produce NaN.
func softmaxStats(x []float32) (m float32, s float64, ok bool) {
	var buf [softmaxBlock]float32
	m = float32(math.Inf(-1))
	for len(x) > 0 {
		n := min(len(x), softmaxBlock)
		blk := x[:n]
		bm := maxGeneric(blk)
		if bm != bm || bm > math.MaxFloat32 {
			return bm, 0, false
		}
		if bm < -math.MaxFloat32 { // a block of only −Inf adds nothing
			x = x[n:]
			continue
		}
		if bm > m {
			s *= math.Exp(float64(m) - float64(bm))
			m = bm
		}
		t := buf[:n]
		for i, v := range blk {
			t[i] = v - m
		}
		expGeneric(t, t)
		s += float64(sumGeneric(t))
		x = x[n:]
	}
	return m, s, s > 0
}

func logSumExpGeneric(x []float32) float64 {
	m, s, ok := softmaxStats(x)
	switch {
	case len(x) == 0 || m < -math.MaxFloat32 && m == m:
		return math.Inf(-1) // empty, or every element −Inf
	case !ok:
		return float64(m) // NaN or +Inf
	}
	return float64(m) + math.Log(s)
}

func softmaxGeneric(dst []float32, alpha float32, x []float32) {
	dst = dst[:len(x)]
	m, s, ok := softmaxStats(x)
	if !ok {
		fillNaN(dst)
		return
	}
	softmaxOutGeneric(dst, x, m, float32(float64(alpha)/s))
}

func softmaxOutGeneric(dst, x []float32, m, inv float32) {
	dst = dst[:len(x)]
	for i, v := range x {
		dst[i] = exp32(v-m) * inv
	}
}

func logSoftmaxGeneric(dst, x []float32) {
	dst = dst[:len(x)]
	m, s, ok := softmaxStats(x)
	if !ok {
		fillNaN(dst)
		return
	}
	ls := float32(math.Log(s))
	for i, v := range x {
		dst[i] = (v - m) - ls
	}
}

func fillNaN(dst []float32) {
	nan := float32(math.NaN())
	for i := range dst {
		dst[i] = nan
	}
}

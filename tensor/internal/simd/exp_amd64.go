//go:build gc && !purego

package simd

import "math"

// expAVX2 and expAVX512 install Exp, Log, LogSumExp, Softmax and
// LogSoftmax for each amd64 tier.
//
// The assembly (exp_avx2_amd64.s, exp_avx512_amd64.s) evaluates the same
// Cephes steps as exp32 and log32 with the constants below. Softmax and its
// relatives split the work: the assembly makes the one pass over memory
// that yields m = max x and s = Σ exp(x − m) (float32 lanes within a block,
// float64 across blocks), Go turns s into ln s or 1/s in float64, and a
// second assembly pass writes the row. Rows the fast path cannot handle
// (empty, NaN, +Inf, only −Inf) are recognised by s not being positive or
// m being −Inf, and go to the generic twin, so their results are the
// twin's by construction.
func expAVX2(k *Kernels) {
	k.Exp = expY
	k.Log = logY
	k.LogSumExp = func(x []float32) float64 { return logSumExpWith(x, softmaxStatsY) }
	k.Softmax = func(dst []float32, alpha float32, x []float32) {
		softmaxWith(dst, alpha, x, softmaxStatsY, softmaxOutY)
	}
	k.LogSoftmax = func(dst, x []float32) { logSoftmaxWith(dst, x, softmaxStatsY, logSoftmaxOutY) }
	k.SoftmaxOut = softmaxOutY
}

func expAVX512(k *Kernels) {
	k.Exp = expZ
	k.Log = logZ
	k.LogSumExp = func(x []float32) float64 { return logSumExpWith(x, softmaxStatsZ) }
	k.Softmax = func(dst []float32, alpha float32, x []float32) {
		softmaxWith(dst, alpha, x, softmaxStatsZ, softmaxOutZ)
	}
	k.LogSoftmax = func(dst, x []float32) { logSoftmaxWith(dst, x, softmaxStatsZ, logSoftmaxOutZ) }
	k.SoftmaxOut = softmaxOutZ
}

// Assembly kernels. Y is the AVX2+FMA tier, Z the AVX-512 one.
//
// softmaxStats returns m = max x and s = Σ exp(x − m), read block by block
// (softmaxStatsBlock elements at a time: the block's max from memory, then
// its sum from L1, rescaling the running sum when the max rises). s is NaN
// when x holds a NaN or +Inf; m is −Inf when x is empty or only −Inf.
//
// softmaxOut writes dst = exp(x − m)·inv; logSoftmaxOut writes
// dst = (x − m) − ls. Both need x − m ≤ 0 with no NaN, which softmaxStats
// has checked.

//go:noescape
func expY(dst, x []float32)

//go:noescape
func logY(dst, x []float32)

//go:noescape
func softmaxStatsY(x []float32) (m float32, s float64)

//go:noescape
func softmaxOutY(dst, x []float32, m, inv float32)

//go:noescape
func logSoftmaxOutY(dst, x []float32, m, ls float32)

//go:noescape
func expZ(dst, x []float32)

//go:noescape
func logZ(dst, x []float32)

//go:noescape
func softmaxStatsZ(x []float32) (m float32, s float64)

//go:noescape
func softmaxOutZ(dst, x []float32, m, inv float32)

//go:noescape
func logSoftmaxOutZ(dst, x []float32, m, ls float32)

// softmaxStatsBlock is the block length of the assembly's first pass (the
// $2048 in softmaxStatsY and softmaxStatsZ): small enough that the block is
// still in L1 when it is read the second time.
const softmaxStatsBlock = 2048

func logSumExpWith(x []float32, stats func([]float32) (float32, float64)) float64 {
	m, s := stats(x)
	if !(s > 0) || m < -math.MaxFloat32 {
		return logSumExpGeneric(x)
	}
	return float64(m) + math.Log(s)
}

func softmaxWith(dst []float32, alpha float32, x []float32, stats func([]float32) (float32, float64), out func(dst, x []float32, m, inv float32)) {
	dst = dst[:len(x)]
	m, s := stats(x)
	if !(s > 0) || m < -math.MaxFloat32 {
		softmaxGeneric(dst, alpha, x)
		return
	}
	out(dst, x, m, float32(float64(alpha)/s))
}

func logSoftmaxWith(dst, x []float32, stats func([]float32) (float32, float64), out func(dst, x []float32, m, ls float32)) {
	dst = dst[:len(x)]
	m, s := stats(x)
	if !(s > 0) || m < -math.MaxFloat32 {
		logSoftmaxGeneric(dst, x)
		return
	}
	out(dst, x, m, float32(math.Log(s)))
}

// Rows of expConst (64 bytes each); exp_amd64.h repeats them as byte
// offsets, and TestExpConstOffsets checks that the two agree.
const (
	cLog2e = iota
	cLn2Hi
	cLn2Lo
	cExpP0 // expP0 … expP5: six rows
	_
	_
	_
	_
	_
	cOne
	cExpHi  // clamp: every x above it overflows to +Inf
	cExpLo  // ExpUnderflow: below it Exp flushes to 0
	cNegInf // −Inf
	cHalf   // 0.5
	cSqrt2  // 2·sqrtHf, the [√½, √2) split of a mantissa in [1, 2)
	cLogP0  // logP0 … logP8: nine rows
	_
	_
	_
	_
	_
	_
	_
	_
	cFixup    // VFIXUPIMMPS table for Log's special inputs
	cSqrtHf   // sqrtHf
	cMantMask // 0x007fffff
	cM149     // −149
	cM126     // −126
	cMinNorm  // 2^−126
	cBias     // int32 127
	cMagic127 // 1.5·2^23 + 127: round to integer, exponent bias in the low bits
	cNegMax   // −MaxFloat32
	cClamp87  // −87: the AVX2 sum clamps x − m here (e^−87 is still normal)
	cClamp88  // −88: EXPNEG's clamp in the AVX2 Softmax, where the flush already bounds x − m
	cZero     // 0
	cMaskTab  // int32 8 × −1 then 8 × 0: AVX2 tail masks
	cInf      // +Inf
	numExpRows
)

// expConst holds each constant splatted to 16 lanes, so the AVX-512 code
// loads a whole vector and the AVX2 code uses its first 32 bytes as a
// memory operand. The values come from the same untyped constants as the
// generic twin.
var expConst = func() (c [numExpRows][16]uint32) {
	f := func(row int, v float32) {
		for i := range c[row] {
			c[row][i] = math.Float32bits(v)
		}
	}
	u := func(row int, v uint32) {
		for i := range c[row] {
			c[row][i] = v
		}
	}
	f(cLog2e, log2e)
	f(cLn2Hi, ln2Hi)
	f(cLn2Lo, ln2Lo)
	for i, p := range []float32{expP0, expP1, expP2, expP3, expP4, expP5} {
		f(cExpP0+i, p)
	}
	f(cOne, 1)
	f(cExpHi, 89)
	f(cExpLo, ExpUnderflow)
	f(cNegInf, float32(math.Inf(-1)))
	f(cHalf, 0.5)
	f(cSqrt2, 2*float32(sqrtHf))
	for i, p := range []float32{logP0, logP1, logP2, logP3, logP4, logP5, logP6, logP7, logP8} {
		f(cLogP0+i, p)
	}
	// VFIXUPIMMPS response per input class (one nibble each, class 0 in
	// the low nibble): QNaN, SNaN → quiet NaN of the input; ±0 → −Inf;
	// +1 → the computed 0; −Inf → NaN; +Inf → +Inf; negative → NaN;
	// positive → the computed value.
	u(cFixup, 0x03530422)
	f(cSqrtHf, sqrtHf)
	u(cMantMask, 0x007fffff)
	f(cM149, -149)
	f(cM126, -126)
	f(cMinNorm, 0x1p-126)
	u(cBias, 127)
	f(cMagic127, 0x1.8p23+127)
	f(cNegMax, -math.MaxFloat32)
	f(cClamp87, -87)
	f(cClamp88, -88)
	f(cZero, 0)
	for i := range 8 {
		c[cMaskTab][i] = 0xffffffff
	}
	f(cInf, float32(math.Inf(1)))
	return c
}()

package simd

import "math"

// genericKernels is the portable twin of every kernel. The assembly tiers
// are tested against it, so its semantics (NaN, ±Inf, empty slices) are the
// specification the others follow.
var genericKernels = Kernels{
	Dot:        dotGeneric,
	Axpy:       axpyGeneric,
	Scale:      scaleGeneric,
	Add:        addGeneric,
	Sub:        subGeneric,
	Mul:        mulGeneric,
	Sum:        sumGeneric,
	Max:        maxGeneric,
	ArgMax:     argMaxGeneric,
	FirstAbove: firstAboveGeneric,
	Exp:        expGeneric,
	Log:        logGeneric,
	LogSumExp:  logSumExpGeneric,
	Softmax:    softmaxGeneric,
	LogSoftmax: logSoftmaxGeneric,
	SoftmaxOut: softmaxOutGeneric,
	ToBF16:     toBF16Generic,
	FromBF16:   fromBF16Generic,
	ToF16:      toF16Generic,
	FromF16:    fromF16Generic,
	Gemm:       gemmGeneric,
	Dots:       dotsGeneric,
	DotsBF16:   dotsBF16Generic,
	AdamW:      adamWGeneric,
}

// BlockLen is how many elements a reduction sums in float32 lanes before it
// adds the block's partial sum into a float64 total. Short float32 chains
// keep Sum, Dot and LogSumExp within about 1e-7 relative of float64 on
// millions of elements; the float64 step costs one add per block. Every
// tier uses the same block length, so only the lane count differs.
const BlockLen = 4096

func dotGeneric(x, y []float32) float32 {
	y = y[:len(x)]
	var total float64
	for len(x) > 0 {
		n := min(len(x), BlockLen)
		var s0, s1, s2, s3 float32
		i := 0
		for ; i+4 <= n; i += 4 {
			s0 += x[i] * y[i]
			s1 += x[i+1] * y[i+1]
			s2 += x[i+2] * y[i+2]
			s3 += x[i+3] * y[i+3]
		}
		for ; i < n; i++ {
			s0 += x[i] * y[i]
		}
		total += float64((s0 + s1) + (s2 + s3))
		x, y = x[n:], y[n:]
	}
	return float32(total)
}

func sumGeneric(x []float32) float32 {
	var total float64
	for len(x) > 0 {
		n := min(len(x), BlockLen)
		var s0, s1, s2, s3 float32
		i := 0
		for ; i+4 <= n; i += 4 {
			s0 += x[i]
			s1 += x[i+1]
			s2 += x[i+2]
			s3 += x[i+3]
		}
		for ; i < n; i++ {
			s0 += x[i]
		}
		total += float64((s0 + s1) + (s2 + s3))
		x = x[n:]
	}
	return float32(total)
}

func axpyGeneric(alpha float32, x, y []float32) {
	y = y[:len(x)]
	for i, v := range x {
		y[i] += alpha * v
	}
}

func scaleGeneric(dst []float32, alpha float32, x []float32) {
	dst = dst[:len(x)]
	for i, v := range x {
		dst[i] = alpha * v
	}
}

func addGeneric(dst, x, y []float32) {
	dst, y = dst[:len(x)], y[:len(x)]
	for i, v := range x {
		dst[i] = v + y[i]
	}
}

func subGeneric(dst, x, y []float32) {
	dst, y = dst[:len(x)], y[:len(x)]
	for i, v := range x {
		dst[i] = v - y[i]
	}
}

func mulGeneric(dst, x, y []float32) {
	dst, y = dst[:len(x)], y[:len(x)]
	for i, v := range x {
		dst[i] = v * y[i]
	}
}

func maxGeneric(x []float32) float32 {
	m := float32(math.Inf(-1))
	for _, v := range x {
		if v != v {
			return v
		}
		if v > m {
			m = v
		}
	}
	return m
}

func argMaxGeneric(x []float32) int {
	if len(x) == 0 {
		return -1
	}
	best, m := 0, x[0]
	if m != m {
		return 0
	}
	for i, v := range x[1:] {
		if v != v {
			return i + 1
		}
		if v > m {
			best, m = i+1, v
		}
	}
	return best
}

func firstAboveGeneric(x []float32, t float32) int {
	for i, v := range x {
		if !(v <= t) { // v > t, or v is NaN
			return i
		}
	}
	return len(x)
}

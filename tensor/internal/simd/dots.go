package simd

// Multi-row dots. Decoding a few tokens at a time multiplies every weight
// row by every token's activations: y[r, i] = w[i]·x[r]. Done as one dot
// per pair, each multiply-add loads both operands and each 576-long dot
// ends in a horizontal reduction; done in blocks of weight rows × input
// rows, each vector loaded serves a whole row or column of the block. The
// kernels keep one accumulator per output, fed in column order and
// reduced in one fixed tree, so an output does not depend on which other
// rows share its block: a sequence decodes to the same bits alone or in a
// batch, whatever the split of the rows over workers.
//
// bfloat16 weights are widened two to a 32-bit word: the word holding
// elements 2l and 2l+1 gives element 2l+1 as a float32 by clearing its low
// half and element 2l by shifting it up, two integer operations per 32
// weights. The input rows, small and reused for every weight row, are
// reordered once to match (SplitBF16).

// SplitLen returns the length of a row of k columns split by SplitBF16: k
// rounded up to a multiple of 32.
func SplitLen(k int) int { return (k + 31) &^ 31 }

// SplitBF16 writes x in the order the DotsBF16 kernels read it: each run
// of 32 columns as its 16 even columns, then its 16 odd ones, with zeros
// past len(x), over SplitLen(len(x)) elements of dst.
func SplitBF16(dst, x []float32) {
	dst = dst[:SplitLen(len(x))]
	for c := 0; c < len(dst); c += 32 {
		run := x[c:min(len(x), c+32)]
		for p := range 32 {
			v := float32(0)
			if p < len(run) {
				v = run[p]
			}
			dst[c+p&1*16+p>>1] = v
		}
	}
}

// splitAt returns the index of column j in a row split by SplitBF16.
func splitAt(j int) int { return j&^31 | j&1*16 | j&31>>1 }

// dotsGeneric is Kernels.Dots: one Dot per output.
func dotsGeneric(y []float32, ldy int, w []float32, ldw int, x []float32, ldx, m, n, k int) {
	dotsEach(dotGeneric, y, ldy, w, ldw, x, ldx, m, n, k)
}

// dotsEach is Kernels.Dots for a tier without a multi-row kernel: an
// output is dot(w row, x row), whatever the block.
func dotsEach(dot func(x, y []float32) float32, y []float32, ldy int, w []float32, ldw int, x []float32, ldx, m, n, k int) {
	for i := range n {
		wi := w[i*ldw : i*ldw+k]
		for r := range m {
			y[r*ldy+i] = dot(wi, x[r*ldx:r*ldx+k])
		}
	}
}

// dotsBF16Generic is Kernels.DotsBF16: each output over its columns in
// order, in four interleaved float32 sums.
func dotsBF16Generic(y []float32, ldy int, w []uint16, ldw int, xs []float32, ldx, m, n, k int) {
	for i := range n {
		wi := w[i*ldw : i*ldw+k]
		for r := range m {
			xr := xs[r*ldx : r*ldx+SplitLen(k)]
			var s [4]float32
			for j, v := range wi {
				s[j&3] += fromBF16(v) * xr[splitAt(j)]
			}
			y[r*ldy+i] = (s[0] + s[1]) + (s[2] + s[3])
		}
	}
}

//go:build gc && !purego

package simd

// dots4AVX512, dots4BF16AVX512, dots4AVX2 and dots4BF16AVX2 (dots_amd64.s, written by
// _gen/gemm) set y[r*ldy+i] = Σ_{j<k} w[i*ldw+j]·x[r*ldx+j] for i < nw
// (1…4) and r < m (≥ 1): one block of weight rows against every input
// row. The bfloat16 kernels read x split by SplitBF16; the AVX2 kernels
// take k a multiple of 8 (dots4AVX2) or 32 (dots4BF16AVX2).
//
//go:noescape
func dots4AVX512(y []float32, ldy int, w []float32, ldw int, x []float32, ldx, nw, m, k int)

//go:noescape
func dots4BF16AVX512(y []float32, ldy int, w []uint16, ldw int, x []float32, ldx, nw, m, k int)

//go:noescape
func dots4AVX2(y []float32, ldy int, w []float32, ldw int, x []float32, ldx, nw, m, k int)

//go:noescape
func dots4BF16AVX2(y []float32, ldy int, w []uint16, ldw int, x []float32, ldx, nw, m, k int)

func dotsAVX512(y []float32, ldy int, w []float32, ldw int, x []float32, ldx, m, n, k int) {
	if m == 0 {
		return
	}
	for i := 0; i < n; i += 4 {
		dots4AVX512(y[i:], ldy, w[i*ldw:], ldw, x, ldx, min(4, n-i), m, k)
	}
}

// dotsAVX2 runs the kernel over the whole vectors of 8 columns and adds
// the rest in Go, in column order, output by output.
func dotsAVX2(y []float32, ldy int, w []float32, ldw int, x []float32, ldx, m, n, k int) {
	if m == 0 {
		return
	}
	k8 := k &^ 7
	for i := 0; i < n; i += 4 {
		nw := min(4, n-i)
		dots4AVX2(y[i:], ldy, w[i*ldw:], ldw, x, ldx, nw, m, k8)
		if k8 == k {
			continue
		}
		for r := range m {
			xr := x[r*ldx+k8 : r*ldx+k]
			for ii := i; ii < i+nw; ii++ {
				s := y[r*ldy+ii]
				for j, v := range w[ii*ldw+k8 : ii*ldw+k] {
					s += v * xr[j]
				}
				y[r*ldy+ii] = s
			}
		}
	}
}

func dotsBF16AVX512(y []float32, ldy int, w []uint16, ldw int, xs []float32, ldx, m, n, k int) {
	if m == 0 {
		return
	}
	for i := 0; i < n; i += 4 {
		dots4BF16AVX512(y[i:], ldy, w[i*ldw:], ldw, xs, ldx, min(4, n-i), m, k)
	}
}

// dotsBF16AVX2 runs the kernel over the whole runs of 32 columns and adds
// the rest in Go, in column order, output by output.
func dotsBF16AVX2(y []float32, ldy int, w []uint16, ldw int, xs []float32, ldx, m, n, k int) {
	if m == 0 {
		return
	}
	k32 := k &^ 31
	for i := 0; i < n; i += 4 {
		nw := min(4, n-i)
		if k32 > 0 {
			dots4BF16AVX2(y[i:], ldy, w[i*ldw:], ldw, xs, ldx, nw, m, k32)
		} else {
			for r := range m {
				clear(y[r*ldy+i : r*ldy+i+nw])
			}
		}
		if k32 == k {
			continue
		}
		for r := range m {
			xr := xs[r*ldx : r*ldx+SplitLen(k)]
			for ii := i; ii < i+nw; ii++ {
				s := y[r*ldy+ii]
				for j := k32; j < k; j++ {
					s += fromBF16(w[ii*ldw+j]) * xr[splitAt(j)]
				}
				y[r*ldy+ii] = s
			}
		}
	}
}

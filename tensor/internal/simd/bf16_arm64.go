//go:build gc && !purego

package simd

// dots4BF16NEON stores the partial sums of four weight rows (ldw apart;
// 0 repeats one) times one input row split by SplitBF16, over kc ≥ 1 runs
// of 32 columns, in out: row r's sixteen lanes at out[16r:]
// (bf16_arm64.s, written by _gen/gemm).
//
//go:noescape
func dots4BF16NEON(out *[64]float32, w []uint16, ldw int, x []float32, kc int)

// dotsBF16NEON is Kernels.DotsBF16: blocks of four weight rows, each
// against every input row while it is in L1; a row left over runs alone
// as a block of one row repeated, so that its sums are formed as in a
// block. The columns past the last run of 32 are added in Go.
func dotsBF16NEON(y []float32, ldy int, w []uint16, ldw int, xs []float32, ldx, m, n, k int) {
	kc := k / 32
	var out [64]float32
	for i := 0; i < n; {
		nw, ld := 4, ldw
		if n-i < 4 {
			nw, ld = 1, 0
		}
		for r := range m {
			xr := xs[r*ldx : r*ldx+SplitLen(k)]
			if kc > 0 {
				dots4BF16NEON(&out, w[i*ldw:], ld, xr, kc)
			}
			for q := range nw {
				s := float32(0)
				if kc > 0 {
					o := out[16*q : 16*q+16 : 16*q+16]
					s = ((o[0] + o[4]) + (o[8] + o[12])) + ((o[1] + o[5]) + (o[9] + o[13])) +
						(((o[2] + o[6]) + (o[10] + o[14])) + ((o[3] + o[7]) + (o[11] + o[15])))
				}
				for j := 32 * kc; j < k; j++ {
					s += fromBF16(w[(i+q)*ldw+j]) * xr[splitAt(j)]
				}
				y[r*ldy+i+q] = s
			}
		}
		i += nw
	}
}

//go:build gc && !purego

package simd

// gemmNEONKernel computes a full-width mr×12 tile (gemm_arm64.s, written
// by _gen/gemm); gemmNEONRun adapts it to GemmKernel.Run.
//
//go:noescape
func gemmNEONKernel(mr, k int, a []float32, rs, ks int, b, c []float32, ldc int, acc bool)

func gemmNEON(k *Kernels) { k.Gemm = &GemmKernel{MR: 8, NR: 12, Run: gemmNEONRun} }

// gemmNEONRun sends tiles narrower than 12 columns through a scratch tile
// on the stack, since the kernel always stores whole rows of 12.
func gemmNEONRun(mr, nr, k int, a []float32, rs, ks int, b, c []float32, ldc int, acc bool) {
	const NR = 12
	if nr == NR {
		gemmNEONKernel(mr, k, a, rs, ks, b, c, ldc, acc)
		return
	}
	var t [8 * NR]float32
	gemmNEONKernel(mr, k, a, rs, ks, b, t[:], NR, false)
	for i := range mr {
		ci, ti := c[i*ldc:i*ldc+nr], t[i*NR:i*NR+nr]
		if acc {
			for j, v := range ti {
				ci[j] += v
			}
		} else {
			copy(ci, ti)
		}
	}
}

//go:build gc && !purego

package simd

//go:generate sh -c "cd _gen/gemm && go run . -out ../.."

// gemmAVX512Kernel and gemmAVX2Kernel are GemmKernel.Run for 12×32 and
// 6×16 tiles (gemm_amd64.s, written by _gen/gemm). Accumulators: 24 zmm
// (12 rows × 2) or 12 ymm (6 rows × 2), enough independent FMA chains to
// cover the FMA latency on two ports.
//
//go:noescape
func gemmAVX512Kernel(mr, nr, k int, a []float32, rs, ks int, b, c []float32, ldc int, acc bool)

//go:noescape
func gemmAVX2Kernel(mr, nr, k int, a []float32, rs, ks int, b, c []float32, ldc int, acc bool)

//go:noescape
func gemmPackT16AVX512(dst, src []float32, lds, ldd, n16 int)

//go:noescape
func gemmPackN32AVX512(dst, src []float32, lds, panel, np, k int)

//go:noescape
func gemmRows4AVX512(c []float32, a0, a1, a2, a3 float32, b []float32, ldb int)

func gemmAVX512(k *Kernels) {
	k.Gemm = &GemmKernel{MR: 12, NR: 32, Run: gemmAVX512Kernel,
		PackT16: gemmPackT16AVX512, PackN: gemmPackN32AVX512, Rows4: gemmRows4AVX512}
}

//go:noescape
func gemmPackN16AVX2(dst, src []float32, lds, panel, np, k int)

func gemmAVX2(k *Kernels) {
	k.Gemm = &GemmKernel{MR: 6, NR: 16, Run: gemmAVX2Kernel, PackN: gemmPackN16AVX2}
}

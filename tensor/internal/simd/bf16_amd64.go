//go:build gc && !purego

package simd

// gemmBF16AVX512 is BF16Kernel.Run for the 12×32 tile of VDPBF16PS
// (bf16_amd64.s, written by _gen/gemm): 24 zmm accumulators, each
// instruction 16 lanes × 2 products.
//
//go:noescape
func gemmBF16AVX512(kp int, a, b []uint16, c []float32, ldc int, acc bool)

// gemmBF16AMX is BF16Kernel.Run for a 32×32 tile in four AMX tiles, kp a
// multiple of 16 (bf16_amd64.s, written by _gen/gemm).
//
//go:noescape
func gemmBF16AMX(kp int, a, b []uint16, c []float32, ldc int, acc bool)

func bf16AMX(k *Kernels) {
	k.BF16 = &BF16Kernel{MR: 32, NR: 32, KBlock: 16, Run: gemmBF16AMX}
}

func bf16AVX512(k *Kernels) {
	k.BF16 = &BF16Kernel{MR: 12, NR: 32, Run: gemmBF16AVX512}
}

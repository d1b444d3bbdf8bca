//go:build !purego

package simd

// arithAVX2 and arithAVX512 install the arithmetic, reduction, search and
// conversion kernels of each amd64 tier.
func arithAVX2(k *Kernels)   {}
func arithAVX512(k *Kernels) {}

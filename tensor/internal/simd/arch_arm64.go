//go:build gc && !purego

package simd

// registerArch adds the NEON tier (Advanced SIMD is part of every arm64 CPU).
func registerArch() {
	k := neonKernels()
	gemmNEON(&k)
	k.MatVecBF16 = matVecNEON
	register(NEON, k)
}

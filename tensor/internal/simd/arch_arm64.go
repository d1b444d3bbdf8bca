//go:build !purego

package simd

// registerArch adds the NEON tier (Advanced SIMD is part of every arm64 CPU).
func registerArch() {
	var k Kernels
	gemmNEON(&k)
	register(NEON, k)
}

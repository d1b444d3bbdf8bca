//go:build gc && !purego

package simd

// registerArch adds the NEON tier (Advanced SIMD is part of every arm64 CPU).
func registerArch() {
	k := neonKernels()
	gemmNEON(&k)
	k.DotsBF16 = dotsBF16NEON
	k.Dots = func(y []float32, ldy int, w []float32, ldw int, x []float32, ldx, m, n, k int) {
		dotsEach(dotNEON, y, ldy, w, ldw, x, ldx, m, n, k)
	}
	register(NEON, k)
}

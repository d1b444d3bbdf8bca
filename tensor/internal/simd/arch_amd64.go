//go:build gc && !purego

package simd

import "golang.org/x/sys/cpu"

// registerArch adds the amd64 tiers this CPU supports. Each kernel family
// fills its own entries (arith_amd64.go, exp_amd64.go); entries left nil
// fall back to the generic twin.
func registerArch() {
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA && cpu.X86.HasF16C {
		var k Kernels
		arithAVX2(&k)
		expAVX2(&k)
		gemmAVX2(&k)
		k.Dots, k.DotsBF16 = dotsAVX2, dotsBF16AVX2
		register(AVX2, k)
	}
	if cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512DQ && cpu.X86.HasAVX512VL && cpu.X86.HasFMA && cpu.X86.HasF16C {
		var k Kernels
		arithAVX512(&k)
		expAVX512(&k)
		gemmAVX512(&k)
		k.Dots, k.DotsBF16 = dotsAVX512, dotsBF16AVX512
		register(AVX512, k)
		if cpu.X86.HasAVX512BF16 {
			bf16AVX512(&k)
			register(AVX512BF16, k)
		}
		if AMXBF16() {
			bf16AMX(&k)
			register(AMX, k)
		}
	}
}

//go:build !(gc && !purego && linux && amd64)

package simd

// AMXBF16 reports whether this process may run AMX-BF16 tile
// instructions: never outside Linux on amd64 with assembly.
func AMXBF16() bool { return false }

//go:build !purego

package simd

// registerArch adds the amd64 tiers this CPU supports.
func registerArch() {}

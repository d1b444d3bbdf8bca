//go:build purego || !gc || !(amd64 || arm64)

package simd

// registerArch adds nothing: the purego tag, or an architecture without
// assembly, runs the generic twins.
func registerArch() {}

//go:build race

package simd

// raceEnabled reports whether the race detector is on: the exhaustive
// tests skip under it (they would take hours).
const raceEnabled = true

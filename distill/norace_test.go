//go:build !race

package distill

const raceEnabled = false

package tensor

import (
	"strings"

	"github.com/posttrain/posttrain/tensor/internal/simd"
)

// Tier returns the name of the kernel implementation in use: "avx512",
// "avx2", "neon" or "generic", or "avx512bf16" or "amx" once pinned with
// SetTier.
// It is chosen at init from the CPU's features; the purego build tag
// forces "generic".
//
// The tier also decides how bfloat16 products run (GemmBF16, GemmMixed):
// "avx512bf16" multiplies pairs of bfloat16 with VDPBF16PS; every other
// tier widens them to float32 while packing and runs its float32 kernel.
// "amx" uses AMX-BF16 tiles (TDPBF16PS) where the CPU has them and Linux
// grants the tile state. Both are listed by Tiers where available but
// never chosen at init: on the Xeon measured so far "avx512bf16" is the
// slower route, and the "amx" kernel has not yet run on AMX hardware (see
// BF16 in the package doc).
func Tier() string { return simd.Active().String() }

// Tiers lists the kernel implementations this CPU and build can run,
// "generic" first.
func Tiers() []string {
	var names []string
	for _, t := range simd.Available() {
		names = append(names, t.String())
	}
	return names
}

// SetTier switches every kernel to the named implementation, for
// benchmarks and for ruling a tier out while debugging. It returns the
// previous tier's name, or an error if the name is not in Tiers. It must
// not be called while kernels run on other goroutines.
func SetTier(name string) (string, error) {
	for _, t := range simd.Available() {
		if t.String() == name {
			prev, err := simd.Use(t)
			return prev.String(), err
		}
	}
	return Tier(), &TierError{Name: name, Have: Tiers()}
}

// TierError reports a tier name that this CPU or build cannot run.
type TierError struct {
	Name string   // the tier asked for
	Have []string // the tiers available, as Tiers lists them
}

// Error names the tier asked for and the ones available.
func (e *TierError) Error() string {
	return "tensor: kernel tier " + e.Name + " is not available; have " + strings.Join(e.Have, ", ")
}

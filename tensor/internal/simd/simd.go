// Package simd holds the slice kernels behind package tensor: one generic
// Go twin per kernel, and the assembly tiers (AVX-512 and AVX2+FMA on amd64,
// NEON on arm64) that replace it where the CPU allows.
//
// The tier is chosen once, at init, from golang.org/x/sys/cpu. The purego
// build tag removes the assembly and leaves only the generic twins. Tests
// force each available tier in turn with Use, so one test binary compares
// every tier against the generic twin in-process.
//
// Kernels here do not check lengths: package tensor does that once, at the
// public boundary, and panics on a mismatch. Every kernel takes whole slices
// and loops internally; none allocates.
package simd

import (
	"fmt"
	"reflect"
)

// Tier names one implementation of the whole kernel table.
type Tier uint8

const (
	Generic Tier = iota // portable Go, the reference twin
	AVX2                // amd64 AVX2 + FMA (+ F16C)
	AVX512              // amd64 AVX-512 F/BW/DQ/VL
	NEON                // arm64 Advanced SIMD
	// AVX512BF16 is AVX512 with VDPBF16PS for bfloat16 products. It is
	// never chosen at init, only by Use: on the Xeon this package was
	// tuned on, VDPBF16PS retires one per 2.3 cycles with a latency of
	// about 15, so its 32 multiply-adds per instruction come to less than
	// two FMAs' 16 each per cycle, and widening bfloat16 onto the float32
	// kernels is faster. Where it is faster (AMD Zen 4/5 list it at one
	// per cycle beside one FMA), pin it with tensor.SetTier.
	AVX512BF16
	// AMX is AVX512 with AMX-BF16 tiles (TDPBF16PS) for bfloat16
	// products, where the CPU has them and Linux grants the tile state.
	// It is never chosen at init, only by Use: its kernel was written
	// without AMX hardware at hand, and its tests run only on CPUs that
	// have it.
	AMX
	numTiers
)

// String returns the tier's name as tensor.Tiers and SetTier spell it.
func (t Tier) String() string {
	switch t {
	case Generic:
		return "generic"
	case AVX2:
		return "avx2"
	case AVX512:
		return "avx512"
	case NEON:
		return "neon"
	case AVX512BF16:
		return "avx512bf16"
	case AMX:
		return "amx"
	}
	return fmt.Sprintf("Tier(%d)", uint8(t))
}

// Kernels is one tier's table of slice kernels. Lengths are checked by the
// caller: x, y and dst always have equal lengths where a kernel takes more
// than one slice.
type Kernels struct {
	Dot   func(x, y []float32) float32
	Axpy  func(alpha float32, x, y []float32)             // y += alpha*x
	Scale func(dst []float32, alpha float32, x []float32) // dst = alpha*x
	Add   func(dst, x, y []float32)                       // dst = x + y
	Sub   func(dst, x, y []float32)                       // dst = x - y
	Mul   func(dst, x, y []float32)                       // dst = x * y

	Sum    func(x []float32) float32
	Max    func(x []float32) float32 // NaN if any element is NaN; -Inf for empty x
	ArgMax func(x []float32) int     // first index of the maximum; first NaN wins; -1 for empty x
	// FirstAbove returns the smallest index i with x[i] > t or x[i] NaN,
	// or len(x) if there is none. TopK scans with it.
	FirstAbove func(x []float32, t float32) int

	Exp        func(dst, x []float32)
	Log        func(dst, x []float32)
	LogSumExp  func(x []float32) float64                       // in float64: callers that subtract it from logits keep its precision
	Softmax    func(dst []float32, alpha float32, x []float32) // dst = alpha·softmax(x)
	LogSoftmax func(dst, x []float32)
	// SoftmaxOut is the softmax's second pass on its own: dst =
	// inv·exp(x − m), for m ≥ max(x) (a row maximum, or a log-sum-exp
	// already known). Larger x − m is outside its contract.
	SoftmaxOut func(dst, x []float32, m, inv float32)

	ToBF16   func(dst []uint16, x []float32) // round to nearest even; NaN stays NaN
	FromBF16 func(dst []float32, x []uint16)
	ToF16    func(dst []uint16, x []float32) // IEEE binary16, round to nearest even
	FromF16  func(dst []float32, x []uint16)

	// GEMM micro-kernels (gemm*.go)
	Gemm *GemmKernel

	// BF16 is the bfloat16 GEMM micro-kernel (bf16.go), nil where the
	// tier has no bfloat16 arithmetic: package tensor then widens the
	// operands while packing them for Gemm.
	BF16 *BF16Kernel
	// Dots computes y[r*ldy+i] = Σ_{j<k} w[i*ldw+j]·x[r*ldx+j] for the
	// m input rows r and the n weight rows i (dots.go): the products of
	// decoding a few tokens at once. An output's value depends only on its
	// two rows and k, never on m, n or its place in the block, so
	// splitting the rows or batching them changes no bit.
	Dots func(y []float32, ldy int, w []float32, ldw int, x []float32, ldx, m, n, k int)
	// DotsBF16 is Dots for bfloat16 weights, with the input rows split by
	// SplitBF16 (row r at xs[r*ldx:], ldx ≥ SplitLen(k)). Outputs are as
	// independent of the batch as Dots's.
	DotsBF16 func(y []float32, ldy int, w []uint16, ldw int, xs []float32, ldx, m, n, k int)

	// AdamW applies one AdamW update with constants s to the weights w,
	// the gradients g and the moments m and v, all of len(w), in place
	// (adamw.go). Every tier rounds each operation as the generic twin
	// does, so results are bit-identical across tiers.
	AdamW func(w, g, m, v []float32, s *AdamWStep)
}

// K is the active table. Package tensor calls through it.
var K Kernels

var (
	tables [numTiers]*Kernels
	best   Tier
)

// register installs a tier's table. Kernels a tier leaves nil fall back to
// the generic twin, so a tier can be built up one kernel at a time.
func register(t Tier, k Kernels) {
	fill(&k, &genericKernels)
	tables[t] = &k
	if (t > best || tables[best] == nil) && t != AVX512BF16 && t != AMX {
		best = t
	}
}

func init() {
	register(Generic, genericKernels)
	registerArch() // per-architecture file: adds the tiers this CPU supports
	K = *tables[best]
}

// Best returns the tier chosen at init.
func Best() Tier { return best }

// Available lists the tiers this CPU and build can run, generic first.
func Available() []Tier {
	var ts []Tier
	for t, k := range tables {
		if k != nil {
			ts = append(ts, Tier(t))
		}
	}
	return ts
}

// Use makes t the active tier and returns the tier that was active before
// it. It is a test hook: it is not safe to call while kernels run on other
// goroutines.
func Use(t Tier) (Tier, error) {
	if t >= numTiers || tables[t] == nil {
		return active, fmt.Errorf("simd: tier %v is not available on this CPU or build", t)
	}
	prev := active
	K = *tables[t]
	active = t
	return prev, nil
}

// Active returns the tier in use.
func Active() Tier { return active }

var active Tier

func init() { active = best }

// Table returns tier t's kernels, or nil if t is not available. Tests use it
// to call two tiers side by side.
func Table(t Tier) *Kernels {
	if t >= numTiers {
		return nil
	}
	return tables[t]
}

// fill sets every nil kernel of k to from's.
func fill(k, from *Kernels) {
	kv, fv := reflect.ValueOf(k).Elem(), reflect.ValueOf(from).Elem()
	for i := range kv.NumField() {
		if kv.Field(i).IsNil() {
			kv.Field(i).Set(fv.Field(i))
		}
	}
}

package simd

import (
	"flag"
	"fmt"
	"math"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The exhaustive tests run every float32 input of Exp's non-trivial range
// and every positive float32 (subnormals included) for Log through every
// assembly tier, 64K inputs per kernel call, and check each result within 2 ulp of
// float64's math.Exp and math.Log. They take tens of seconds on two cores,
// so they skip under -short and the race detector.

// bitRange is the float32 inputs with bit patterns lo…hi inclusive.
type bitRange struct{ lo, hi uint32 }

const exhaustChunk = 1 << 16

// The generic twin, being scalar Go, would triple the run time; it is
// checked exhaustively on request:
//
//	go test -run Exhaustive -exhaustive.generic ./tensor/internal/simd/
var exhaustGeneric = flag.Bool("exhaustive.generic", false, "include the generic twin in the exhaustive Exp/Log tests")

// maxULP is the largest error exhaust accepts, in ulp of the float32 result.
const maxULP = 2

// exhaust checks kernel against ref over every input in ranges, on every
// tier, split across GOMAXPROCS goroutines. It returns the worst error
// seen per tier, in ulp.
func exhaust(t *testing.T, ranges []bitRange, kernel func(k *Kernels, dst, x []float32), ref func(float32) float64) map[Tier]float64 {
	t.Helper()
	type chunk struct{ lo, n uint32 }
	var chunks []chunk
	for _, r := range ranges {
		for lo := uint64(r.lo); lo <= uint64(r.hi); lo += exhaustChunk {
			chunks = append(chunks, chunk{uint32(lo), uint32(min(exhaustChunk, uint64(r.hi)-lo+1))})
		}
	}
	var tiers []Tier
	for _, tier := range f32Tiers() {
		if tier != Generic || *exhaustGeneric {
			tiers = append(tiers, tier)
		}
	}
	if len(tiers) == 0 {
		t.Skip("no assembly tier in this build (use -exhaustive.generic for the twin)")
	}
	var (
		next   atomic.Int64
		mu     sync.Mutex
		worst  = map[Tier]float64{}
		errs   []string
		failed atomic.Bool
		wg     sync.WaitGroup
	)
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x := make([]float32, exhaustChunk)
			got := make([][]float32, len(tiers))
			for i := range got {
				got[i] = make([]float32, exhaustChunk)
			}
			local := make([]float64, len(tiers))
			for !failed.Load() {
				c := int(next.Add(1) - 1)
				if c >= len(chunks) {
					break
				}
				xs := x[:chunks[c].n]
				for i := range xs {
					xs[i] = math.Float32frombits(chunks[c].lo + uint32(i))
				}
				for ti, tier := range tiers {
					kernel(Table(tier), got[ti][:len(xs)], xs)
				}
				for i, v := range xs {
					want := ref(v)
					var prev float32
					var u float64
					for ti := range tiers {
						// Tiers mostly agree bit for bit: measure each
						// distinct result once.
						if g := got[ti][i]; ti == 0 || math.Float32bits(g) != math.Float32bits(prev) {
							u, prev = fastULPs(g, want), g
						}
						if u > local[ti] {
							local[ti] = u
						}
						if u > maxULP {
							mu.Lock()
							if len(errs) < 10 {
								errs = append(errs, fmt.Sprintf("%v: f(%v) (%#08x) = %v, want %v (%.2f ulp)", tiers[ti], v, math.Float32bits(v), got[ti][i], want, u))
							}
							mu.Unlock()
							failed.Store(true)
						}
					}
				}
			}
			mu.Lock()
			for ti, tier := range tiers {
				worst[tier] = max(worst[tier], local[ti])
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	for _, e := range errs {
		t.Error(e)
	}
	return worst
}

// fastULPs is ulps for finite, nonzero want and finite got (the bulk of
// the inputs) without Nextafter; it defers to ulps otherwise.
func fastULPs(got float32, want float64) float64 {
	a := math.Abs(want)
	if !(a > 0 && a < math.MaxFloat32) || math.IsInf(float64(got), 0) || got != got {
		return ulps(got, want)
	}
	e := int(math.Float32bits(float32(a)) >> 23)
	if e == 0 {
		e = 1 // subnormal spacing
	}
	// float32 spacing at a is 2^(e−150); 1/spacing = 2^(150−e).
	inv := math.Float64frombits(uint64(150-e+1023) << 52)
	return math.Abs(float64(got)-want) * inv
}

// logRef is math.Log(x) for float32 x, fast: ln(f·2^e) = ln f + e·ln 2
// with ln f from a table of every float32 mantissa. Its float64 error
// (about 1e-16 absolute) is far below a float32 ulp of the result, even
// next to x = 1 where ln x is small.
func logRef() func(float32) float64 {
	tab := make([]float64, 1<<23)
	for i := range tab {
		tab[i] = math.Log(1 + float64(i)*0x1p-23)
	}
	return func(x float32) float64 {
		b := math.Float32bits(x)
		e := int(b>>23) & 0xff
		if e == 0 || e == 0xff || b>>31 != 0 {
			return math.Log(float64(x))
		}
		return tab[b&0x7fffff] + float64(e-127)*math.Ln2
	}
}

// expRefFast is expRef, fast: e^x = e^(k/64)·e^r with k = round(64x),
// r = x − k/64 exact (|r| ≤ 1/128), e^(k/64) from a table of math.Exp and
// e^r from its Taylor series to r^6 (truncation below 1e-17). It is good to
// a few float64 ulp, far below a float32 ulp.
func expRefFast() func(float32) float64 {
	const lo, hi = -6000, 6000 // k range covering |x| ≤ 93
	tab := make([]float64, hi-lo+1)
	for i := range tab {
		tab[i] = math.Exp(float64(i+lo) / 64)
	}
	return func(x float32) float64 {
		v := float64(x)
		if !(v > -93 && v < 93) || x < ExpUnderflow {
			return expRef(x)
		}
		k := math.Round(v * 64)
		r := v - k/64
		p := 1 + r*(1+r*(1.0/2+r*(1.0/6+r*(1.0/24+r*(1.0/120+r*(1.0/720))))))
		return tab[int(k)-lo] * p
	}
}

// skipExhaustive skips a test that walks every float32 unless asked for,
// as CI does:
//
//	SIMD_EXHAUSTIVE=1 go test -run Exhaustive ./tensor/internal/simd/
//
// It never runs under the race detector, which would only slow the float64
// reference (the assembly is not instrumented).
func skipExhaustive(t *testing.T) {
	t.Helper()
	if os.Getenv("SIMD_EXHAUSTIVE") == "" || testing.Short() || raceEnabled {
		t.Skip("exhaustive: set SIMD_EXHAUSTIVE=1 to run (never under -short or -race)")
	}
}

func TestExpExhaustive(t *testing.T) {
	skipExhaustive(t)
	start := time.Now()
	const sign = 1 << 31
	lo, hi := math.Float32bits(0x1p-25), math.Float32bits(ExpOverflow)
	worst := exhaust(t, []bitRange{{lo, hi}, {lo | sign, hi | sign}},
		func(k *Kernels, dst, x []float32) { k.Exp(dst, x) }, expRefFast())

	// Tiny |x|, beyond the overflow and underflow thresholds, and the
	// special values: every 97th input pattern (and the ends) suffices,
	// the results being exact constants.
	var xs []float32
	for _, r := range []bitRange{{0, lo}, {sign, lo | sign}, {hi, 0x7f800000}, {math.Float32bits(-ExpOverflow), 0xff800000}} {
		for b := uint64(r.lo); b <= uint64(r.hi); b += 97 {
			xs = append(xs, math.Float32frombits(uint32(b)))
		}
		xs = append(xs, math.Float32frombits(r.hi))
	}
	xs = append(xs, float32(math.NaN()), math.Float32frombits(0x7f800001), math.Float32frombits(0xffc12345))
	got := make([]float32, len(xs))
	for _, tier := range f32Tiers() {
		Table(tier).Exp(got, xs)
		for i, v := range xs {
			if u := ulps(got[i], expRef(v)); u > maxULP {
				t.Fatalf("%v: exp(%v) = %v, want %v", tier, v, got[i], expRef(v))
			}
		}
	}
	t.Logf("Exp: %d inputs in %v; worst error %v ulp", 2*(hi-lo+1), time.Since(start).Round(time.Millisecond), worst)
}

func TestLogExhaustive(t *testing.T) {
	skipExhaustive(t)
	start := time.Now()
	worst := exhaust(t, []bitRange{{1, math.Float32bits(math.MaxFloat32)}},
		func(k *Kernels, dst, x []float32) { k.Log(dst, x) },
		logRef())
	t.Logf("Log: every positive finite float32 in %v; worst error %v ulp", time.Since(start).Round(time.Millisecond), worst)
}

// TestExhaustiveRefs checks the fast references against math.Exp and
// math.Log on a sample of inputs.
func TestExhaustiveRefs(t *testing.T) {
	skipExhaustive(t)
	eref := expRefFast()
	for b := uint32(0); b < 0xffffffff-9973; b += 9973 {
		x := math.Float32frombits(b)
		w := expRef(x)
		if d := math.Abs(eref(x) - w); d > 1e-14*w && !(x != x && eref(x) != eref(x)) {
			t.Fatalf("expRefFast(%v) = %v, math.Exp %v", x, eref(x), w)
		}
	}
	ref := logRef()
	for b := uint32(1); b < 0x7f800000; b += 9973 {
		x := math.Float32frombits(b)
		w := math.Log(float64(x))
		if d := math.Abs(ref(x) - w); d > 1e-3*ulpAt(w) {
			t.Fatalf("logRef(%v) = %v, math.Log %v", x, ref(x), w)
		}
	}
}

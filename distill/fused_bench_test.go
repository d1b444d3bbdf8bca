package distill

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime/debug"
	"strconv"
	"testing"
	"time"

	"github.com/posttrain/posttrain/internal/cputime"
	"github.com/posttrain/posttrain/tensor"
)

// The fused benchmarks compare, on one LM head of N tokens, width H and
// vocabulary V:
//
//	Fused      Fused.ConvexCombination from the head (chunked);
//	Unfused    logits = h·Wᵀ (one [N, V] tensor), ConvexCombination with
//	           the gradient written over the logits, dh = g·W, dW += gᵀ·h;
//	Gemms      the three GEMMs of Unfused alone: the floor, 6·N·H·V FLOPs;
//	and the same for GeneralizedJSD with a live teacher head (FusedJSD,
//	UnfusedJSD, GemmsJSD: four GEMMs, a teacher forward more).
//
// Each reports GFLOPS over the GEMM work and peak-MB, the process's peak
// resident memory during the benchmark loop above its resident memory
// before it (VmHWM after clearing it, minus VmRSS; 0 where /proc does not
// offer it), which with -benchtime 1x is one call's:
// the extra memory the method needs beyond its inputs and outputs. For
// Unfused that is 4·N·V bytes of logits (8·N·V for UnfusedJSD, the
// teacher's logits beside them); for Fused it is 4·c·V bytes for a chunk
// of c rows (8·c·V with a teacher) plus c·H floats of gathered rows.
//
// The default sizes are small; FUSED_BENCH=N,H,V (for example
// 8192,576,49152) runs one more. Such a run is heavy (1.4 TFLOP at
// V = 49,152): run it with -benchtime 1x, as bench/compare.sh does.
//
//	go test -run '^$' -bench 'Fused|Unfused|Gemms' -benchtime 1x ./distill/

// benchChunk returns FUSED_CHUNK, the rows per chunk to try (0: the
// default from the cache size).
func benchChunk(b *testing.B) int {
	c, err := strconv.Atoi(os.Getenv("FUSED_CHUNK"))
	if err != nil && os.Getenv("FUSED_CHUNK") != "" {
		b.Fatalf("FUSED_CHUNK: %v", err)
	}
	return c
}

type headSize struct{ n, h, v int }

func headSizes(b *testing.B) []headSize {
	sizes := []headSize{{512, 256, 8192}}
	if s := os.Getenv("FUSED_BENCH"); s != "" {
		var hs headSize
		if _, err := fmt.Sscanf(s, "%d,%d,%d", &hs.n, &hs.h, &hs.v); err != nil {
			b.Fatalf("FUSED_BENCH=%q: want N,H,V", s)
		}
		sizes = append(sizes, hs)
	}
	return sizes
}

type headBench struct {
	s, t   Head
	grad   HeadGrad
	labels []int32
	top1   []int32
}

func newHeadBench(hs headSize, teacher bool) *headBench {
	r := rand.New(rand.NewPCG(1, 2))
	hb := &headBench{
		s:      Head{H: randDense(r, 1, hs.n, hs.h), W: randDense(r, 3/math.Sqrt(float64(hs.h)), hs.v, hs.h)},
		grad:   HeadGrad{H: tensor.New(hs.n, hs.h), W: tensor.New(hs.v, hs.h)},
		labels: randIDs(r, hs.n, hs.v), top1: randIDs(r, hs.n, hs.v),
	}
	if teacher {
		hb.t = Head{H: randDense(r, 1, hs.n, hs.h), W: randDense(r, 3/math.Sqrt(float64(hs.h)), hs.v, hs.h)}
	}
	// Fault the gradients' pages in, so that peak-MB counts only what the
	// method itself allocates.
	for _, x := range [][]float32{hb.grad.H.Data(), hb.grad.W.Data()} {
		for i := range x {
			x[i] = 0
		}
	}
	return hb
}

// measure runs the benchmark loop over call and reports GFLOPS for flops
// per call and the loop's peak extra memory.
func measure(b *testing.B, flops float64, call func()) {
	var cpu time.Duration
	peak := peakExtra(func() {
		t0 := cputime.Process()
		for b.Loop() {
			call()
		}
		cpu = cputime.Process() - t0
	})
	b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOPS")
	b.ReportMetric(float64(peak)/(1<<20), "peak-MB")
	if cpu > 0 {
		// On a shared machine the process's CPU time is a steadier
		// measure of the work than the wall clock.
		b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
	}
}

// peakExtra returns the peak resident memory of the process during f above
// its resident memory before f, or 0 if /proc does not offer it.
func peakExtra(f func()) int64 {
	debug.FreeOSMemory()
	if os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) != nil {
		return 0
	}
	before := procStatus("VmRSS")
	f()
	peak := procStatus("VmHWM")
	if before == 0 || peak == 0 {
		return 0
	}
	return peak - before
}

// procStatus returns a /proc/self/status field in bytes, or 0.
func procStatus(field string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range bytes.Lines(b) {
		if rest, ok := bytes.CutPrefix(line, []byte(field+":")); ok {
			f := bytes.Fields(rest)
			if len(f) > 0 {
				kb, _ := strconv.ParseInt(string(f[0]), 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

func BenchmarkFused(b *testing.B) {
	for _, hs := range headSizes(b) {
		b.Run(fmt.Sprintf("%dx%dx%d", hs.n, hs.h, hs.v), func(b *testing.B) {
			hb := newHeadBench(hs, false)
			f := Fused{ChunkRows: benchChunk(b)}
			call := func() {
				if _, err := f.ConvexCombination(context.Background(), hb.grad, hb.s, hb.labels, hb.top1, DefaultTeacherWeight); err != nil {
					b.Fatal(err)
				}
			}
			measure(b, 6*float64(hs.n*hs.h)*float64(hs.v), call)
		})
	}
}

func BenchmarkUnfused(b *testing.B) {
	for _, hs := range headSizes(b) {
		b.Run(fmt.Sprintf("%dx%dx%d", hs.n, hs.h, hs.v), func(b *testing.B) {
			hb := newHeadBench(hs, false)
			call := func() {
				z := tensor.New(hs.n, hs.v)
				tensor.Gemm(false, true, 1, hb.s.H, hb.s.W, 0, z)
				if _, err := ConvexCombination(z, z, hb.labels, hb.top1, DefaultTeacherWeight); err != nil {
					b.Fatal(err)
				}
				tensor.Gemm(false, false, 1, z, hb.s.W, 0, hb.grad.H)
				tensor.Gemm(true, false, 1, z, hb.s.H, 1, hb.grad.W)
			}
			measure(b, 6*float64(hs.n*hs.h)*float64(hs.v), call)
		})
	}
}

func BenchmarkGemms(b *testing.B) {
	for _, hs := range headSizes(b) {
		b.Run(fmt.Sprintf("%dx%dx%d", hs.n, hs.h, hs.v), func(b *testing.B) {
			hb := newHeadBench(hs, false)
			z := tensor.New(hs.n, hs.v)
			tensor.Gemm(false, true, 1, hb.s.H, hb.s.W, 0, z) // fault the pages in
			call := func() {
				tensor.Gemm(false, true, 1, hb.s.H, hb.s.W, 0, z)
				tensor.Gemm(false, false, 1, z, hb.s.W, 0, hb.grad.H)
				tensor.Gemm(true, false, 1, z, hb.s.H, 1, hb.grad.W)
			}
			measure(b, 6*float64(hs.n*hs.h)*float64(hs.v), call)
		})
	}
}

func BenchmarkFusedJSD(b *testing.B) {
	for _, hs := range headSizes(b) {
		b.Run(fmt.Sprintf("%dx%dx%d", hs.n, hs.h, hs.v), func(b *testing.B) {
			hb := newHeadBench(hs, true)
			f := Fused{ChunkRows: benchChunk(b)}
			call := func() {
				if _, err := f.GeneralizedJSD(context.Background(), hb.grad, hb.s, hb.t, nil, 0.5, 1); err != nil {
					b.Fatal(err)
				}
			}
			measure(b, 8*float64(hs.n*hs.h)*float64(hs.v), call)
		})
	}
}

func BenchmarkUnfusedJSD(b *testing.B) {
	for _, hs := range headSizes(b) {
		b.Run(fmt.Sprintf("%dx%dx%d", hs.n, hs.h, hs.v), func(b *testing.B) {
			hb := newHeadBench(hs, true)
			call := func() {
				z, zt := tensor.New(hs.n, hs.v), tensor.New(hs.n, hs.v)
				tensor.Gemm(false, true, 1, hb.s.H, hb.s.W, 0, z)
				tensor.Gemm(false, true, 1, hb.t.H, hb.t.W, 0, zt)
				if _, err := GeneralizedJSD(z, z, zt, 0.5, 1); err != nil {
					b.Fatal(err)
				}
				tensor.Gemm(false, false, 1, z, hb.s.W, 0, hb.grad.H)
				tensor.Gemm(true, false, 1, z, hb.s.H, 1, hb.grad.W)
			}
			measure(b, 8*float64(hs.n*hs.h)*float64(hs.v), call)
		})
	}
}

func BenchmarkGemmsJSD(b *testing.B) {
	for _, hs := range headSizes(b) {
		b.Run(fmt.Sprintf("%dx%dx%d", hs.n, hs.h, hs.v), func(b *testing.B) {
			hb := newHeadBench(hs, true)
			z, zt := tensor.New(hs.n, hs.v), tensor.New(hs.n, hs.v)
			tensor.Gemm(false, true, 1, hb.s.H, hb.s.W, 0, z)
			tensor.Gemm(false, true, 1, hb.t.H, hb.t.W, 0, zt)
			call := func() {
				tensor.Gemm(false, true, 1, hb.s.H, hb.s.W, 0, z)
				tensor.Gemm(false, true, 1, hb.t.H, hb.t.W, 0, zt)
				tensor.Gemm(false, false, 1, z, hb.s.W, 0, hb.grad.H)
				tensor.Gemm(true, false, 1, z, hb.s.H, 1, hb.grad.W)
			}
			measure(b, 8*float64(hs.n*hs.h)*float64(hs.v), call)
		})
	}
}

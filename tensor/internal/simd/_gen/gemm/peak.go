package main

// The instruction-peak loops (peak_amd64.s) behind simd's BenchmarkPeak:
// how many VFMADD231PS and VDPBF16PS (zmm) one core retires per second,
// which bounds the float32 and bfloat16 GEMM micro-kernels. Each loop
// runs n iterations of 24 instructions on registers alone, spread over
// acc accumulators: with one accumulator every instruction waits for the
// last (the latency), with enough of them none waits (the throughput).
// The mixed loop alternates the two instructions on 24 accumulators,
// telling whether they compete for the same execution ports.

import (
	"fmt"
	"log"
	"os"
	"path/filepath"
)

// peakAccs are the accumulator counts of the loops.
var peakAccs = []int{1, 2, 4, 8, 12, 24}

// writePeak writes peak_amd64.s into dir.
func writePeak(dir string) {
	var w asm
	w.WriteString(header)
	for _, acc := range peakAccs {
		peakLoop(&w, fmt.Sprintf("peakFMA%d", acc), acc, func(i int) bool { return false })
		peakLoop(&w, fmt.Sprintf("peakBF16_%d", acc), acc, func(i int) bool { return true })
	}
	peakLoop(&w, "peakMix24", 24, func(i int) bool { return i%2 == 1 })
	if err := os.WriteFile(filepath.Join(dir, "peak_amd64.s"), w.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}
}

// peakLoop writes func name(n int): n iterations of 24 instructions,
// instruction i adding into Z(i mod acc) the product of Z24 or Z25 and
// one of Z26–Z31, as VDPBF16PS where bf(i), else VFMADD231PS.
func peakLoop(w *asm, name string, acc int, bf func(i int) bool) {
	w.WriteString("// func " + name + "(n int)\n")
	w.WriteString("TEXT ·" + name + "(SB), NOSPLIT, $0-8\n")
	w.f("MOVQ n+0(FP), CX")
	// Zero sources and accumulators: no denormal, infinity or NaN, ever.
	for i := range acc {
		w.f("VPXORD Z%d, Z%d, Z%d", i, i, i)
	}
	for i := 24; i < 32; i++ {
		w.f("VPXORD Z%d, Z%d, Z%d", i, i, i)
	}
	w.label(name + "_loop")
	for i := range 24 {
		if bf(i) {
			w.f("%s", vdpbf16ps(i%acc, 24+i%2, 26+i%6))
		} else {
			w.f("VFMADD231PS Z%d, Z%d, Z%d", 24+i%2, 26+i%6, i%acc)
		}
	}
	w.f("DECQ CX")
	w.f("JNZ %s_loop", name)
	w.f("VZEROUPPER")
	w.f("RET")
	w.WriteString("\n")
}

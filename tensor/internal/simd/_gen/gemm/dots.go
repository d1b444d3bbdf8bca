package main

// The multi-row dot kernels (dots_amd64.s): y[r, i] = w[i]·x[r] for up to
// four weight rows i at a time and every input row r, the products that
// decode a few tokens at once. Each weight vector is loaded once for four
// input rows, and each input vector once for the four weight rows, so a
// 4×4 block does 16 FMAs per 8 loads where one dot at a time does one
// per two.
//
// Every output has one 16-lane accumulator, fed in column order, and the
// same reduction tree however many rows the block holds: blocks with
// fewer input rows leave accumulators at zero, and blocks with fewer
// weight rows repeat row 0 and do not store it. So an output's bits
// depend only on its two rows and k, never on the batch or the split.

import (
	"fmt"
	"log"
	"os"
	"path/filepath"
)

// writeDots writes dots_amd64.s into dir.
func writeDots(dir string) {
	var w asm
	w.WriteString(header)
	dots4(&w, false)
	dots4(&w, true)
	dots4BF16AVX2(&w)
	dots4AVX2(&w)
	if err := os.WriteFile(filepath.Join(dir, "dots_amd64.s"), w.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}
}

// dots4 writes dots4AVX512 (float32 weights) or dots4BF16AVX512 (bfloat16
// weights against input rows split by SplitBF16), of
//
//	func(y []float32, ldy int, w []T, ldw int, x []float32, ldx, nw, m, k int)
//
// which sets y[r*ldy+i] = Σ_{j<k} w[i*ldw+j]·x[r*ldx+j] for i < nw (1…4)
// and r < m (≥ 1). The columns past the last whole vector are loaded
// under a mask (zeros elsewhere), so k need not be a multiple of the
// width and nothing past a row is read.
//
// Registers: AX column offset in bytes of w; R10–R13 the weight rows;
// BX, DX, R8, R9 the input rows of the current group of four, SI the
// group's first; R14 the input rows left; R15 the next block of weight
// rows (prefetched); DI the
// group's y; CX the loop count. Accumulator (i, r) is Z(4i+r); Z16–Z19
// the weights (the odd halves for bfloat16, Z20–Z23 the even ones); Z24–Z27
// the inputs; Z31 the mask 0xffff0000. K1 masks the tail columns, K2 the
// stored weight rows.
func dots4(w *asm, bf16 bool) {
	name, esz, step := "dots4AVX512", 4, 16
	if bf16 {
		name, esz, step = "dots4BF16AVX512", 2, 32
	}
	w.WriteString("// func " + name + "(y []float32, ldy int, w []T, ldw int, x []float32, ldx, nw, m, k int)\n")
	w.WriteString("TEXT ·" + name + "(SB), NOSPLIT, $0-120\n")
	weightRows(w, name, esz)
	w.f("MOVQ $1, AX")
	w.f("SHLQ CX, AX")
	w.f("DECQ AX")
	w.f("KMOVW AX, K2")
	w.f("MOVQ k+112(FP), CX")
	w.f("ANDQ $%d, CX", step-1)
	w.f("MOVQ $1, AX")
	w.f("SHLQ CX, AX")
	w.f("DECQ AX")
	if bf16 {
		w.f("KMOVD AX, K1")
		w.f("MOVL $0xffff0000, AX")
		w.f("VPBROADCASTD AX, Z31")
	} else {
		w.f("KMOVW AX, K1")
	}
	w.f("MOVQ y_base+0(FP), DI")
	w.f("MOVQ x_base+64(FP), SI")
	w.f("MOVQ m+104(FP), R14")

	w.label(name + "_group")
	w.f("MOVQ ldx+88(FP), R15")
	w.f("SHLQ $2, R15")
	w.f("MOVQ SI, BX")
	w.f("LEAQ (SI)(R15*1), DX")
	w.f("LEAQ (SI)(R15*2), R8")
	w.f("LEAQ (DX)(R15*2), R9")
	// R15: the next block of weight rows, which the loop prefetches at
	// the pace it reads this one (4 lines a step), so that the memory
	// streams while the block's arithmetic runs from L1.
	w.f("MOVQ ldw+56(FP), R15")
	w.f("SHLQ $%d, R15", bitsOf(4*esz))
	w.f("ADDQ R10, R15")
	w.f("CMPQ R14, $4")
	w.f("JGE %s_m4", name)
	w.f("CMPQ R14, $3")
	w.f("JEQ %s_m3", name)
	w.f("CMPQ R14, $2")
	w.f("JEQ %s_m2", name)
	xr := []string{"BX", "DX", "R8", "R9"}
	wr := []string{"R10", "R11", "R12", "R13"}
	for nx := 1; nx <= 4; nx++ {
		l := fmt.Sprintf("%s_m%d", name, nx)
		w.label(l)
		for a := range 16 {
			w.f("VPXORD Z%d, Z%d, Z%d", a, a, a)
		}
		w.f("XORQ AX, AX")
		w.f("MOVQ k+112(FP), CX")
		w.f("SHRQ $%d, CX", bitsOf(step))
		w.f("JZ %s_tail", l)
		// body loads the weights (masked by K1 when tail) and runs the FMAs.
		body := func(tail bool) {
			mask := ""
			if tail {
				mask = ".Z"
			}
			for i := range 4 {
				if bf16 {
					if tail {
						w.f("VMOVDQU16.Z (%s)(AX*1), K1, Z%d", wr[i], 16+i)
					} else {
						w.f("VMOVDQU16 (%s)(AX*1), Z%d", wr[i], 16+i)
					}
					w.f("VPSLLD $16, Z%d, Z%d", 16+i, 20+i)
					w.f("VPANDD Z31, Z%d, Z%d", 16+i, 16+i)
				} else if tail {
					w.f("VMOVUPS%s (%s)(AX*1), K1, Z%d", mask, wr[i], 16+i)
				} else {
					w.f("VMOVUPS (%s)(AX*1), Z%d", wr[i], 16+i)
				}
			}
			for r := range nx {
				if bf16 {
					// The split row: 16 even columns, then 16 odd ones, zero
					// past k, so no mask is needed.
					e, o := 24+2*(r%2), 25+2*(r%2)
					w.f("VMOVUPS (%s)(AX*2), Z%d", xr[r], e)
					w.f("VMOVUPS 64(%s)(AX*2), Z%d", xr[r], o)
					for i := range 4 {
						w.f("VFMADD231PS Z%d, Z%d, Z%d", e, 20+i, 4*i+r)
					}
					for i := range 4 {
						w.f("VFMADD231PS Z%d, Z%d, Z%d", o, 16+i, 4*i+r)
					}
					continue
				}
				if tail {
					w.f("VMOVUPS.Z (%s)(AX*1), K1, Z%d", xr[r], 24+r)
				} else {
					w.f("VMOVUPS (%s)(AX*1), Z%d", xr[r], 24+r)
				}
			}
			if !bf16 {
				for r := range nx {
					for i := range 4 {
						w.f("VFMADD231PS Z%d, Z%d, Z%d", 24+r, 16+i, 4*i+r)
					}
				}
			}
		}
		w.label(l + "_loop")
		for p := range 4 {
			w.f("PREFETCHT0 %d(R15)(AX*4)", 64*p)
		}
		body(false)
		w.f("ADDQ $64, AX")
		w.f("DECQ CX")
		w.f("JNZ %s_loop", l)
		w.label(l + "_tail")
		if bf16 {
			w.f("KORTESTD K1, K1")
		} else {
			w.f("KORTESTW K1, K1")
		}
		w.f("JZ %s_reduce", name)
		body(true)
		w.f("JMP %s_reduce", name)
	}

	// The reduction: 16 accumulators to one vector whose quarter r holds
	// y[r, 0…3]. Every output's lanes meet in the same tree: lane j with
	// j+8, then j+4, then j+2, then j+1.
	w.label(name + "_reduce")
	for p := range 8 {
		w.f("VSHUFF32X4 $0x44, Z%d, Z%d, Z16", 2*p+1, 2*p)
		w.f("VSHUFF32X4 $0xee, Z%d, Z%d, Z17", 2*p+1, 2*p)
		w.f("VADDPS Z17, Z16, Z%d", p)
	}
	for m := range 4 {
		w.f("VSHUFF32X4 $0x88, Z%d, Z%d, Z16", 2*m+1, 2*m)
		w.f("VSHUFF32X4 $0xdd, Z%d, Z%d, Z17", 2*m+1, 2*m)
		w.f("VADDPS Z17, Z16, Z%d", m)
	}
	for c := range 2 {
		w.f("VUNPCKLPD Z%d, Z%d, Z16", 2*c+1, 2*c)
		w.f("VUNPCKHPD Z%d, Z%d, Z17", 2*c+1, 2*c)
		w.f("VADDPS Z17, Z16, Z%d", c)
	}
	w.f("VSHUFPS $0x88, Z1, Z0, Z16")
	w.f("VSHUFPS $0xdd, Z1, Z0, Z17")
	w.f("VADDPS Z17, Z16, Z16")
	w.f("MOVQ ldy+24(FP), CX")
	w.f("SHLQ $2, CX")
	w.f("VMOVUPS X16, K2, (DI)")
	for r := 1; r < 4; r++ {
		w.f("CMPQ R14, $%d", r)
		w.f("JLE %s_next", name)
		w.f("VEXTRACTF32X4 $%d, Z16, X17", r)
		switch r {
		case 1:
			w.f("VMOVUPS X17, K2, (DI)(CX*1)")
		case 2:
			w.f("VMOVUPS X17, K2, (DI)(CX*2)")
		case 3:
			w.f("LEAQ (CX)(CX*2), AX")
			w.f("VMOVUPS X17, K2, (DI)(AX*1)")
		}
	}
	w.label(name + "_next")
	w.f("SUBQ $4, R14")
	w.f("JLE %s_done", name)
	w.f("MOVQ ldx+88(FP), AX")
	w.f("SHLQ $4, AX")
	w.f("ADDQ AX, SI")
	w.f("SHLQ $2, CX")
	w.f("ADDQ CX, DI")
	w.f("JMP %s_group", name)
	w.label(name + "_done")
	w.f("VZEROUPPER")
	w.f("RET")
	w.WriteString("\n")
}

// dots4BF16AVX2 writes the AVX2 form of dots4BF16AVX512,
//
//	func dots4BF16AVX2(y []float32, ldy int, w []uint16, ldw int, x []float32, ldx, nw, m, k int)
//
// over k a multiple of 32 (the Go wrapper adds the rest), one input row
// at a time: sixteen ymm registers hold four weight rows' even and odd
// halves, four 8-lane accumulators and the input. Each output's
// accumulator is reduced on its own, in one fixed order.
//
// Registers: AX column offset in bytes of w; R10–R13 the weight rows; BX
// the input row; DI its y; R14 the rows left; CX the loop count; R15 ldx
// and then ldy in bytes. Y0–Y3 accumulators, Y4–Y7 even weights, Y8–Y11
// odd weights, Y12–Y13 input, Y15 the mask.
func dots4BF16AVX2(w *asm) {
	name := "dots4BF16AVX2"
	w.WriteString("// func " + name + "(y []float32, ldy int, w []uint16, ldw int, x []float32, ldx, nw, m, k int)\n")
	w.WriteString("TEXT ·" + name + "(SB), NOSPLIT, $0-120\n")
	weightRows(w, name, 2)
	w.f("VPCMPEQD Y15, Y15, Y15")
	w.f("VPSLLD $16, Y15, Y15")
	w.f("MOVQ y_base+0(FP), DI")
	w.f("MOVQ x_base+64(FP), BX")
	w.f("MOVQ m+104(FP), R14")
	w.label(name + "_row")
	for a := range 4 {
		w.f("VXORPS Y%d, Y%d, Y%d", a, a, a)
	}
	w.f("XORQ AX, AX")
	w.f("MOVQ k+112(FP), CX")
	w.f("SHRQ $5, CX")
	w.f("JZ %s_sum", name)
	w.label(name + "_loop")
	for h := range 2 {
		for i := range 4 {
			w.f("VMOVDQU %d(R%d)(AX*1), Y%d", 32*h, 10+i, 8+i)
			w.f("VPSLLD $16, Y%d, Y%d", 8+i, 4+i)
			w.f("VPAND Y15, Y%d, Y%d", 8+i, 8+i)
		}
		w.f("VMOVUPS %d(BX)(AX*2), Y12", 32*h)
		w.f("VMOVUPS %d(BX)(AX*2), Y13", 64+32*h)
		for i := range 4 {
			w.f("VFMADD231PS Y12, Y%d, Y%d", 4+i, i)
		}
		for i := range 4 {
			w.f("VFMADD231PS Y13, Y%d, Y%d", 8+i, i)
		}
	}
	w.f("ADDQ $64, AX")
	w.f("DECQ CX")
	w.f("JNZ %s_loop", name)
	w.label(name + "_sum")
	w.f("MOVQ nw+96(FP), CX")
	for i := range 4 {
		if i > 0 {
			w.f("CMPQ CX, $%d", i)
			w.f("JLE %s_next", name)
		}
		reduceY(w, i, fmt.Sprintf("%d(DI)", 4*i))
	}
	w.label(name + "_next")
	w.f("MOVQ ldx+88(FP), CX")
	w.f("LEAQ (BX)(CX*4), BX")
	w.f("MOVQ ldy+24(FP), CX")
	w.f("LEAQ (DI)(CX*4), DI")
	w.f("DECQ R14")
	w.f("JNZ %s_row", name)
	w.f("VZEROUPPER")
	w.f("RET")
	w.WriteString("\n")
}

// dots4AVX2 writes the AVX2 form of dots4AVX512,
//
//	func dots4AVX2(y []float32, ldy int, w []float32, ldw int, x []float32, ldx, nw, m, k int)
//
// over k a multiple of 8 (the Go wrapper adds the rest), two input rows
// at a time: eight 8-lane accumulators, four weight vectors and two input
// vectors fill the sixteen ymm registers. Each output's accumulator is
// reduced on its own, in one fixed order.
//
// Registers: AX column offset in bytes; R10–R13 the weight rows; BX and
// DX the input rows; DI their y; R14 the rows left; CX the loop count; R9
// ldx in bytes, R8 ldy in bytes. Accumulator (i, r) is Y(2i+r); Y8–Y11
// the weights, Y12–Y13 the inputs.
func dots4AVX2(w *asm) {
	name := "dots4AVX2"
	w.WriteString("// func " + name + "(y []float32, ldy int, w []float32, ldw int, x []float32, ldx, nw, m, k int)\n")
	w.WriteString("TEXT ·" + name + "(SB), NOSPLIT, $0-120\n")
	weightRows(w, name, 4)
	w.f("MOVQ y_base+0(FP), DI")
	w.f("MOVQ x_base+64(FP), BX")
	w.f("MOVQ ldx+88(FP), R9")
	w.f("SHLQ $2, R9")
	w.f("MOVQ ldy+24(FP), R8")
	w.f("SHLQ $2, R8")
	w.f("MOVQ m+104(FP), R14")
	w.label(name + "_group")
	w.f("LEAQ (BX)(R9*1), DX")
	w.f("CMPQ R14, $2")
	w.f("JGE %s_m2", name)
	xr := []string{"BX", "DX"}
	for _, nx := range []int{1, 2} {
		l := fmt.Sprintf("%s_m%d", name, nx)
		w.label(l)
		for a := range 8 {
			w.f("VXORPS Y%d, Y%d, Y%d", a, a, a)
		}
		w.f("XORQ AX, AX")
		w.f("MOVQ k+112(FP), CX")
		w.f("SHRQ $3, CX")
		w.f("JZ %s_sum", name)
		w.label(l + "_loop")
		for i := range 4 {
			w.f("VMOVUPS (R%d)(AX*1), Y%d", 10+i, 8+i)
		}
		for r := range nx {
			w.f("VMOVUPS (%s)(AX*1), Y%d", xr[r], 12+r)
		}
		for r := range nx {
			for i := range 4 {
				w.f("VFMADD231PS Y%d, Y%d, Y%d", 12+r, 8+i, 2*i+r)
			}
		}
		w.f("ADDQ $32, AX")
		w.f("DECQ CX")
		w.f("JNZ %s_loop", l)
		w.f("JMP %s_sum", name)
	}
	// Reduce and store output (i, r) for i < nw and r < min(2, rows left).
	w.label(name + "_sum")
	w.f("MOVQ nw+96(FP), CX")
	for r := range 2 {
		if r == 1 {
			w.f("CMPQ R14, $1")
			w.f("JLE %s_next", name)
		}
		for i := range 4 {
			a := 2*i + r
			if i > 0 {
				w.f("CMPQ CX, $%d", i)
				w.f("JLE %s_row%d", name, r+1)
			}
			dst := fmt.Sprintf("%d(DI)", 4*i)
			if r == 1 {
				dst += "(R8*1)"
			}
			reduceY(w, a, dst)
		}
		w.label(fmt.Sprintf("%s_row%d", name, r+1))
	}
	w.label(name + "_next")
	w.f("SUBQ $2, R14")
	w.f("JLE %s_done", name)
	w.f("LEAQ (BX)(R9*2), BX")
	w.f("LEAQ (DI)(R8*2), DI")
	w.f("JMP %s_group", name)
	w.label(name + "_done")
	w.f("VZEROUPPER")
	w.f("RET")
	w.WriteString("\n")
}

// dotsBF16NEON writes into n (bf16_arm64.s) the NEON block of DotsBF16,
//
//	func dots4BF16NEON(out *[64]float32, w []uint16, ldw int, x []float32, kc int)
//
// four weight rows (ldw elements apart; 0 repeats one row) against one
// input row split by SplitBF16, over kc ≥ 1 runs of 32 columns: row r's
// sixteen lanes at out[16r:], which the Go wrapper reduces in one fixed
// order. A word of two bfloat16 gives the odd one by masking off the low
// half (V31) and the even one by shifting it up.
func dotsBF16NEON(n *asm) {
	n.WriteString("\n// func dots4BF16NEON(out *[64]float32, w []uint16, ldw int, x []float32, kc int)\n")
	n.WriteString("TEXT ·dots4BF16NEON(SB), NOSPLIT, $0-72\n")
	n.f("MOVD out+0(FP), R0")
	n.f("MOVD w_base+8(FP), R5")
	n.f("MOVD ldw+32(FP), R2")
	n.f("LSL $1, R2, R2")
	for r := 1; r < 4; r++ {
		n.f("ADD R2, R%d, R%d", 4+r, 5+r)
	}
	n.f("MOVD x_base+40(FP), R3")
	n.f("MOVD kc+64(FP), R4")
	n.f("MOVW $0xffff0000, R9")
	n.f("VDUP R9, V31.S4")
	for a := range 16 {
		n.f("VEOR V%d.B16, V%d.B16, V%d.B16", a, a, a)
	}
	n.label("dotsneon_loop")
	n.f("VLD1.P 64(R3), [V16.S4, V17.S4, V18.S4, V19.S4]")
	n.f("VLD1.P 64(R3), [V20.S4, V21.S4, V22.S4, V23.S4]")
	for r := range 4 {
		n.f("VLD1.P 64(R%d), [V24.S4, V25.S4, V26.S4, V27.S4]", 5+r)
		for q := range 4 {
			n.f("VSHL $16, V%d.S4, V28.S4", 24+q)
			n.f("VAND V31.B16, V%d.B16, V29.B16", 24+q)
			n.f("VFMLA V%d.S4, V28.S4, V%d.S4", 16+q, 4*r+q)
			n.f("VFMLA V%d.S4, V29.S4, V%d.S4", 20+q, 4*r+q)
		}
	}
	n.f("SUB $1, R4, R4")
	n.f("CBNZ R4, dotsneon_loop")
	n.f("VST1.P [V0.S4, V1.S4, V2.S4, V3.S4], 64(R0)")
	n.f("VST1.P [V4.S4, V5.S4, V6.S4, V7.S4], 64(R0)")
	n.f("VST1.P [V8.S4, V9.S4, V10.S4, V11.S4], 64(R0)")
	n.f("VST1 [V12.S4, V13.S4, V14.S4, V15.S4], (R0)")
	n.f("RET")
}

// weightRows points R10–R13 at the nw+96(FP) (1…4) weight rows of
// w_base+32(FP), ldw+56(FP) elements of esz bytes apart; rows past nw
// repeat row 0, so a block always reads four valid rows. It leaves ldw
// in bytes in R15 and CX = nw.
func weightRows(w *asm, name string, esz int) {
	w.f("MOVQ w_base+32(FP), R10")
	w.f("MOVQ ldw+56(FP), R15")
	w.f("SHLQ $%d, R15", bitsOf(esz))
	w.f("MOVQ nw+96(FP), CX")
	for i := 1; i < 4; i++ {
		w.f("MOVQ R10, R%d", 10+i)
	}
	for i := 1; i < 4; i++ {
		w.f("CMPQ CX, $%d", i+1)
		w.f("JLT %s_rows", name)
		w.f("LEAQ %s, R%d", [...]string{"", "(R10)(R15*1)", "(R10)(R15*2)", "(R11)(R15*2)"}[i], 10+i)
	}
	w.label(name + "_rows")
}

// reduceY adds the eight lanes of accumulator Y(a), in the one order every
// AVX2 output uses (lane j with j+4, then j+2, then j+1), and stores the
// sum to dst; X12 is scratch.
func reduceY(w *asm, a int, dst string) {
	w.f("VEXTRACTF128 $1, Y%d, X12", a)
	w.f("VADDPS X12, X%d, X%d", a, a)
	w.f("VMOVHLPS X%d, X%d, X12", a, a)
	w.f("VADDPS X12, X%d, X%d", a, a)
	w.f("VMOVSHDUP X%d, X12", a)
	w.f("VADDSS X12, X%d, X%d", a, a)
	w.f("VMOVSS X%d, %s", a, dst)
}

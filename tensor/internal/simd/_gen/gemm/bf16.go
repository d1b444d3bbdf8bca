package main

// The bfloat16 kernels (bf16_amd64.s, bf16_arm64.s): the AVX512-BF16 GEMM
// micro-kernel (12×32 tile of VDPBF16PS) and the AMX tile kernel; the
// NEON block of DotsBF16 (dots.go) goes to bf16_arm64.s too. The
// instruction-peak loops are in peak.go.
//
// Go's assembler has no mnemonic for VDPBF16PS, so vdpbf16ps encodes it
// as six BYTEs with the Intel-syntax instruction beside them. Every
// encoding emitted was checked against llvm-mc:
//
//	echo 'vdpbf16ps zmm23, zmm24, zmm31' | llvm-mc -x86-asm-syntax=intel -show-encoding -mattr=+avx512bf16
//	# [0x62,0x82,0x3e,0x40,0x52,0xff]

import (
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
)

// writeBF16 writes bf16_amd64.s and bf16_arm64.s into dir.
func writeBF16(dir string) {
	var w asm
	w.WriteString(header)
	bf16Gemm(&w)
	bf16AMX(&w)
	if err := os.WriteFile(filepath.Join(dir, "bf16_amd64.s"), w.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}
	var n asm
	n.WriteString(header)
	dotsBF16NEON(&n)
	if err := os.WriteFile(filepath.Join(dir, "bf16_arm64.s"), n.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}
}

// vdpbf16ps encodes VDPBF16PS zmm(dst), zmm(src1), zmm(src2), all
// registers: for each 32-bit lane i, dst[i] += src1.bf16[2i+1]·src2.bf16[2i+1]
// + src1.bf16[2i]·src2.bf16[2i]. EVEX.512.F3.0F38.W0 52 /r.
func vdpbf16ps(dst, src1, src2 int) string {
	inv := func(b int) int { return b ^ 1 }
	p0 := inv(dst>>3&1)<<7 | inv(src2>>4&1)<<6 | inv(src2>>3&1)<<5 | inv(dst>>4&1)<<4 | 0b10 // R X B R' 0 0 mm=0F38
	p1 := (^src1&15)<<3 | 1<<2 | 0b10                                                        // W=0 vvvv 1 pp=F3
	p2 := 0b10<<5 | inv(src1>>4&1)<<3                                                        // z=0 L'L=512 b=0 V' aaa=0
	modrm := 0b11<<6 | (dst&7)<<3 | src2&7
	return fmt.Sprintf("BYTE $0x62; BYTE $0x%02x; BYTE $0x%02x; BYTE $0x%02x; BYTE $0x52; BYTE $0x%02x // vdpbf16ps zmm%d, zmm%d, zmm%d",
		p0, p1, p2, modrm, dst, src1, src2)
}

// bf16Gemm writes gemmBF16AVX512, the full 12×32 tile. Packed operands, for
// kp pairs of k: a holds kp groups of 12 pairs (row i's bf16 at k = 2q,
// 2q+1 in one 32-bit word), b holds kp groups of 32 pairs (column j's).
// Accumulators Z0–Z23 (row r in Z2r, Z2r+1), B in Z24–Z25, the broadcast
// A pair in Z26–Z31.
func bf16Gemm(w *asm) {
	const MR = 12
	w.WriteString("// func gemmBF16AVX512(kp int, a, b []uint16, c []float32, ldc int, acc bool)\n")
	w.WriteString("TEXT ·gemmBF16AVX512(SB), NOSPLIT, $0-89\n")
	w.f("MOVQ kp+0(FP), CX")
	w.f("MOVQ a_base+8(FP), SI")
	w.f("MOVQ b_base+32(FP), DX")
	w.f("MOVQ c_base+56(FP), DI")
	w.f("MOVQ ldc+80(FP), R8")
	w.f("SHLQ $2, R8")
	w.f("MOVQ DI, R9")
	for range MR {
		w.f("PREFETCHT0 (R9)")
		w.f("PREFETCHT0 64(R9)")
		w.f("ADDQ R8, R9")
	}
	for i := range 2 * MR {
		w.f("VPXORD Z%d, Z%d, Z%d", i, i, i)
	}
	step := func(u int) {
		w.f("VMOVDQU32 %d(DX), Z24", u*128)
		w.f("VMOVDQU32 %d(DX), Z25", u*128+64)
		for r := range MR {
			t := 26 + r%6
			w.f("VPBROADCASTD %d(SI), Z%d", u*4*MR+4*r, t)
			w.f("%s", vdpbf16ps(2*r, 24, t))
			w.f("%s", vdpbf16ps(2*r+1, 25, t))
		}
	}
	// k loop unrolled by 2 pairs.
	w.f("MOVQ CX, R10")
	w.f("SHRQ $1, R10")
	w.f("JZ bf16_tail")
	w.label("bf16_loop")
	step(0)
	step(1)
	w.f("ADDQ $%d, SI", 2*4*MR)
	w.f("ADDQ $256, DX")
	w.f("DECQ R10")
	w.f("JNZ bf16_loop")
	w.label("bf16_tail")
	w.f("ANDQ $1, CX")
	w.f("JZ bf16_store")
	step(0)
	w.label("bf16_store")
	w.f("MOVBQZX acc+88(FP), R9")
	w.f("TESTQ R9, R9")
	w.f("JZ bf16_put")
	for r := range MR {
		w.f("VADDPS (DI), Z%d, Z%d", 2*r, 2*r)
		w.f("VADDPS 64(DI), Z%d, Z%d", 2*r+1, 2*r+1)
		w.f("VMOVUPS Z%d, (DI)", 2*r)
		w.f("VMOVUPS Z%d, 64(DI)", 2*r+1)
		w.f("ADDQ R8, DI")
	}
	w.f("VZEROUPPER")
	w.f("RET")
	w.label("bf16_put")
	for r := range MR {
		w.f("VMOVUPS Z%d, (DI)", 2*r)
		w.f("VMOVUPS Z%d, 64(DI)", 2*r+1)
		w.f("ADDQ R8, DI")
	}
	w.f("VZEROUPPER")
	w.f("RET")
	w.WriteString("\n")
}

// amxEnc holds the AMX instructions bf16AMX uses, encoded by llvm-mc
// (llvm-mc -x86-asm-syntax=intel -show-encoding -mattr=+amx-tile,+amx-bf16):
// Go's assembler has no AMX mnemonics. The stride of a tile load or
// store is the index register.
var amxEnc = map[string][]byte{
	"ldtilecfg [rax]":             {0xc4, 0xe2, 0x78, 0x49, 0x00},
	"tilezero tmm0":               {0xc4, 0xe2, 0x7b, 0x49, 0xc0},
	"tilezero tmm1":               {0xc4, 0xe2, 0x7b, 0x49, 0xc8},
	"tilezero tmm2":               {0xc4, 0xe2, 0x7b, 0x49, 0xd0},
	"tilezero tmm3":               {0xc4, 0xe2, 0x7b, 0x49, 0xd8},
	"tileloadd tmm0, [rdi + r8]":  {0xc4, 0xa2, 0x7b, 0x4b, 0x04, 0x07},
	"tileloadd tmm1, [r11 + r8]":  {0xc4, 0x82, 0x7b, 0x4b, 0x0c, 0x03},
	"tileloadd tmm2, [r12 + r8]":  {0xc4, 0x82, 0x7b, 0x4b, 0x14, 0x04},
	"tileloadd tmm3, [r13 + r8]":  {0xc4, 0x82, 0x7b, 0x4b, 0x5c, 0x05, 0x00},
	"tileloadd tmm4, [rsi + r9]":  {0xc4, 0xa2, 0x7b, 0x4b, 0x24, 0x0e},
	"tileloadd tmm5, [r14 + r9]":  {0xc4, 0x82, 0x7b, 0x4b, 0x2c, 0x0e},
	"tileloadd tmm6, [rdx + r10]": {0xc4, 0xa2, 0x7b, 0x4b, 0x34, 0x12},
	"tileloadd tmm7, [rbx + r10]": {0xc4, 0xa2, 0x7b, 0x4b, 0x3c, 0x13},
	"tdpbf16ps tmm0, tmm4, tmm6":  {0xc4, 0xe2, 0x4a, 0x5c, 0xc4},
	"tdpbf16ps tmm1, tmm4, tmm7":  {0xc4, 0xe2, 0x42, 0x5c, 0xcc},
	"tdpbf16ps tmm2, tmm5, tmm6":  {0xc4, 0xe2, 0x4a, 0x5c, 0xd5},
	"tdpbf16ps tmm3, tmm5, tmm7":  {0xc4, 0xe2, 0x42, 0x5c, 0xdd},
	"tilestored [rdi + r8], tmm0": {0xc4, 0xa2, 0x7a, 0x4b, 0x04, 0x07},
	"tilestored [r11 + r8], tmm1": {0xc4, 0x82, 0x7a, 0x4b, 0x0c, 0x03},
	"tilestored [r12 + r8], tmm2": {0xc4, 0x82, 0x7a, 0x4b, 0x14, 0x04},
	"tilestored [r13 + r8], tmm3": {0xc4, 0x82, 0x7a, 0x4b, 0x5c, 0x05, 0x00},
	"tilerelease":                 {0xc4, 0xe2, 0x78, 0x49, 0xc0},
}

// amx emits one AMX instruction as BYTEs with its mnemonic beside them.
func (w *asm) amx(inst string) {
	enc, ok := amxEnc[inst]
	if !ok {
		log.Fatalf("no encoding for %q", inst)
	}
	var b []string
	for _, x := range enc {
		b = append(b, fmt.Sprintf("BYTE $0x%02x", x))
	}
	w.f("%s // %s", strings.Join(b, "; "), inst)
}

// bf16AMX writes gemmBF16AMX, the full 32×32 tile of C as four 16×16
// float32 tiles (tmm0–tmm3), for a kp that is a multiple of 16. Per block
// of 16 pairs of k, A is two 16-row tiles (tmm4, tmm5: row i of the block
// is 16 pairs, 64 bytes, rows 64 bytes apart) and B two tiles of 16
// columns (tmm6, tmm7: row q is the pairs of 16 columns, 128 bytes apart,
// the 32-column panel's halves), and four TDPBF16PS do 32·32·32
// multiply-adds. The tile state is configured on entry and released on
// exit, so a goroutine never leaves tile state behind.
func bf16AMX(w *asm) {
	w.WriteString("// The tile configuration: palette 1; tiles 0–7 of 16 rows × 64 bytes.\n")
	for i, q := range []uint64{1, 0, 0x0040004000400040, 0x0040004000400040, 0, 0, 0x1010101010101010, 0} {
		w.WriteString(fmt.Sprintf("DATA amxcfg<>+%d(SB)/8, $0x%016x\n", 8*i, q))
	}
	w.WriteString("GLOBL amxcfg<>(SB), RODATA|NOPTR, $64\n\n")
	w.WriteString("// func gemmBF16AMX(kp int, a, b []uint16, c []float32, ldc int, acc bool)\n")
	w.WriteString("TEXT ·gemmBF16AMX(SB), NOSPLIT, $0-89\n")
	w.f("LEAQ amxcfg<>(SB), AX")
	w.amx("ldtilecfg [rax]")
	w.f("MOVQ kp+0(FP), CX")
	w.f("SHRQ $4, CX")
	w.f("MOVQ a_base+8(FP), SI")
	w.f("MOVQ b_base+32(FP), DX")
	w.f("MOVQ c_base+56(FP), DI")
	w.f("MOVQ ldc+80(FP), R8")
	w.f("SHLQ $2, R8")
	w.f("MOVQ $64, R9")
	w.f("MOVQ $128, R10")
	// R11, R12, R13: the other three C tiles (right, below, below right).
	w.f("LEAQ 64(DI), R11")
	w.f("MOVQ R8, R12")
	w.f("SHLQ $4, R12")
	w.f("ADDQ DI, R12")
	w.f("LEAQ 64(R12), R13")
	w.f("MOVBQZX acc+88(FP), AX")
	w.f("TESTQ AX, AX")
	w.f("JZ amx_zero")
	w.amx("tileloadd tmm0, [rdi + r8]")
	w.amx("tileloadd tmm1, [r11 + r8]")
	w.amx("tileloadd tmm2, [r12 + r8]")
	w.amx("tileloadd tmm3, [r13 + r8]")
	w.f("JMP amx_loop")
	w.label("amx_zero")
	for t := range 4 {
		w.amx(fmt.Sprintf("tilezero tmm%d", t))
	}
	w.label("amx_loop")
	w.f("LEAQ 1024(SI), R14")
	w.f("LEAQ 64(DX), BX")
	w.amx("tileloadd tmm4, [rsi + r9]")
	w.amx("tileloadd tmm5, [r14 + r9]")
	w.amx("tileloadd tmm6, [rdx + r10]")
	w.amx("tileloadd tmm7, [rbx + r10]")
	w.amx("tdpbf16ps tmm0, tmm4, tmm6")
	w.amx("tdpbf16ps tmm1, tmm4, tmm7")
	w.amx("tdpbf16ps tmm2, tmm5, tmm6")
	w.amx("tdpbf16ps tmm3, tmm5, tmm7")
	w.f("ADDQ $2048, SI")
	w.f("ADDQ $2048, DX")
	w.f("DECQ CX")
	w.f("JNZ amx_loop")
	w.amx("tilestored [rdi + r8], tmm0")
	w.amx("tilestored [r11 + r8], tmm1")
	w.amx("tilestored [r12 + r8], tmm2")
	w.amx("tilestored [r13 + r8], tmm3")
	w.amx("tilerelease")
	w.f("RET")
	w.WriteString("\n")
}

func bitsOf(n int) int {
	b := 0
	for 1<<b < n {
		b++
	}
	return b
}

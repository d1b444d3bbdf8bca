//go:build gc && !purego

#include "textflag.h"
#include "exp_amd64.h"

// AVX-512 Exp, Log and the two softmax passes. The steps are exp32's and
// log32's (expgeneric.go) with fused multiply-adds; see exp_amd64.go.
//
// Exp keeps its constants in Z16-Z27:
//	Z16 log2e  Z17 ln2Hi  Z18 ln2Lo  Z19-Z24 P0-P5  Z25 1  Z26 clamp 89  Z27 ExpUnderflow

#define EXP_CONSTS \
	VMOVUPS C_LOG2E, Z16; \
	VMOVUPS C_LN2_HI, Z17; \
	VMOVUPS C_LN2_LO, Z18; \
	VMOVUPS C_EXP_P0, Z19; \
	VMOVUPS C_EXP_P1, Z20; \
	VMOVUPS C_EXP_P2, Z21; \
	VMOVUPS C_EXP_P3, Z22; \
	VMOVUPS C_EXP_P4, Z23; \
	VMOVUPS C_EXP_P5, Z24; \
	VMOVUPS C_ONE, Z25; \
	VMOVUPS C_EXP_HI, Z26; \
	VMOVUPS C_EXP_LO, Z27

// EXPCORE sets p = exp(x) for x ≤ 89 (x is clobbered), 0 where x <
// ExpUnderflow, NaN where x is NaN. n, z are scratch, k a mask register.
//
//	n = round(x·log2e); r = x − n·ln2Hi − n·ln2Lo
//	p = (1 + r + r²·P(r)) · 2^n   (VSCALEFPS: one rounding, as the twin's two
//	                              exact-then-rounding multiplies)
// The mask is !(x < ExpUnderflow), true for NaN, and zeroes the result.
#define EXPCORE(x, n, p, z, k) \
	VCMPPS $5, Z27, x, k; \
	VMULPS Z16, x, n; \
	VRNDSCALEPS $8, n, n; \
	VFNMADD231PS Z17, n, x; \
	VFNMADD231PS Z18, n, x; \
	VMOVAPS Z19, p; \
	VFMADD213PS Z20, x, p; \
	VFMADD213PS Z21, x, p; \
	VFMADD213PS Z22, x, p; \
	VFMADD213PS Z23, x, p; \
	VFMADD213PS Z24, x, p; \
	VMULPS x, x, z; \
	VFMADD213PS x, z, p; \
	VADDPS Z25, p, p; \
	VSCALEFPS.Z n, p, k, p

// EXPZ is EXPCORE for any x: above 89 every result overflows to +Inf, so x
// is clamped there first (VMINPS returns its second source, x, for NaN).
#define EXPZ(x, n, p, z, k) \
	VMINPS x, Z26, x; \
	EXPCORE(x, n, p, z, k)

// TAILMASK sets k to the low CX bits (0 < CX < 16).
#define TAILMASK(k) \
	MOVL $1, AX; \
	SHLL CX, AX; \
	DECL AX; \
	KMOVW AX, k

// func expZ(dst, x []float32)
TEXT ·expZ(SB), NOSPLIT, $0-48
	MOVQ dst_base+0(FP), DI
	MOVQ x_base+24(FP), SI
	MOVQ x_len+32(FP), CX
	EXP_CONSTS

exp64:
	CMPQ CX, $64
	JB   exp16
	VMOVUPS (SI), Z0
	VMOVUPS 64(SI), Z4
	VMOVUPS 128(SI), Z8
	VMOVUPS 192(SI), Z12
	EXPZ(Z0, Z1, Z2, Z3, K1)
	EXPZ(Z4, Z5, Z6, Z7, K2)
	EXPZ(Z8, Z9, Z10, Z11, K3)
	EXPZ(Z12, Z13, Z14, Z15, K4)
	VMOVUPS Z2, (DI)
	VMOVUPS Z6, 64(DI)
	VMOVUPS Z10, 128(DI)
	VMOVUPS Z14, 192(DI)
	ADDQ $256, SI
	ADDQ $256, DI
	SUBQ $64, CX
	JMP  exp64

exp16:
	CMPQ CX, $16
	JB   exptail
	VMOVUPS (SI), Z0
	EXPZ(Z0, Z1, Z2, Z3, K1)
	VMOVUPS Z2, (DI)
	ADDQ $64, SI
	ADDQ $64, DI
	SUBQ $16, CX
	JMP  exp16

exptail:
	TESTQ CX, CX
	JZ    expdone
	TAILMASK(K5)
	VMOVUPS.Z (SI), K5, Z0
	EXPZ(Z0, Z1, Z2, Z3, K1)
	VMOVUPS Z2, K5, (DI)

expdone:
	VZEROUPPER
	RET

// Log keeps its constants in Z18-Z31:
//	Z18 1  Z19 0.5  Z20 √2  Z21-Z29 P0-P8  Z30 ln2Hi  Z31 ln2Lo
//
// LOGZ sets y = ln x. VGETMANTPS and VGETEXPPS split x (subnormals
// included) into f·2^e with f in [1, 2); f ≥ √2 moves to f/2, e+1, which
// is the twin's [√½, √2) split. VFIXUPIMMPS then maps the special inputs
// (NaN, ±0, negatives, ±Inf) from x's class alone.
#define LOGZ(x, f, e, y, z, k) \
	VGETMANTPS $0, x, f; \
	VGETEXPPS x, e; \
	VCMPPS $0x1d, Z20, f, k; \
	VMULPS Z19, f, k, f; \
	VADDPS Z18, e, k, e; \
	VSUBPS Z18, f, f; \
	VMOVAPS Z21, y; \
	VFMADD213PS Z22, f, y; \
	VFMADD213PS Z23, f, y; \
	VFMADD213PS Z24, f, y; \
	VFMADD213PS Z25, f, y; \
	VFMADD213PS Z26, f, y; \
	VFMADD213PS Z27, f, y; \
	VFMADD213PS Z28, f, y; \
	VFMADD213PS Z29, f, y; \
	VMULPS f, f, z; \
	VMULPS f, y, y; \
	VMULPS z, y, y; \
	VFMADD231PS Z31, e, y; \
	VFNMADD231PS Z19, z, y; \
	VADDPS f, y, y; \
	VFMADD231PS Z30, e, y; \
	VFIXUPIMMPS $0, C_FIXUP, x, y

// func logZ(dst, x []float32)
TEXT ·logZ(SB), NOSPLIT, $0-48
	MOVQ dst_base+0(FP), DI
	MOVQ x_base+24(FP), SI
	MOVQ x_len+32(FP), CX
	VMOVUPS C_ONE, Z18
	VMOVUPS C_HALF, Z19
	VMOVUPS C_SQRT2, Z20
	VMOVUPS C_LOG_P0, Z21
	VMOVUPS C_LOG_P1, Z22
	VMOVUPS C_LOG_P2, Z23
	VMOVUPS C_LOG_P3, Z24
	VMOVUPS C_LOG_P4, Z25
	VMOVUPS C_LOG_P5, Z26
	VMOVUPS C_LOG_P6, Z27
	VMOVUPS C_LOG_P7, Z28
	VMOVUPS C_LOG_P8, Z29
	VMOVUPS C_LN2_HI, Z30
	VMOVUPS C_LN2_LO, Z31

log48:
	CMPQ CX, $48
	JB   log16
	VMOVUPS (SI), Z0
	VMOVUPS 64(SI), Z5
	VMOVUPS 128(SI), Z10
	LOGZ(Z0, Z1, Z2, Z3, Z4, K1)
	LOGZ(Z5, Z6, Z7, Z8, Z9, K2)
	LOGZ(Z10, Z11, Z12, Z13, Z14, K3)
	VMOVUPS Z3, (DI)
	VMOVUPS Z8, 64(DI)
	VMOVUPS Z13, 128(DI)
	ADDQ $192, SI
	ADDQ $192, DI
	SUBQ $48, CX
	JMP  log48

log16:
	CMPQ CX, $16
	JB   logtail
	VMOVUPS (SI), Z0
	LOGZ(Z0, Z1, Z2, Z3, Z4, K1)
	VMOVUPS Z3, (DI)
	ADDQ $64, SI
	ADDQ $64, DI
	SUBQ $16, CX
	JMP  log16

logtail:
	TESTQ CX, CX
	JZ    logdone
	TAILMASK(K5)
	VMOVUPS.Z (SI), K5, Z0
	LOGZ(Z0, Z1, Z2, Z3, Z4, K1)
	VMOVUPS Z3, K5, (DI)

logdone:
	VZEROUPPER
	RET

// HREDUCE leaves op over the 16 lanes of a in every lane of a; t is scratch.
#define HREDUCE(op, a, t) \
	VSHUFF32X4 $0x4e, a, a, t; \
	op t, a, a; \
	VSHUFF32X4 $0xb1, a, a, t; \
	op t, a, a; \
	VPERMILPS $0x4e, a, t; \
	op t, a, a; \
	VPERMILPS $0xb1, a, t; \
	op t, a, a

// func softmaxStatsZ(x []float32) (m float32, s float64)
//
// Registers: SI block start, BX elements left, CX block length, DX/AX the
// inner pointer and count. Z10 m (every lane), Z11 the m the sums subtract:
// m, or −MaxFloat32 while m is −Inf (so a block of only −Inf sums to 0, not
// NaN), X12 s (float64). Z28 −Inf.
TEXT ·softmaxStatsZ(SB), NOSPLIT, $0-40
	MOVQ x_base+0(FP), SI
	MOVQ x_len+8(FP), BX
	EXP_CONSTS
	VMOVUPS C_NEG_INF, Z28
	VMOVAPS Z28, Z10
	VMOVUPS C_NEG_MAX, Z11
	VXORPD  X12, X12, X12

block:
	TESTQ BX, BX
	JZ    finish
	MOVQ  $2048, CX
	CMPQ  BX, CX
	CMOVQLT BX, CX

	// The block's max, from memory. VMAXPS may drop a NaN; the sum below
	// still meets it, and a NaN term makes s NaN.
	MOVQ    SI, DX
	MOVQ    CX, AX
	VMOVAPS Z28, Z0
	VMOVAPS Z28, Z1
	VMOVAPS Z28, Z2
	VMOVAPS Z28, Z3

max64:
	CMPQ   AX, $64
	JB     max16
	VMAXPS (DX), Z0, Z0
	VMAXPS 64(DX), Z1, Z1
	VMAXPS 128(DX), Z2, Z2
	VMAXPS 192(DX), Z3, Z3
	ADDQ   $256, DX
	SUBQ   $64, AX
	JMP    max64

max16:
	CMPQ   AX, $16
	JB     maxtail
	VMAXPS (DX), Z0, Z0
	ADDQ   $64, DX
	SUBQ   $16, AX
	JMP    max16

maxtail:
	TESTQ AX, AX
	JZ    maxdone
	MOVQ  CX, R8
	MOVQ  AX, CX
	TAILMASK(K5)
	MOVQ  R8, CX
	VMOVAPS Z28, Z4
	VMOVUPS (DX), K5, Z4
	VMAXPS Z4, Z1, Z1

maxdone:
	VMAXPS Z1, Z0, Z0
	VMAXPS Z3, Z2, Z2
	VMAXPS Z2, Z0, Z0
	HREDUCE(VMAXPS, Z0, Z1)

	// A higher max rescales s by exp(m − bm), computed in float64 as
	// d = m − bm (exact), clamped at −200, then exp(d) ≈ e^dh·(1 + dl)
	// with dh = float32(d), dl = d − dh.
	VUCOMISS X10, X0
	JBE      sum
	VUCOMISS C_NEG_INF, X10
	JEQ      setm // the first max: s is 0 (or NaN), nothing to rescale
	VCVTSS2SD X10, X13, X13
	VCVTSS2SD X0, X14, X14
	VSUBSD    X14, X13, X13
	MOVQ      $0xc069000000000000, R8 // −200.0
	MOVQ      R8, X14
	VMAXSD    X14, X13, X13
	VCVTSD2SS X13, X14, X14
	VCVTSS2SD X14, X1, X1
	VSUBSD    X1, X13, X13
	VBROADCASTSS X14, Z2
	EXPCORE(Z2, Z3, Z4, Z5, K1)
	VCVTSS2SD X4, X5, X5
	VMULSD    X5, X13, X13
	VADDSD    X13, X5, X5
	VMULSD    X5, X12, X12

setm:
	VMOVAPS   Z0, Z10
	VMOVAPS   Z0, Z11

sum:
	// Σ exp(x − m) over the block, from L1, in two float32 accumulators.
	MOVQ   SI, DX
	MOVQ   CX, AX
	VXORPS Z8, Z8, Z8
	VXORPS Z9, Z9, Z9

sum32:
	CMPQ    AX, $32
	JB      sum16
	VMOVUPS (DX), Z0
	VMOVUPS 64(DX), Z4
	VSUBPS  Z11, Z0, Z0
	VSUBPS  Z11, Z4, Z4
	EXPCORE(Z0, Z1, Z2, Z3, K1)
	EXPCORE(Z4, Z5, Z6, Z7, K2)
	VADDPS  Z2, Z8, Z8
	VADDPS  Z6, Z9, Z9
	ADDQ    $128, DX
	SUBQ    $32, AX
	JMP     sum32

sum16:
	CMPQ    AX, $16
	JB      sumtail
	VMOVUPS (DX), Z0
	VSUBPS  Z11, Z0, Z0
	EXPCORE(Z0, Z1, Z2, Z3, K1)
	VADDPS  Z2, Z8, Z8
	ADDQ    $64, DX
	SUBQ    $16, AX

sumtail:
	TESTQ AX, AX
	JZ    sumdone
	MOVQ  CX, R8
	MOVQ  AX, CX
	TAILMASK(K5)
	MOVQ  R8, CX
	VMOVUPS.Z (DX), K5, Z0
	VSUBPS    Z11, Z0, Z0
	EXPCORE(Z0, Z1, Z2, Z3, K1)
	VADDPS    Z2, Z9, K5, Z9

sumdone:
	VADDPS Z9, Z8, Z8
	HREDUCE(VADDPS, Z8, Z1)
	VCVTSS2SD X8, X8, X8
	VADDSD    X8, X12, X12
	LEAQ      (SI)(CX*4), SI
	SUBQ      CX, BX
	JMP       block

finish:
	VMOVSS X10, m+24(FP)
	VMOVSD X12, s+32(FP)
	VZEROUPPER
	RET

// func softmaxOutZ(dst, x []float32, m, inv float32)
// dst = exp(x − m)·inv, with x − m ≤ 0 and no NaN (softmaxStatsZ checked).
TEXT ·softmaxOutZ(SB), NOSPLIT, $0-56
	MOVQ dst_base+0(FP), DI
	MOVQ x_base+24(FP), SI
	MOVQ x_len+32(FP), CX
	EXP_CONSTS
	VBROADCASTSS m+48(FP), Z28
	VBROADCASTSS inv+52(FP), Z29

smax32:
	CMPQ    CX, $32
	JB      smax16
	VMOVUPS (SI), Z0
	VMOVUPS 64(SI), Z4
	VSUBPS  Z28, Z0, Z0
	VSUBPS  Z28, Z4, Z4
	EXPCORE(Z0, Z1, Z2, Z3, K1)
	EXPCORE(Z4, Z5, Z6, Z7, K2)
	VMULPS  Z29, Z2, Z2
	VMULPS  Z29, Z6, Z6
	VMOVUPS Z2, (DI)
	VMOVUPS Z6, 64(DI)
	ADDQ    $128, SI
	ADDQ    $128, DI
	SUBQ    $32, CX
	JMP     smax32

smax16:
	CMPQ    CX, $16
	JB      smaxtail
	VMOVUPS (SI), Z0
	VSUBPS  Z28, Z0, Z0
	EXPCORE(Z0, Z1, Z2, Z3, K1)
	VMULPS  Z29, Z2, Z2
	VMOVUPS Z2, (DI)
	ADDQ    $64, SI
	ADDQ    $64, DI
	SUBQ    $16, CX

smaxtail:
	TESTQ CX, CX
	JZ    smaxdone
	TAILMASK(K5)
	VMOVUPS.Z (SI), K5, Z0
	VSUBPS    Z28, Z0, Z0
	EXPCORE(Z0, Z1, Z2, Z3, K1)
	VMULPS    Z29, Z2, Z2
	VMOVUPS   Z2, K5, (DI)

smaxdone:
	VZEROUPPER
	RET

// func logSoftmaxOutZ(dst, x []float32, m, ls float32)
// dst = (x − m) − ls: subtracting m first keeps large logits exact.
TEXT ·logSoftmaxOutZ(SB), NOSPLIT, $0-56
	MOVQ dst_base+0(FP), DI
	MOVQ x_base+24(FP), SI
	MOVQ x_len+32(FP), CX
	VBROADCASTSS m+48(FP), Z28
	VBROADCASTSS ls+52(FP), Z29

lsm64:
	CMPQ    CX, $64
	JB      lsm16
	VMOVUPS (SI), Z0
	VMOVUPS 64(SI), Z1
	VMOVUPS 128(SI), Z2
	VMOVUPS 192(SI), Z3
	VSUBPS  Z28, Z0, Z0
	VSUBPS  Z28, Z1, Z1
	VSUBPS  Z28, Z2, Z2
	VSUBPS  Z28, Z3, Z3
	VSUBPS  Z29, Z0, Z0
	VSUBPS  Z29, Z1, Z1
	VSUBPS  Z29, Z2, Z2
	VSUBPS  Z29, Z3, Z3
	VMOVUPS Z0, (DI)
	VMOVUPS Z1, 64(DI)
	VMOVUPS Z2, 128(DI)
	VMOVUPS Z3, 192(DI)
	ADDQ    $256, SI
	ADDQ    $256, DI
	SUBQ    $64, CX
	JMP     lsm64

lsm16:
	CMPQ    CX, $16
	JB      lsmtail
	VMOVUPS (SI), Z0
	VSUBPS  Z28, Z0, Z0
	VSUBPS  Z29, Z0, Z0
	VMOVUPS Z0, (DI)
	ADDQ    $64, SI
	ADDQ    $64, DI
	SUBQ    $16, CX
	JMP     lsm16

lsmtail:
	TESTQ CX, CX
	JZ    lsmdone
	TAILMASK(K5)
	VMOVUPS.Z (SI), K5, Z0
	VSUBPS    Z28, Z0, Z0
	VSUBPS    Z29, Z0, Z0
	VMOVUPS   Z0, K5, (DI)

lsmdone:
	VZEROUPPER
	RET

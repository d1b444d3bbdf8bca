//go:build gc && !purego

#include "textflag.h"
#include "exp_amd64.h"

// AVX2+FMA Exp, Log and the two softmax passes. The steps are exp32's and
// log32's (expgeneric.go) with fused multiply-adds; see exp_amd64.go.
// With 16 registers, constants stay in memory (expConst rows) as the
// memory operand of each instruction, except those a NaN-preserving
// VMINPS/VMAXPS needs in a register.

// EXPY sets p = exp(x) (x is clobbered) exactly as exp32 does, the scale
// split into 2^(n>>1)·2^(n−n>>1) so n = 128 needs no special case. Y15
// holds the clamp 89: VMINPS returns its second source, x, for NaN. The
// mask msk is !(x < ExpUnderflow), true for NaN, and zeroes the result;
// it zeroes x first too, so flushed lanes compute e^0 rather than a
// subnormal (whose microcode assist costs over ten times the kernel).
#define EXPY(x, n, p, z, msk) \
	VCMPPS $5, C_EXP_LO, x, msk; \
	VANDPS msk, x, x; \
	VMINPS x, Y15, x; \
	VMULPS C_LOG2E, x, n; \
	VROUNDPS $8, n, n; \
	VFNMADD231PS C_LN2_HI, n, x; \
	VFNMADD231PS C_LN2_LO, n, x; \
	VMOVUPS C_EXP_P0, p; \
	VFMADD213PS C_EXP_P1, x, p; \
	VFMADD213PS C_EXP_P2, x, p; \
	VFMADD213PS C_EXP_P3, x, p; \
	VFMADD213PS C_EXP_P4, x, p; \
	VFMADD213PS C_EXP_P5, x, p; \
	VMULPS x, x, z; \
	VFMADD213PS x, z, p; \
	VADDPS C_ONE, p, p; \
	VCVTPS2DQ n, n; \
	VPSRAD $1, n, z; \
	VPSUBD z, n, n; \
	VPADDD C_BIAS, z, z; \
	VPSLLD $23, z, z; \
	VPADDD C_BIAS, n, n; \
	VPSLLD $23, n, n; \
	VMULPS z, p, p; \
	VMULPS n, p, p; \
	VANDPS msk, p, p

// EXPNEG sets p = exp(t) for t ≤ 0 clamped below at Y14 (−87 or −88):
// n = round(t·log2e) lies in [−127, 0], so a single factor 2^n whose bits
// are (n + 127)<<23 does, and the round-to-integer by adding 1.5·2^23 + 127
// leaves exactly those bits in the sum's low mantissa. n = −127 gives the
// factor 0. VMAXPS keeps a NaN t.
#define EXPNEG(t, n, p, z) \
	VMAXPS t, Y14, t; \
	VMOVUPS C_MAGIC127, n; \
	VFMADD231PS C_LOG2E, t, n; \
	VSUBPS C_MAGIC127, n, z; \
	VFNMADD231PS C_LN2_HI, z, t; \
	VFNMADD231PS C_LN2_LO, z, t; \
	VPSLLD $23, n, n; \
	VMOVUPS C_EXP_P0, p; \
	VFMADD213PS C_EXP_P1, t, p; \
	VFMADD213PS C_EXP_P2, t, p; \
	VFMADD213PS C_EXP_P3, t, p; \
	VFMADD213PS C_EXP_P4, t, p; \
	VFMADD213PS C_EXP_P5, t, p; \
	VMULPS t, t, z; \
	VFMADD213PS t, z, p; \
	VADDPS C_ONE, p, p; \
	VMULPS n, p, p

// TAILMASKY loads into m the lane mask of the first CX lanes (0 < CX < 8).
#define TAILMASKY(m) \
	MOVQ $8, AX; \
	SUBQ CX, AX; \
	LEAQ C_MASK_TAB, R8; \
	VMOVDQU (R8)(AX*4), m

// func expY(dst, x []float32)
TEXT ·expY(SB), NOSPLIT, $0-48
	MOVQ dst_base+0(FP), DI
	MOVQ x_base+24(FP), SI
	MOVQ x_len+32(FP), CX
	VMOVUPS C_EXP_HI, Y15

exp16:
	CMPQ    CX, $16
	JB      exp8
	VMOVUPS (SI), Y0
	VMOVUPS 32(SI), Y5
	EXPY(Y0, Y1, Y2, Y3, Y4)
	EXPY(Y5, Y6, Y7, Y8, Y9)
	VMOVUPS Y2, (DI)
	VMOVUPS Y7, 32(DI)
	ADDQ    $64, SI
	ADDQ    $64, DI
	SUBQ    $16, CX
	JMP     exp16

exp8:
	CMPQ    CX, $8
	JB      exptail
	VMOVUPS (SI), Y0
	EXPY(Y0, Y1, Y2, Y3, Y4)
	VMOVUPS Y2, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DI
	SUBQ    $8, CX

exptail:
	TESTQ CX, CX
	JZ    expdone
	TAILMASKY(Y10)
	VMASKMOVPS (SI), Y10, Y0
	EXPY(Y0, Y1, Y2, Y3, Y4)
	VMASKMOVPS Y2, Y10, (DI)

expdone:
	VZEROUPPER
	RET

// LOGY sets y = ln x exactly as log32 does: subnormal x (a = x < 2^−126)
// is scaled, here by 2^149 with e −149 by reading its bits as an integer
// (a multiply by 2^23 would take a microcode assist on the subnormal
// operand, ten times the kernel's cost); the exponent field gives e, the mantissa
// m in [0.5, 1), and m < √½ becomes 2m − 1 with e − 1, else m − 1. The
// special inputs are blended in at the end: NaN and +Inf give x, x < 0
// NaN (all ones), ±0 −Inf.
#define LOGY(x, a, e, f, y) \
	VCMPPS $1, C_MIN_NORM, x, a; \
	VCVTDQ2PS x, f; \
	VBLENDVPS a, f, x, f; \
	VANDPS C_M149, a, a; \
	VPSRLD $23, f, e; \
	VCVTDQ2PS e, e; \
	VADDPS C_M126, e, e; \
	VADDPS a, e, e; \
	VANDPS C_MANT_MASK, f, f; \
	VORPS C_HALF, f, f; \
	VCMPPS $1, C_SQRT_HF, f, a; \
	VANDPS C_ONE, a, y; \
	VSUBPS y, e, e; \
	VANDPS f, a, a; \
	VADDPS a, f, f; \
	VSUBPS C_ONE, f, f; \
	VMOVUPS C_LOG_P0, y; \
	VFMADD213PS C_LOG_P1, f, y; \
	VFMADD213PS C_LOG_P2, f, y; \
	VFMADD213PS C_LOG_P3, f, y; \
	VFMADD213PS C_LOG_P4, f, y; \
	VFMADD213PS C_LOG_P5, f, y; \
	VFMADD213PS C_LOG_P6, f, y; \
	VFMADD213PS C_LOG_P7, f, y; \
	VFMADD213PS C_LOG_P8, f, y; \
	VMULPS f, f, a; \
	VMULPS f, y, y; \
	VMULPS a, y, y; \
	VFMADD231PS C_LN2_LO, e, y; \
	VFNMADD231PS C_HALF, a, y; \
	VADDPS f, y, y; \
	VFMADD231PS C_LN2_HI, e, y; \
	VCMPPS $5, C_INF, x, a; \
	VBLENDVPS a, x, y, y; \
	VCMPPS $1, C_ZERO, x, a; \
	VORPS a, y, y; \
	VCMPPS $0, C_ZERO, x, a; \
	VBLENDVPS a, C_NEG_INF, y, y

// func logY(dst, x []float32)
TEXT ·logY(SB), NOSPLIT, $0-48
	MOVQ dst_base+0(FP), DI
	MOVQ x_base+24(FP), SI
	MOVQ x_len+32(FP), CX

log16:
	CMPQ    CX, $16
	JB      log8
	VMOVUPS (SI), Y0
	VMOVUPS 32(SI), Y5
	LOGY(Y0, Y1, Y2, Y3, Y4)
	LOGY(Y5, Y6, Y7, Y8, Y9)
	VMOVUPS Y4, (DI)
	VMOVUPS Y9, 32(DI)
	ADDQ    $64, SI
	ADDQ    $64, DI
	SUBQ    $16, CX
	JMP     log16

log8:
	CMPQ    CX, $8
	JB      logtail
	VMOVUPS (SI), Y0
	LOGY(Y0, Y1, Y2, Y3, Y4)
	VMOVUPS Y4, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DI
	SUBQ    $8, CX

logtail:
	TESTQ CX, CX
	JZ    logdone
	TAILMASKY(Y10)
	VMASKMOVPS (SI), Y10, Y0
	LOGY(Y0, Y1, Y2, Y3, Y4)
	VMASKMOVPS Y4, Y10, (DI)

logdone:
	VZEROUPPER
	RET

// HREDY leaves op over the 8 lanes of ya (xa its low half) in every lane;
// xt is scratch.
#define HREDY(op, ya, xa, xt) \
	VEXTRACTF128 $1, ya, xt; \
	op xt, xa, xa; \
	VPERMILPS $0x4e, xa, xt; \
	op xt, xa, xa; \
	VPERMILPS $0xb1, xa, xt; \
	op xt, xa, xa; \
	VBROADCASTSS xa, ya

// func softmaxStatsY(x []float32) (m float32, s float64)
//
// As softmaxStatsZ. Registers: SI block start, BX elements left, CX block
// length, DX/AX the inner pointer and count. Y10 m, Y11 the m the sums
// subtract (−MaxFloat32 while m is −Inf), X12 s, Y14 −87 (the exp clamp:
// a term of e^−87 is negligible beside the max's term of 1, and stays
// normal), Y15 −Inf.
TEXT ·softmaxStatsY(SB), NOSPLIT, $0-40
	MOVQ x_base+0(FP), SI
	MOVQ x_len+8(FP), BX
	VMOVUPS C_CLAMP87, Y14
	VMOVUPS C_NEG_INF, Y15
	VMOVAPS Y15, Y10
	VMOVUPS C_NEG_MAX, Y11
	VXORPD  X12, X12, X12

block:
	TESTQ BX, BX
	JZ    finish
	MOVQ  $2048, CX
	CMPQ  BX, CX
	CMOVQLT BX, CX

	MOVQ    SI, DX
	MOVQ    CX, AX
	VMOVAPS Y15, Y0
	VMOVAPS Y15, Y1
	VMOVAPS Y15, Y2
	VMOVAPS Y15, Y3

max32:
	CMPQ   AX, $32
	JB     max8
	VMAXPS (DX), Y0, Y0
	VMAXPS 32(DX), Y1, Y1
	VMAXPS 64(DX), Y2, Y2
	VMAXPS 96(DX), Y3, Y3
	ADDQ   $128, DX
	SUBQ   $32, AX
	JMP    max32

max8:
	CMPQ   AX, $8
	JB     maxtail
	VMAXPS (DX), Y0, Y0
	ADDQ   $32, DX
	SUBQ   $8, AX
	JMP    max8

maxtail:
	TESTQ AX, AX
	JZ    maxdone
	MOVQ  CX, R9
	MOVQ  AX, CX
	TAILMASKY(Y13)
	MOVQ  R9, CX
	VMASKMOVPS (DX), Y13, Y4
	VBLENDVPS  Y13, Y4, Y15, Y4
	VMAXPS     Y4, Y1, Y1

maxdone:
	VMAXPS Y1, Y0, Y0
	VMAXPS Y3, Y2, Y2
	VMAXPS Y2, Y0, Y0
	HREDY(VMAXPS, Y0, X0, X1)

	VUCOMISS X10, X0
	JBE      sum
	VUCOMISS C_NEG_INF, X10
	JEQ      setm // the first max: s is 0 (or NaN), nothing to rescale
	VCVTSS2SD X10, X13, X13
	VCVTSS2SD X0, X4, X4
	VSUBSD    X4, X13, X13
	MOVQ      $0xc069000000000000, R8 // −200.0
	MOVQ      R8, X4
	VMAXSD    X4, X13, X13
	VCVTSD2SS X13, X4, X4
	VCVTSS2SD X4, X1, X1
	VSUBSD    X1, X13, X13
	VBROADCASTSS X4, Y2
	EXPNEG(Y2, Y3, Y4, Y5)
	VCVTSS2SD X4, X5, X5
	VMULSD    X5, X13, X13
	VADDSD    X13, X5, X5
	VMULSD    X5, X12, X12

setm:
	VMOVAPS   Y0, Y10
	VMOVAPS   Y0, Y11

sum:
	MOVQ   SI, DX
	MOVQ   CX, AX
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9

sum16:
	CMPQ    AX, $16
	JB      sum8
	VMOVUPS (DX), Y0
	VMOVUPS 32(DX), Y4
	VSUBPS  Y11, Y0, Y0
	VSUBPS  Y11, Y4, Y4
	EXPNEG(Y0, Y1, Y2, Y3)
	EXPNEG(Y4, Y5, Y6, Y7)
	VADDPS  Y2, Y8, Y8
	VADDPS  Y6, Y9, Y9
	ADDQ    $64, DX
	SUBQ    $16, AX
	JMP     sum16

sum8:
	CMPQ    AX, $8
	JB      sumtail
	VMOVUPS (DX), Y0
	VSUBPS  Y11, Y0, Y0
	EXPNEG(Y0, Y1, Y2, Y3)
	VADDPS  Y2, Y8, Y8
	ADDQ    $32, DX
	SUBQ    $8, AX

sumtail:
	TESTQ AX, AX
	JZ    sumdone
	MOVQ  CX, R9
	MOVQ  AX, CX
	TAILMASKY(Y13)
	MOVQ  R9, CX
	VMASKMOVPS (DX), Y13, Y0
	VSUBPS     Y11, Y0, Y0
	EXPNEG(Y0, Y1, Y2, Y3)
	VANDPS     Y13, Y2, Y2
	VADDPS     Y2, Y9, Y9

sumdone:
	VADDPS Y9, Y8, Y8
	HREDY(VADDPS, Y8, X8, X1)
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

// func softmaxOutY(dst, x []float32, m, inv float32)
// dst = exp(x − m)·inv, with x − m ≤ 0 and no NaN (softmaxStatsY checked).
// x − m below ExpUnderflow is flushed to 0 as the twin does, after
// computing e^0 in its place: a subnormal intermediate would cost a
// microcode assist.
TEXT ·softmaxOutY(SB), NOSPLIT, $0-56
	MOVQ dst_base+0(FP), DI
	MOVQ x_base+24(FP), SI
	MOVQ x_len+32(FP), CX
	VMOVUPS C_CLAMP88, Y14
	VBROADCASTSS m+48(FP), Y10
	VBROADCASTSS inv+52(FP), Y11

smax16:
	CMPQ    CX, $16
	JB      smax8
	VMOVUPS (SI), Y0
	VMOVUPS 32(SI), Y5
	VSUBPS  Y10, Y0, Y0
	VSUBPS  Y10, Y5, Y5
	VCMPPS  $5, C_EXP_LO, Y0, Y4
	VCMPPS  $5, C_EXP_LO, Y5, Y9
	VANDPS  Y4, Y0, Y0
	VANDPS  Y9, Y5, Y5
	EXPNEG(Y0, Y1, Y2, Y3)
	EXPNEG(Y5, Y6, Y7, Y8)
	VANDPS  Y4, Y2, Y2
	VANDPS  Y9, Y7, Y7
	VMULPS  Y11, Y2, Y2
	VMULPS  Y11, Y7, Y7
	VMOVUPS Y2, (DI)
	VMOVUPS Y7, 32(DI)
	ADDQ    $64, SI
	ADDQ    $64, DI
	SUBQ    $16, CX
	JMP     smax16

smax8:
	CMPQ    CX, $8
	JB      smaxtail
	VMOVUPS (SI), Y0
	VSUBPS  Y10, Y0, Y0
	VCMPPS  $5, C_EXP_LO, Y0, Y4
	VANDPS  Y4, Y0, Y0
	EXPNEG(Y0, Y1, Y2, Y3)
	VANDPS  Y4, Y2, Y2
	VMULPS  Y11, Y2, Y2
	VMOVUPS Y2, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DI
	SUBQ    $8, CX

smaxtail:
	TESTQ CX, CX
	JZ    smaxdone
	TAILMASKY(Y13)
	VMASKMOVPS (SI), Y13, Y0
	VSUBPS     Y10, Y0, Y0
	VCMPPS     $5, C_EXP_LO, Y0, Y4
	VANDPS     Y4, Y0, Y0
	EXPNEG(Y0, Y1, Y2, Y3)
	VANDPS     Y4, Y2, Y2
	VMULPS     Y11, Y2, Y2
	VMASKMOVPS Y2, Y13, (DI)

smaxdone:
	VZEROUPPER
	RET

// func logSoftmaxOutY(dst, x []float32, m, ls float32)
// dst = (x − m) − ls.
TEXT ·logSoftmaxOutY(SB), NOSPLIT, $0-56
	MOVQ dst_base+0(FP), DI
	MOVQ x_base+24(FP), SI
	MOVQ x_len+32(FP), CX
	VBROADCASTSS m+48(FP), Y10
	VBROADCASTSS ls+52(FP), Y11

lsm32:
	CMPQ    CX, $32
	JB      lsm8
	VMOVUPS (SI), Y0
	VMOVUPS 32(SI), Y1
	VMOVUPS 64(SI), Y2
	VMOVUPS 96(SI), Y3
	VSUBPS  Y10, Y0, Y0
	VSUBPS  Y10, Y1, Y1
	VSUBPS  Y10, Y2, Y2
	VSUBPS  Y10, Y3, Y3
	VSUBPS  Y11, Y0, Y0
	VSUBPS  Y11, Y1, Y1
	VSUBPS  Y11, Y2, Y2
	VSUBPS  Y11, Y3, Y3
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	ADDQ    $128, SI
	ADDQ    $128, DI
	SUBQ    $32, CX
	JMP     lsm32

lsm8:
	CMPQ    CX, $8
	JB      lsmtail
	VMOVUPS (SI), Y0
	VSUBPS  Y10, Y0, Y0
	VSUBPS  Y11, Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DI
	SUBQ    $8, CX
	JMP     lsm8

lsmtail:
	TESTQ CX, CX
	JZ    lsmdone
	TAILMASKY(Y13)
	VMASKMOVPS (SI), Y13, Y0
	VSUBPS     Y10, Y0, Y0
	VSUBPS     Y11, Y0, Y0
	VMASKMOVPS Y0, Y13, (DI)

lsmdone:
	VZEROUPPER
	RET

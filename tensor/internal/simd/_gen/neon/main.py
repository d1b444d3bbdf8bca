#!/usr/bin/env python3
"""Generates neon_arm64.s, the NEON tier of package simd.

The Go arm64 assembler has no mnemonics for most Advanced SIMD
floating-point instructions (vector FADD, FMUL, FMAX, FRINTN, FCVTN, ...),
so every vector and FP instruction is emitted as a WORD whose encoding
llvm-mc computes from the GNU syntax written next to it as a comment.
Control flow, argument loads and integer bookkeeping stay in Go syntax.

After editing, regenerate from package simd's directory (it needs
llvm-mc, from Debian's llvm package; the build never does, and CI runs it
only to check that neon_arm64.s is up to date):

	GOARCH=arm64 go generate .

which runs, in this directory,

	python3 main.py -out ../../neon_arm64.s

then test under qemu-user:

	GOARCH=arm64 go test -exec qemu-aarch64 ./tensor/internal/simd/

Register use: R0 dst, R1 x, R2 y, R3 length left, R4-R7 scratch; R18,
R26-R29 are never touched. V0-V31 are all caller-saved in Go.
"""

import argparse
import os
import struct
import subprocess
import sys

out = []  # str (Go line) or ("N", gnu) for an encoded instruction


def go(s):
    out.append("\t" + s)


def label(l):
    out.append(l + ":")


def n(gnu):
    out.append(("N", gnu))


def blank():
    out.append("")


def comment(s):
    out.append("// " + s)


def f32bits(x):
    return struct.unpack("<I", struct.pack("<f", x))[0]


def f64bits(x):
    return struct.unpack("<Q", struct.pack("<d", x))[0]


def dupc(v, bits):
    """Broadcasts a 32-bit constant into every lane of v."""
    go("MOVD $0x%08x, R7" % bits)
    n("dup v%d.4s, w7" % v)


def text(name, args, frame):
    blank()
    comment(args)
    out.append("TEXT ·%s(SB), NOSPLIT, $0-%d" % (name, frame))


# ---------------------------------------------------------------------------
# Exp: Cephes expf, the steps of exp32 in expgeneric.go.

EXP_CONST = {  # register: (name, bits)
    16: ("log2e", f32bits(1.44269504088896341)),
    17: ("ln2Hi", f32bits(0.693359375)),
    18: ("ln2Lo", f32bits(-2.12194440e-4)),
    19: ("P0", f32bits(1.9875691500e-4)),
    20: ("P1", f32bits(1.3981999507e-3)),
    21: ("P2", f32bits(8.3334519073e-3)),
    22: ("P3", f32bits(4.1665795894e-2)),
    23: ("P4", f32bits(1.6666665459e-1)),
    24: ("P5", f32bits(5.0000001201e-1)),
    25: ("1", f32bits(1.0)),
    26: ("ExpOverflow", f32bits(88.72283935546875)),
    27: ("ExpUnderflow", f32bits(-87.33654475055310898657)),
    28: ("+Inf", 0x7F800000),
    29: ("127", 127),
}


def exp_consts():
    for v, (name, bits) in sorted(EXP_CONST.items()):
        go("MOVD $0x%08x, R7 // %s" % (bits, name))
        n("dup v%d.4s, w7" % v)


def exp_steps(x, nn, r, z, p, t):
    """exp of the four lanes of v<x> into v<t>; v<x> is kept."""
    s = lambda *a: ".4s, ".join("v%d" % i for i in a) + ".4s"
    b = lambda *a: ".16b, ".join("v%d" % i for i in a) + ".16b"
    return [
        "fmul %s" % s(nn, x, 16),  # n = round(x·log2e), ties to even
        "frintn %s" % s(nn, nn),
        "mov %s" % b(r, x),  # r = x − n·ln2Hi − n·ln2Lo
        "fmls %s" % s(r, nn, 17),
        "fmls %s" % s(r, nn, 18),
        "fmul %s" % s(z, r, r),  # z = r²
        "mov %s" % b(p, 20),  # Horner: p = ((((P0·r+P1)·r+P2)·r+P3)·r+P4)·r+P5
        "fmla %s" % s(p, 19, r),
        "mov %s" % b(t, 21),
        "fmla %s" % s(t, p, r),
        "mov %s" % b(p, 22),
        "fmla %s" % s(p, t, r),
        "mov %s" % b(t, 23),
        "fmla %s" % s(t, p, r),
        "mov %s" % b(p, 24),
        "fmla %s" % s(p, t, r),
        "mov %s" % b(t, r),  # t = p·z + r + 1
        "fmla %s" % s(t, p, z),
        "fadd %s" % s(t, t, 25),
        "fcvtzs %s" % s(nn, nn),  # e1 = n>>1, e2 = n − e1
        "sshr %s, #1" % s(z, nn),
        "sub %s" % s(nn, nn, z),
        "add %s" % s(z, z, 29),  # 2^e1, 2^e2 as float bits
        "shl %s, #23" % s(z, z),
        "add %s" % s(nn, nn, 29),
        "shl %s, #23" % s(nn, nn),
        "fmul %s" % s(t, t, z),
        "fmul %s" % s(t, t, nn),
        "fcmgt %s" % s(p, x, 26),  # x > ExpOverflow: +Inf
        "bit %s" % b(t, 28, p),
        "fcmgt %s" % s(p, 27, x),  # x < ExpUnderflow: 0 (NaN stays NaN)
        "bic %s" % b(t, t, p),
    ]


EXP_A = (0, 2, 3, 4, 5, 6)  # x, n, r, z, p, t: result in v6
EXP_B = (1, 7, 8, 9, 10, 11)  # result in v11


def exp1():
    for i in exp_steps(*EXP_A):
        n(i)


def exp2():
    for a, b in zip(exp_steps(*EXP_A), exp_steps(*EXP_B)):
        n(a)
        n(b)


def exp_loops(pre, post, prefix):
    """Runs exp over R3 elements of x (R1): pre(k) adjusts the loaded
    registers, post(k) consumes the results, k = 8, 4 or 1 lanes."""
    label(prefix + "8")
    go("CMP $8, R3")
    go("BLT %s4" % prefix)
    n("ldp q0, q1, [x1], #32")
    pre(8)
    exp2()
    post(8)
    go("SUB $8, R3")
    go("B %s8" % prefix)
    label(prefix + "4")
    go("CMP $4, R3")
    go("BLT %s1pre" % prefix)
    n("ldr q0, [x1], #16")
    pre(4)
    exp1()
    post(4)
    go("SUB $4, R3")
    go("B %s4" % prefix)
    label(prefix + "1pre")
    post(0)  # between the vector and the scalar loop
    label(prefix + "1")
    go("CBZ R3, %sdone" % prefix)
    n("ldr s0, [x1], #4")  # lanes 1-3 are zero: computed, never stored
    pre(1)
    exp1()
    post(1)
    go("SUB $1, R3")
    go("B %s1" % prefix)
    label(prefix + "done")


def gen_exp():
    text("expNEON", "func expNEON(dst, x []float32)", 48)
    go("MOVD dst_base+0(FP), R0")
    go("MOVD x_base+24(FP), R1")
    go("MOVD x_len+32(FP), R3")
    exp_consts()

    def post(k):
        if k == 8:
            n("stp q6, q11, [x0], #32")
        elif k == 4:
            n("str q6, [x0], #16")
        elif k == 1:
            n("str s6, [x0], #4")

    exp_loops(lambda k: None, post, "e")
    go("RET")


def gen_softmax_out():
    text("softmaxOutNEON", "func softmaxOutNEON(dst, x []float32, m, inv float32)", 56)
    go("MOVD dst_base+0(FP), R0")
    go("MOVD x_base+24(FP), R1")
    go("MOVD x_len+32(FP), R3")
    go("FMOVS m+48(FP), F30")
    go("FMOVS inv+52(FP), F31")
    n("dup v30.4s, v30.s[0]")
    n("dup v31.4s, v31.s[0]")
    exp_consts()

    def pre(k):
        n("fsub v0.4s, v0.4s, v30.4s")
        if k == 8:
            n("fsub v1.4s, v1.4s, v30.4s")

    def post(k):
        if k == 8:
            n("fmul v6.4s, v6.4s, v31.4s")
            n("fmul v11.4s, v11.4s, v31.4s")
            n("stp q6, q11, [x0], #32")
        elif k == 4:
            n("fmul v6.4s, v6.4s, v31.4s")
            n("str q6, [x0], #16")
        elif k == 1:
            n("fmul v6.4s, v6.4s, v31.4s")
            n("str s6, [x0], #4")

    exp_loops(pre, post, "e")
    go("RET")


def exp64():
    """d0 = exp(d0) in float64 for d0 ≤ 0 (0 below −708): Cody–Waite
    reduction by ln 2 and a degree-12 Taylor polynomial, |error| < 1e-15
    relative. Uses d1-d3 and R7. The softmax pass rescales its running sum
    with it once per new block maximum."""
    go("MOVD $0x%016x, R7 // -708" % f64bits(-708.0))
    n("fmov d1, x7")
    n("fcmp d0, d1")
    go("BGE x64go")
    n("movi d0, #0")
    go("B x64done")
    label("x64go")
    go("MOVD $0x%016x, R7 // log2e" % f64bits(1.4426950408889634))
    n("fmov d1, x7")
    n("fmul d1, d0, d1")
    n("frintn d1, d1")  # k
    go("MOVD $0x3fe62e42fee00000, R7 // ln2Hi (fdlibm)")
    n("fmov d2, x7")
    n("fmsub d0, d1, d2, d0")
    go("MOVD $0x3dea39ef35793c76, R7 // ln2Lo (fdlibm)")
    n("fmov d2, x7")
    n("fmsub d0, d1, d2, d0")  # r = d − k·ln2, |r| ≤ ln2/2
    fact = [1.0]
    for i in range(1, 13):
        fact.append(fact[-1] * i)
    go("MOVD $0x%016x, R7 // 1/12!" % f64bits(1 / fact[12]))
    n("fmov d2, x7")
    for i in range(11, -1, -1):
        go("MOVD $0x%016x, R7 // 1/%d!" % (f64bits(1 / fact[i]), i))
        n("fmov d3, x7")
        n("fmadd d2, d2, d0, d3")
    n("fcvtzs x7, d1")  # 2^k, k ≥ −1022
    go("ADD $1023, R7")
    go("LSL $52, R7")
    n("fmov d3, x7")
    n("fmul d0, d2, d3")
    label("x64done")


def gen_softmax_stats():
    text(
        "softmaxStatsNEON",
        "func softmaxStatsNEON(x []float32) (m float32, s float64)",
        40,
    )
    go("MOVD x_base+0(FP), R1")
    go("MOVD x_len+8(FP), R3")
    exp_consts()
    go("MOVD $0xff800000, R7")
    n("fmov s15, w7")  # m = −Inf
    n("movi d31, #0")  # s = 0
    label("block")
    go("CBZ R3, done")
    go("MOVD $%d, R4" % 4096)
    go("CMP R4, R3")
    go("CSEL LT, R3, R4, R4")  # R4 = min(R3, BlockLen)
    go("SUB R4, R3")
    # Block max, in four accumulators.
    go("MOVD R1, R5")
    go("MOVD R4, R6")
    go("MOVD $0xff800000, R7")
    n("dup v0.4s, w7")
    for i in (1, 2, 3):
        n("mov v%d.16b, v0.16b" % i)
    label("mx16")
    go("CMP $16, R6")
    go("BLT mx4")
    n("ld1 {v4.4s, v5.4s, v6.4s, v7.4s}, [x5], #64")
    for i in range(4):
        n("fmax v%d.4s, v%d.4s, v%d.4s" % (i, i, i + 4))
    go("SUB $16, R6")
    go("B mx16")
    label("mx4")
    go("CMP $4, R6")
    go("BLT mx1pre")
    n("ldr q4, [x5], #16")
    n("fmax v0.4s, v0.4s, v4.4s")
    go("SUB $4, R6")
    go("B mx4")
    label("mx1pre")
    n("fmax v0.4s, v0.4s, v1.4s")
    n("fmax v2.4s, v2.4s, v3.4s")
    n("fmax v0.4s, v0.4s, v2.4s")
    n("fmaxv s14, v0.4s")
    label("mx1")
    go("CBZ R6, mxdone")
    n("ldr s4, [x5], #4")
    n("fmax s14, s14, s4")
    go("SUB $1, R6")
    go("B mx1")
    label("mxdone")
    n("fcmp s14, s14")  # NaN: the caller falls back to the twin
    go("BVS fail")
    n("fcmp s14, s28")  # +Inf: likewise
    go("BEQ fail")
    n("fneg s0, s28")
    n("fcmp s14, s0")  # all −Inf: the block adds nothing
    go("BEQ skip")
    n("fcmp s14, s15")
    go("BLE setdone")
    n("fcmp d31, #0.0")  # new max: s *= exp(m − bm), in float64
    go("BEQ setm")
    n("fcvt d0, s15")
    n("fcvt d1, s14")
    n("fsub d0, d0, d1")
    exp64()
    n("fmul d31, d31, d0")
    label("setm")
    n("fmov s15, s14")
    label("setdone")
    # Block sum of exp(x − m) in float32 lanes.
    n("dup v30.4s, v15.s[0]")
    n("movi v12.16b, #0")
    n("movi v13.16b, #0")
    go("MOVD R3, R5")  # the exp loops count R3 down: save the rest
    go("MOVD R4, R3")

    def pre(k):
        n("fsub v0.4s, v0.4s, v30.4s")
        if k == 8:
            n("fsub v1.4s, v1.4s, v30.4s")

    def post(k):
        if k == 8:
            n("fadd v12.4s, v12.4s, v6.4s")
            n("fadd v13.4s, v13.4s, v11.4s")
        elif k == 4:
            n("fadd v12.4s, v12.4s, v6.4s")
        elif k == 0:
            n("fadd v12.4s, v12.4s, v13.4s")
            n("faddp v12.4s, v12.4s, v12.4s")
            n("faddp s12, v12.2s")
        else:
            n("fadd s12, s12, s6")  # lane 0 only

    exp_loops(pre, post, "s")
    n("fcvt d0, s12")
    n("fadd d31, d31, d0")
    go("MOVD R5, R3")
    go("B block")
    label("skip")
    go("ADD R4<<2, R1, R1")
    go("B block")
    label("fail")
    go("FMOVS F14, m+24(FP)")
    go("MOVD ZR, s+32(FP)")
    go("RET")
    label("done")
    go("FMOVS F15, m+24(FP)")
    go("FMOVD F31, s+32(FP)")
    go("RET")


# ---------------------------------------------------------------------------
# Log: Cephes logf, the steps of log32 in expgeneric.go.

LOG_CONST = {
    12: ("min normal", 0x00800000),
    13: ("-23", f32bits(-23.0)),
    14: ("126", 126),
    15: ("sqrtHf", f32bits(0.707106781186547524)),
    16: ("1", f32bits(1.0)),
    17: ("P1", f32bits(-1.1514610310e-1)),
    18: ("P2", f32bits(1.1676998740e-1)),
    19: ("P3", f32bits(-1.2420140846e-1)),
    20: ("P4", f32bits(1.4249322787e-1)),
    21: ("P5", f32bits(-1.6668057665e-1)),
    22: ("P6", f32bits(2.0000714765e-1)),
    23: ("P7", f32bits(-2.4999993993e-1)),
    24: ("P8", f32bits(3.3333331174e-1)),
    25: ("MaxFloat32", 0x7F7FFFFF),
    26: ("-Inf", 0xFF800000),
    27: ("NaN", 0x7FC00000),
}

# Multipliers used by element: v28.s[0..3], v29.s[0].
LOG_LANES = [
    (28, 0, "2^23", f32bits(2.0**23)),
    (28, 1, "P0", f32bits(7.0376836292e-2)),
    (28, 2, "ln2Lo", f32bits(-2.12194440e-4)),
    (28, 3, "ln2Hi", f32bits(0.693359375)),
    (29, 0, "0.5", f32bits(0.5)),
]


def log_steps(x, a, b, e, z, y):
    """log of the four lanes of v<x> into v<y>; v<x> is kept."""
    s = lambda *r: ".4s, ".join("v%d" % i for i in r) + ".4s"
    q = lambda *r: ".16b, ".join("v%d" % i for i in r) + ".16b"
    st = [
        "fcmgt %s" % s(a, 12, x),  # subnormal (or ≤ 0): scale by 2^23
        "fmul %s, v28.s[0]" % s(b, x),
        "bif %s" % q(b, x, a),
        "and %s" % q(a, a, 13),  # and take 23 off the exponent
        "ushr %s, #23" % s(e, b),
        "sub %s" % s(e, e, 14),
        "scvtf %s" % s(e, e),
        "fadd %s" % s(e, e, a),  # e
        "bic v%d.4s, #0xff, lsl #24" % b,  # m = mantissa·2^-1, in [0.5, 1)
        "bic v%d.4s, #0x80, lsl #16" % b,
        "orr v%d.4s, #0x3f, lsl #24" % b,
        "fcmgt %s" % s(a, 15, b),  # m < √½: e−1, m+m−1; else m−1
        "and %s" % q(z, a, 16),
        "fsub %s" % s(e, e, z),
        "and %s" % q(z, a, b),
        "fadd %s" % s(b, b, z),
        "fsub %s" % s(b, b, 16),
        "fmul %s" % s(z, b, b),  # z = m²
        "mov %s" % q(y, 17),  # Horner over P0 … P8
        "fmla %s, v28.s[1]" % s(y, b),
    ]
    acc, other = y, a
    for c in range(18, 25):
        st += ["mov %s" % q(other, c), "fmla %s" % s(other, acc, b)]
        acc, other = other, acc
    st += [
        "fmul %s" % s(acc, acc, b),  # P(m)·m·z
        "fmul %s" % s(acc, acc, z),
        "fmla %s, v28.s[2]" % s(acc, e),  # + e·ln2Lo
        "fmls %s, v29.s[0]" % s(acc, z),  # − z/2
        "fadd %s" % s(y, b, acc),  # m + …
        "fmla %s, v28.s[3]" % s(y, e),  # + e·ln2Hi
        "fcmgt %s" % s(a, x, 25),  # +Inf → +Inf
        "bit %s" % q(y, x, a),
        "fcmeq %s, #0.0" % s(a, x),  # ±0 → −Inf
        "bit %s" % q(y, 26, a),
        "fcmge %s, #0.0" % s(a, x),  # x < 0 or NaN → NaN
        "bif %s" % q(y, 27, a),
    ]
    assert acc == a
    return st


LOG_A = (0, 1, 2, 3, 4, 5)  # x, a, b, e, z, y: result in v5
LOG_B = (6, 7, 8, 9, 10, 11)  # result in v11


def gen_log():
    text("logNEON", "func logNEON(dst, x []float32)", 48)
    go("MOVD dst_base+0(FP), R0")
    go("MOVD x_base+24(FP), R1")
    go("MOVD x_len+32(FP), R3")
    for v, (name, bits) in sorted(LOG_CONST.items()):
        go("MOVD $0x%08x, R7 // %s" % (bits, name))
        n("dup v%d.4s, w7" % v)
    for v, lane, name, bits in LOG_LANES:
        go("MOVD $0x%08x, R7 // %s" % (bits, name))
        n("mov v%d.s[%d], w7" % (v, lane))
    label("l8")
    go("CMP $8, R3")
    go("BLT l4")
    n("ldp q0, q6, [x1], #32")
    for a, b in zip(log_steps(*LOG_A), log_steps(*LOG_B)):
        n(a)
        n(b)
    n("stp q5, q11, [x0], #32")
    go("SUB $8, R3")
    go("B l8")
    label("l4")
    go("CMP $4, R3")
    go("BLT l1")
    n("ldr q0, [x1], #16")
    for i in log_steps(*LOG_A):
        n(i)
    n("str q5, [x0], #16")
    go("SUB $4, R3")
    go("B l4")
    label("l1")
    go("CBZ R3, done")
    n("ldr s0, [x1], #4")  # lanes 1-3 are zero: computed, never stored
    for i in log_steps(*LOG_A):
        n(i)
    n("str s5, [x0], #4")
    go("SUB $1, R3")
    go("B l1")
    label("done")
    go("RET")


# ---------------------------------------------------------------------------
# Elementwise arithmetic.


def elementwise(name, decl, frame, loads, body16, body4, body1, setup=None):
    """A 16/4/1-lane loop over R3 elements. loads: the argument loads."""
    text(name, decl, frame)
    for l in loads:
        go(l)
    if setup:
        setup()
    label("b16")
    go("CMP $16, R3")
    go("BLT b4")
    body16()
    go("SUB $16, R3")
    go("B b16")
    label("b4")
    go("CMP $4, R3")
    go("BLT b1")
    body4()
    go("SUB $4, R3")
    go("B b4")
    label("b1")
    go("CBZ R3, done")
    body1()
    go("SUB $1, R3")
    go("B b1")
    label("done")
    go("RET")


Q4 = "{v0.4s, v1.4s, v2.4s, v3.4s}"
Q4Y = "{v4.4s, v5.4s, v6.4s, v7.4s}"
DXY = [
    "MOVD dst_base+0(FP), R0",
    "MOVD x_base+24(FP), R1",
    "MOVD x_len+32(FP), R3",
    "MOVD y_base+48(FP), R2",
]


def gen_binary(name, op):
    def b16():
        n("ld1 %s, [x1], #64" % Q4)
        n("ld1 %s, [x2], #64" % Q4Y)
        for i in range(4):
            n("%s v%d.4s, v%d.4s, v%d.4s" % (op, i, i, i + 4))
        n("st1 %s, [x0], #64" % Q4)

    def b4():
        n("ldr q0, [x1], #16")
        n("ldr q4, [x2], #16")
        n("%s v0.4s, v0.4s, v4.4s" % op)
        n("str q0, [x0], #16")

    def b1():
        n("ldr s0, [x1], #4")
        n("ldr s4, [x2], #4")
        n("%s s0, s0, s4" % op)
        n("str s0, [x0], #4")

    elementwise(name, "func %s(dst, x, y []float32)" % name, 72, DXY, b16, b4, b1)


def gen_scale():
    def b16():
        n("ld1 %s, [x1], #64" % Q4)
        for i in range(4):
            n("fmul v%d.4s, v%d.4s, v31.s[0]" % (i, i))
        n("st1 %s, [x0], #64" % Q4)

    def b4():
        n("ldr q0, [x1], #16")
        n("fmul v0.4s, v0.4s, v31.s[0]")
        n("str q0, [x0], #16")

    def b1():
        n("ldr s0, [x1], #4")
        n("fmul s0, s0, s31")
        n("str s0, [x0], #4")

    elementwise(
        "scaleNEON",
        "func scaleNEON(dst []float32, alpha float32, x []float32)",
        56,
        [
            "MOVD dst_base+0(FP), R0",
            "FMOVS alpha+24(FP), F31",
            "MOVD x_base+32(FP), R1",
            "MOVD x_len+40(FP), R3",
        ],
        b16,
        b4,
        b1,
    )


def gen_axpy():
    def b16():
        n("ld1 %s, [x1], #64" % Q4)
        n("ld1 %s, [x2]" % Q4Y)
        for i in range(4):
            n("fmla v%d.4s, v%d.4s, v31.s[0]" % (i + 4, i))
        n("st1 %s, [x2], #64" % Q4Y)

    def b4():
        n("ldr q0, [x1], #16")
        n("ldr q4, [x2]")
        n("fmla v4.4s, v0.4s, v31.s[0]")
        n("str q4, [x2], #16")

    def b1():
        n("ldr s0, [x1], #4")
        n("ldr s4, [x2]")
        n("fmadd s4, s0, s31, s4")
        n("str s4, [x2], #4")

    elementwise(
        "axpyNEON",
        "func axpyNEON(alpha float32, x, y []float32)",
        56,
        [
            "FMOVS alpha+0(FP), F31",
            "MOVD x_base+8(FP), R1",
            "MOVD x_len+16(FP), R3",
            "MOVD y_base+32(FP), R2",
        ],
        b16,
        b4,
        b1,
    )


def gen_softmax_shift():
    """LogSoftmax's second pass: dst = (x − m) − ls, as the twin rounds."""

    def b16():
        n("ld1 %s, [x1], #64" % Q4)
        for i in range(4):
            n("fsub v%d.4s, v%d.4s, v30.4s" % (i, i))
            n("fsub v%d.4s, v%d.4s, v31.4s" % (i, i))
        n("st1 %s, [x0], #64" % Q4)

    def b4():
        n("ldr q0, [x1], #16")
        n("fsub v0.4s, v0.4s, v30.4s")
        n("fsub v0.4s, v0.4s, v31.4s")
        n("str q0, [x0], #16")

    def b1():
        n("ldr s0, [x1], #4")
        n("fsub s0, s0, s30")
        n("fsub s0, s0, s31")
        n("str s0, [x0], #4")

    def setup():
        n("dup v30.4s, v30.s[0]")
        n("dup v31.4s, v31.s[0]")

    elementwise(
        "logSoftmaxOutNEON",
        "func logSoftmaxOutNEON(dst, x []float32, m, ls float32)",
        56,
        [
            "MOVD dst_base+0(FP), R0",
            "MOVD x_base+24(FP), R1",
            "MOVD x_len+32(FP), R3",
            "FMOVS m+48(FP), F30",
            "FMOVS ls+52(FP), F31",
        ],
        b16,
        b4,
        b1,
        setup,
    )


# ---------------------------------------------------------------------------
# Reductions.


def gen_sum_dot(dot):
    name = "dotNEON" if dot else "sumNEON"
    if dot:
        text(name, "func dotNEON(x, y []float32) float32", 52)
        go("MOVD x_base+0(FP), R1")
        go("MOVD x_len+8(FP), R3")
        go("MOVD y_base+24(FP), R2")
    else:
        text(name, "func sumNEON(x []float32) float32", 28)
        go("MOVD x_base+0(FP), R1")
        go("MOVD x_len+8(FP), R3")
    n("movi d31, #0")  # float64 total over blocks
    label("block")
    go("CBZ R3, done")
    go("MOVD $%d, R4" % 4096)
    go("CMP R4, R3")
    go("CSEL LT, R3, R4, R4")  # R4 = min(R3, BlockLen)
    go("SUB R4, R3")
    for i in range(4):
        n("movi v%d.16b, #0" % i)
    label("b16")
    go("CMP $16, R4")
    go("BLT b4")
    n("ld1 %s, [x1], #64" % Q4Y)
    if dot:
        n("ld1 {v8.4s, v9.4s, v10.4s, v11.4s}, [x2], #64")
        for i in range(4):
            n("fmla v%d.4s, v%d.4s, v%d.4s" % (i, i + 4, i + 8))
    else:
        for i in range(4):
            n("fadd v%d.4s, v%d.4s, v%d.4s" % (i, i, i + 4))
    go("SUB $16, R4")
    go("B b16")
    label("b4")
    go("CMP $4, R4")
    go("BLT b1pre")
    n("ldr q4, [x1], #16")
    if dot:
        n("ldr q8, [x2], #16")
        n("fmla v0.4s, v4.4s, v8.4s")
    else:
        n("fadd v0.4s, v0.4s, v4.4s")
    go("SUB $4, R4")
    go("B b4")
    label("b1pre")
    n("fadd v0.4s, v0.4s, v1.4s")
    n("fadd v2.4s, v2.4s, v3.4s")
    n("fadd v0.4s, v0.4s, v2.4s")
    n("faddp v0.4s, v0.4s, v0.4s")
    n("faddp s0, v0.2s")
    label("b1")
    go("CBZ R4, bend")
    n("ldr s4, [x1], #4")
    if dot:
        n("ldr s8, [x2], #4")
        n("fmadd s0, s4, s8, s0")
    else:
        n("fadd s0, s0, s4")
    go("SUB $1, R4")
    go("B b1")
    label("bend")
    n("fcvt d0, s0")
    n("fadd d31, d31, d0")
    go("B block")
    label("done")
    n("fcvt s0, d31")
    go("FMOVS F0, ret+%d(FP)" % (48 if dot else 24))
    go("RET")


def gen_max():
    text("maxNEON", "func maxNEON(x []float32) float32", 28)
    go("MOVD x_base+0(FP), R1")
    go("MOVD x_len+8(FP), R3")
    go("MOVD $0xff800000, R7")
    n("dup v0.4s, w7")
    for i in (1, 2, 3):
        n("mov v%d.16b, v0.16b" % i)
    label("b16")
    go("CMP $16, R3")
    go("BLT b4")
    n("ld1 %s, [x1], #64" % Q4Y)
    for i in range(4):
        n("fmax v%d.4s, v%d.4s, v%d.4s" % (i, i, i + 4))
    go("SUB $16, R3")
    go("B b16")
    label("b4")
    go("CMP $4, R3")
    go("BLT b1pre")
    n("ldr q4, [x1], #16")
    n("fmax v0.4s, v0.4s, v4.4s")
    go("SUB $4, R3")
    go("B b4")
    label("b1pre")
    n("fmax v0.4s, v0.4s, v1.4s")  # FMAX returns NaN if either input is
    n("fmax v2.4s, v2.4s, v3.4s")
    n("fmax v0.4s, v0.4s, v2.4s")
    n("fmaxv s0, v0.4s")
    label("b1")
    go("CBZ R3, done")
    n("ldr s4, [x1], #4")
    n("fmax s0, s0, s4")
    go("SUB $1, R3")
    go("B b1")
    label("done")
    go("FMOVS F0, ret+24(FP)")
    go("RET")


def gen_first_above():
    text("firstAboveNEON", "func firstAboveNEON(x []float32, t float32) int", 40)
    go("MOVD x_base+0(FP), R1")
    go("MOVD x_len+8(FP), R3")
    go("FMOVS t+24(FP), F31")
    go("MOVD R3, R5")
    n("dup v30.4s, v31.s[0]")
    label("b16")
    go("CMP $16, R3")
    go("BLT b4")
    n("ld1 %s, [x1]" % Q4)
    for i in range(4):  # x ≤ t; false for NaN
        n("fcmge v%d.4s, v30.4s, v%d.4s" % (i, i))
    n("and v0.16b, v0.16b, v1.16b")
    n("and v2.16b, v2.16b, v3.16b")
    n("and v0.16b, v0.16b, v2.16b")
    n("uminv s0, v0.4s")
    n("fmov w6, s0")
    go("CBZW R6, b1")  # the scalar loop finds the lane
    go("ADD $64, R1")
    go("SUB $16, R3")
    go("B b16")
    label("b4")
    go("CMP $4, R3")
    go("BLT b1")
    n("ldr q0, [x1]")
    n("fcmge v0.4s, v30.4s, v0.4s")
    n("uminv s0, v0.4s")
    n("fmov w6, s0")
    go("CBZW R6, b1")
    go("ADD $16, R1")
    go("SUB $4, R3")
    go("B b4")
    label("b1")
    go("CBZ R3, none")
    n("ldr s0, [x1], #4")
    n("fcmp s0, s31")
    go("BHI found")  # x > t
    go("BVS found")  # x or t is NaN
    go("SUB $1, R3")
    go("B b1")
    label("found")
    go("SUB R3, R5, R5")
    label("none")
    go("MOVD R5, ret+32(FP)")
    go("RET")


# ---------------------------------------------------------------------------
# Half-precision conversions.


def conv(name, decl, inq, b8, b4, b1):
    """8/4/1-element loops; in/out element sizes differ."""
    text(name, decl, 48)
    go("MOVD dst_base+0(FP), R0")
    go("MOVD x_base+24(FP), R1")
    go("MOVD x_len+32(FP), R3")
    if inq:
        inq()
    label("b8")
    go("CMP $8, R3")
    go("BLT b4")
    b8()
    go("SUB $8, R3")
    go("B b8")
    label("b4")
    go("CMP $4, R3")
    go("BLT b1")
    b4()
    go("SUB $4, R3")
    go("B b4")
    label("b1")
    go("CBZ R3, done")
    b1()
    go("SUB $1, R3")
    go("B b1")
    label("done")
    go("RET")


def bf16_round(x, r):
    """v<r> = the rounded float bits of v<x> whose top half is the bfloat16."""
    return [
        "ushr v%d.4s, v%d.4s, #16" % (r, x),  # round to nearest even
        "and v%d.16b, v%d.16b, v30.16b" % (r, r),
        "add v%d.4s, v%d.4s, v31.4s" % (r, r),
        "add v%d.4s, v%d.4s, v%d.4s" % (r, r, x),
        "fcmeq v%d.4s, v%d.4s, v%d.4s" % (r + 1, x, x),  # NaN: quiet, truncate
        "orr v%d.16b, v%d.16b, v29.16b" % (r + 2, x),
        "bif v%d.16b, v%d.16b, v%d.16b" % (r, r + 2, r + 1),
    ]


def gen_to_bf16():
    def setup():
        dupc(31, 0x7FFF)
        dupc(30, 1)
        dupc(29, 0x00400000)

    def b8():
        n("ldp q0, q1, [x1], #32")
        for a, b in zip(bf16_round(0, 2), bf16_round(1, 5)):
            n(a)
            n(b)
        n("shrn v8.4h, v2.4s, #16")
        n("shrn2 v8.8h, v5.4s, #16")
        n("str q8, [x0], #16")

    def b4():
        n("ldr q0, [x1], #16")
        for i in bf16_round(0, 2):
            n(i)
        n("shrn v8.4h, v2.4s, #16")
        n("str d8, [x0], #8")

    def b1():
        n("ldr s0, [x1], #4")
        for i in bf16_round(0, 2):
            n(i)
        n("shrn v8.4h, v2.4s, #16")
        n("str h8, [x0], #2")

    conv("toBF16NEON", "func toBF16NEON(dst []uint16, x []float32)", setup, b8, b4, b1)


def gen_from_bf16():
    def b8():
        n("ldr q0, [x1], #16")
        n("zip1 v1.8h, v31.8h, v0.8h")  # each half under a zero half
        n("zip2 v2.8h, v31.8h, v0.8h")
        n("stp q1, q2, [x0], #32")

    def b4():
        n("ldr d0, [x1], #8")
        n("zip1 v1.8h, v31.8h, v0.8h")
        n("str q1, [x0], #16")

    def b1():
        n("ldr h0, [x1], #2")
        n("zip1 v1.8h, v31.8h, v0.8h")
        n("str s1, [x0], #4")

    conv(
        "fromBF16NEON",
        "func fromBF16NEON(dst []float32, x []uint16)",
        lambda: n("movi v31.16b, #0"),
        b8,
        b4,
        b1,
    )


def gen_to_f16():
    # FCVTN rounds by FPCR (nearest even: Go never changes it), keeps
    # subnormals (FZ is clear), overflows to ±Inf, and with DN clear makes a
    # NaN quiet keeping its sign and top payload bits: exactly toF16.
    def b8():
        n("ldp q0, q1, [x1], #32")
        n("fcvtn v2.4h, v0.4s")
        n("fcvtn2 v2.8h, v1.4s")
        n("str q2, [x0], #16")

    def b4():
        n("ldr q0, [x1], #16")
        n("fcvtn v2.4h, v0.4s")
        n("str d2, [x0], #8")

    def b1():
        n("ldr s0, [x1], #4")
        n("fcvtn v2.4h, v0.4s")
        n("str h2, [x0], #2")

    conv("toF16NEON", "func toF16NEON(dst []uint16, x []float32)", None, b8, b4, b1)


def gen_from_f16():
    def b8():
        n("ldr q0, [x1], #16")
        n("fcvtl v1.4s, v0.4h")
        n("fcvtl2 v2.4s, v0.8h")
        n("stp q1, q2, [x0], #32")

    def b4():
        n("ldr d0, [x1], #8")
        n("fcvtl v1.4s, v0.4h")
        n("str q1, [x0], #16")

    def b1():
        n("ldr h0, [x1], #2")
        n("fcvtl v1.4s, v0.4h")
        n("str s1, [x0], #4")

    conv("fromF16NEON", "func fromF16NEON(dst []float32, x []uint16)", None, b8, b4, b1)


# ---------------------------------------------------------------------------


def encode(insts):
    """Encodes GNU-syntax instructions with llvm-mc, in order."""
    src = "\n".join(insts) + "\n"
    p = subprocess.run(
        ["llvm-mc", "-triple=aarch64", "-mattr=+neon", "-show-encoding"],
        input=src,
        capture_output=True,
        text=True,
    )
    if p.returncode != 0 or p.stderr:
        sys.exit("llvm-mc:\n" + p.stderr)
    enc = []
    for line in p.stdout.splitlines():
        if "encoding:" in line:
            bs = line.split("encoding: [")[1].rstrip("]").split(",")
            enc.append(int.from_bytes(bytes(int(b, 16) for b in bs), "little"))
    if len(enc) != len(insts):
        sys.exit("llvm-mc returned %d encodings for %d instructions" % (len(enc), len(insts)))
    return enc


def main():
    ap = argparse.ArgumentParser(description="Generates package simd's neon_arm64.s.")
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("-out", default=os.path.join(here, "..", "..", "neon_arm64.s"), help="the file to write")
    args = ap.parse_args()

    gen_binary("addNEON", "fadd")
    gen_binary("subNEON", "fsub")
    gen_binary("mulNEON", "fmul")
    gen_scale()
    gen_axpy()
    gen_sum_dot(False)
    gen_sum_dot(True)
    gen_max()
    gen_first_above()
    gen_exp()
    gen_log()
    gen_softmax_stats()
    gen_softmax_out()
    gen_softmax_shift()
    gen_to_bf16()
    gen_from_bf16()
    gen_to_f16()
    gen_from_f16()

    insts = sorted({o[1] for o in out if isinstance(o, tuple)})
    codes = dict(zip(insts, encode(insts)))
    lines = [
        "// Code generated by _gen/neon; DO NOT EDIT.",
        "",
        "//go:build gc && !purego",
        "",
        "// NEON tier of package simd. Each WORD is the encoding of the GNU-syntax",
        "// instruction in its comment, computed by llvm-mc.",
        "",
        '#include "textflag.h"',
    ]
    for o in out:
        if isinstance(o, tuple):
            lines.append("\tWORD $0x%08x // %s" % (codes[o[1]], o[1]))
        else:
            lines.append(o)
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")


main()

package tensor

import (
	"fmt"
	"runtime"
	"unsafe"

	"github.com/posttrain/posttrain/tensor/internal/simd"
)

// bfloat16 products. Two routes, chosen by the tier (see Tier):
//
//   - With bfloat16 arithmetic (AVX512-BF16), A and B are packed as pairs
//     of bfloat16 along k and the micro-kernel multiplies pairs with
//     VDPBF16PS, twice the multiply-adds of a float32 FMA per instruction.
//   - Elsewhere (AVX-512 without it, AVX2, NEON, generic), the operands are
//     widened to float32 while they are packed and the float32 micro-kernel
//     runs. Memory still holds and streams half the bytes.
//
// Both compute the product of the bfloat16 values exactly rounded to
// float32 products (a product of two bfloat16 is exact in float32) and sum
// them in float32, so the routes differ only in summation order (and in
// VDPBF16PS reading subnormal bfloat16 as zero).

// GemmBF16 computes c = alpha·op(a)·op(b) + beta·c for bfloat16 a and b,
// accumulating and storing in float32, with the semantics and shape rules
// of Gemm. It panics with a *ShapeError on mismatched shapes.
func GemmBF16(transA, transB bool, alpha float32, a, b *BF16, beta float32, c *Dense) {
	m, k, n := gemmShape("GemmBF16", transA, transB, a.shape, b.shape, c.shape)
	gemm(gemmArgs{transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, beta: beta,
		bf: true, a16: a.data, b16: b.data, c: c.data}, true)
}

// GemmMixed computes c = alpha·op(a)·op(b) + beta·c for float32
// activations a and bfloat16 weights b, as a frozen bfloat16 layer
// needs: y = x·Wᵀ is GemmMixed(false, true, 1, x, w, 0, y) for w [out,in],
// and the gradient with respect to x, dx = dy·W, is
// GemmMixed(false, false, 1, dy, w, 0, dx).
//
// The activations are rounded to bfloat16 as they are packed, as
// mixed-precision training does, so the product is GemmBF16's of the
// rounded a and runs at its speed; MatVecBF16 instead keeps one vector
// exact. It panics with a *ShapeError on mismatched shapes.
func GemmMixed(transA, transB bool, alpha float32, a *Dense, b *BF16, beta float32, c *Dense) {
	m, k, n := gemmShape("GemmMixed", transA, transB, a.shape, b.shape, c.shape)
	gemm(gemmArgs{transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, beta: beta,
		bf: true, a: a.data, b16: b.data, c: c.data}, true)
}

// u16 views a float32 packing buffer as twice as many uint16.
func u16(buf []float32) []uint16 {
	return unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(buf))), 2*len(buf))
}

// u32 views a uint16 buffer of even length and 4-byte alignment as pairs.
func u32(buf []uint16) []uint32 {
	return unsafe.Slice((*uint32)(unsafe.Pointer(unsafe.SliceData(buf))), len(buf)/2)
}

// blockBF16 computes rows [r0,r1) × columns [c0,c1) of C with the
// bfloat16 micro-kernel. buf holds the packed B block (as uint16), then
// one packed A tile; its last MR·NR floats are a scratch tile for edges.
func (g *gemmArgs) blockBF16(pl *gemmPlan, r0, r1, c0, c1 int, acc bool, buf []float32) {
	kern := pl.bf
	MR, NR := kern.MR, kern.NR
	h := u16(buf)
	bbuf, abuf := h[:2*gemmBBlock], h[2*gemmBBlock:]
	scratch := buf[len(buf)-MR*NR:]
	n := g.n
	for jc := c0; jc < c1; jc += pl.nc {
		ncur := min(pl.nc, c1-jc)
		for pc := 0; pc < g.k; pc += pl.kc {
			kcur := min(pl.kc, g.k-pc)
			kp := (kcur + 1) / 2
			g.packB16(bbuf, pc, kcur, jc, ncur, NR)
			accNow := acc || pc > 0
			panel := 2 * kp * NR
			for i0 := r0; i0 < r1; i0 += MR {
				m := min(MR, r1-i0)
				a := abuf[:2*kp*MR]
				g.packA16(a, pc, kcur, i0, m, MR)
				for q, j0 := 0, jc; j0 < jc+ncur; q, j0 = q+1, j0+NR {
					nr := min(NR, jc+ncur-j0)
					bp := bbuf[q*panel : (q+1)*panel]
					c := g.c[i0*n+j0:]
					if m == MR && nr == NR && g.alpha == 1 {
						kern.Run(kp, a, bp, c, n, accNow)
						continue
					}
					kern.Run(kp, a, bp, scratch, NR, false)
					for i := range m {
						ci, si := c[i*n:i*n+nr], scratch[i*NR:i*NR+nr]
						if accNow {
							for j, v := range si {
								ci[j] += g.alpha * v
							}
						} else {
							for j, v := range si {
								ci[j] = g.alpha * v
							}
						}
					}
				}
			}
		}
	}
}

// packB16 writes op(B)[pc:pc+kc, jc:jc+nc] into dst as NR-wide panels of
// pairs along k: word q·NR+j of panel p holds B[pc+2q, j] in its low half
// and B[pc+2q+1, j] (0 past kc) in its high half. Lanes past the last
// column of a short panel are left as they were: lanes do not mix and the
// caller discards them.
func (g *gemmArgs) packB16(dst []uint16, pc, kc, jc, nc, NR int) {
	kp := (kc + 1) / 2
	d := u32(dst[:2*kp*NR*ceilDiv(nc, NR)])
	panel := kp * NR
	if !g.transB {
		ldb := g.n
		for q := range kp {
			r0 := g.b16[(pc+2*q)*ldb+jc:][:nc]
			r1 := r0[:0]
			if 2*q+1 < kc {
				r1 = g.b16[(pc+2*q+1)*ldb+jc:][:nc]
			}
			for j0 := 0; j0 < nc; j0 += NR {
				w := min(NR, nc-j0)
				dq := d[j0/NR*panel+q*NR:][:w]
				s0 := r0[j0 : j0+w]
				if len(r1) == 0 {
					for j, v := range s0 {
						dq[j] = uint32(v)
					}
					continue
				}
				s1 := r1[j0 : j0+w]
				for j, v := range s0 {
					dq[j] = uint32(v) | uint32(s1[j])<<16
				}
			}
		}
		return
	}
	// Column j of op(B) is row j of B, its pairs adjacent.
	ldb := g.k
	for j := range nc {
		src := g.b16[(jc+j)*ldb+pc:][:kc]
		dj := d[j/NR*panel+j%NR:]
		q := 0
		for ; 2*q+1 < kc; q++ {
			dj[q*NR] = uint32(src[2*q]) | uint32(src[2*q+1])<<16
		}
		if q < kp {
			dj[q*NR] = uint32(src[2*q])
		}
	}
}

// packA16 writes rows [i0, i0+m) of op(A)[:, pc:pc+kc] into dst as kp
// groups of MR pairs along k, rounding a float32 A to bfloat16; rows m…MR
// and the pad past kc are zero.
func (g *gemmArgs) packA16(dst []uint16, pc, kc, i0, m, MR int) {
	kp := (kc + 1) / 2
	d := u32(dst[:2*kp*MR])
	if m < MR {
		clear(d)
	}
	at := func(i, p int) uint16 { // op(A)[i0+i, pc+p], for the slow paths
		var idx int
		if g.transA {
			idx = (pc+p)*g.m + i0 + i
		} else {
			idx = (i0+i)*g.k + pc + p
		}
		if g.a16 != nil {
			return g.a16[idx]
		}
		return simd.RoundBF16(g.a[idx])
	}
	switch {
	case !g.transA && g.a16 != nil:
		for i := range m {
			src := g.a16[(i0+i)*g.k+pc:][:kc]
			q := 0
			for ; 2*q+1 < kc; q++ {
				d[q*MR+i] = uint32(src[2*q]) | uint32(src[2*q+1])<<16
			}
			if q < kp {
				d[q*MR+i] = uint32(src[2*q])
			}
		}
	case !g.transA:
		for i := range m {
			src := g.a[(i0+i)*g.k+pc:][:kc]
			q := 0
			for ; 2*q+1 < kc; q++ {
				d[q*MR+i] = uint32(simd.RoundBF16(src[2*q])) | uint32(simd.RoundBF16(src[2*q+1]))<<16
			}
			if q < kp {
				d[q*MR+i] = uint32(simd.RoundBF16(src[2*q]))
			}
		}
	default:
		for q := range kp {
			for i := range m {
				lo, hi := at(i, 2*q), uint16(0)
				if 2*q+1 < kc {
					hi = at(i, 2*q+1)
				}
				d[q*MR+i] = uint32(lo) | uint32(hi)<<16
			}
		}
	}
}

// blockWiden computes rows [r0,r1) × columns [c0,c1) of C on a tier
// without bfloat16 arithmetic: B is widened to float32 as it is packed,
// each tile of A widened (or rounded, for GemmMixed) into a packed tile,
// and the float32 micro-kernel runs on them.
func (g *gemmArgs) blockWiden(pl *gemmPlan, r0, r1, c0, c1 int, acc bool, buf []float32) {
	bbuf, abuf := buf[:gemmBBlock], buf[gemmBBlock:]
	run := pl.kern.Run
	mr, nr := pl.kern.MR, pl.kern.NR
	n := g.n
	for jc := c0; jc < c1; jc += pl.nc {
		ncur := min(pl.nc, c1-jc)
		for pc := 0; pc < g.k; pc += pl.kc {
			kcur := min(pl.kc, g.k-pc)
			g.packBWiden(bbuf, pc, kcur, jc, ncur, nr)
			accNow := acc || pc > 0
			panel := kcur * nr
			for i0 := r0; i0 < r1; i0 += mr {
				m := min(mr, r1-i0)
				a := abuf[:kcur*m]
				rs, ks := g.packAWiden(a, u16(abuf[kcur*mr:]), pc, kcur, i0, m)
				for q, j0 := 0, jc; j0 < jc+ncur; q, j0 = q+1, j0+nr {
					run(m, min(nr, jc+ncur-j0), kcur, a, rs, ks, bbuf[q*panel:(q+1)*panel], g.c[i0*n+j0:], n, accNow)
				}
			}
		}
	}
}

// packBWiden is packB for a bfloat16 B: alpha·op(B)[pc:pc+kc, jc:jc+nc]
// as float32 NR-wide panels.
func (g *gemmArgs) packBWiden(dst []float32, pc, kc, jc, nc, nr int) {
	panel := kc * nr
	if !g.transB {
		ldb := g.n
		for p := range kc {
			row := g.b16[(pc+p)*ldb+jc:][:nc]
			for j0 := 0; j0 < nc; j0 += nr {
				w := min(nr, nc-j0)
				simd.K.FromBF16(dst[j0/nr*panel+p*nr:][:w], row[j0:j0+w])
			}
		}
	} else {
		ldb := g.k
		for j := range nc {
			src := g.b16[(jc+j)*ldb+pc:][:kc]
			d := dst[j/nr*panel+j%nr:]
			for p, v := range src {
				d[p*nr] = simd.WidenBF16(v)
			}
		}
	}
	if g.alpha != 1 {
		d := dst[:ceilDiv(nc, nr)*panel]
		simd.K.Scale(d, g.alpha, d)
	}
}

// packAWiden writes rows [i0, i0+m) of op(A)[:, pc:pc+kc] as float32 into
// dst, widening a bfloat16 A or rounding a float32 one to bfloat16
// values, and returns the layout's row and depth strides for the
// micro-kernel: rows of kc for a row-major A, groups of m for a
// transposed one, so that every conversion runs over a contiguous run.
// tmp holds max(kc, m) bfloat16 for the rounding.
func (g *gemmArgs) packAWiden(dst []float32, tmp []uint16, pc, kc, i0, m int) (rs, ks int) {
	conv := func(d []float32, idx int) {
		if g.a16 != nil {
			simd.K.FromBF16(d, g.a16[idx:idx+len(d)])
			return
		}
		t := tmp[:len(d)]
		simd.K.ToBF16(t, g.a[idx:idx+len(d)])
		simd.K.FromBF16(d, t)
	}
	if !g.transA {
		for i := range m {
			conv(dst[i*kc:(i+1)*kc], (i0+i)*g.k+pc)
		}
		return kc, 1
	}
	for p := range kc {
		conv(dst[p*m:(p+1)*m], (pc+p)*g.m+i0)
	}
	return 1, m
}

// MatVecBF16 computes y = w·x for bfloat16 weights w [len(y), len(x)]
// and float32 x: y[i] = Σ_j w[i,j]·x[j]. This is a frozen layer's product
// for one token (batch-1 decoding), where every weight is read once and
// the time is the time to stream w from memory; x stays exact, since
// rounding it would save nothing. Large products run on the GEMM pool,
// rows split among workers; the result does not depend on their number.
// It panics with a *ShapeError if the shapes disagree; y must not
// overlap x.
func MatVecBF16(y []float32, w *BF16, x []float32) {
	if len(w.shape) != 2 || w.shape[0] != len(y) || w.shape[1] != len(x) {
		panic(&ShapeError{Op: "MatVecBF16", Msg: fmt.Sprintf("w %v · x [%d] does not give y [%d]", w.shape, len(x), len(y))})
	}
	rows, cols := len(y), len(x)
	if rows == 0 {
		return
	}
	w0 := max(1, min(runtime.GOMAXPROCS(0), rows*cols/matVecMinWork))
	if w0 == 1 {
		simd.K.MatVecBF16(y, w.data, cols, x)
		return
	}
	j := getJob()
	j.g = gemmArgs{n: rows, k: cols, a: x, b16: w.data, c: y}
	j.batch, j.vec = 0, false
	j.mv = max(4, ceilDiv(ceilDiv(rows, w0*gemmTasksPerWorker), 4)*4)
	j.ntask = ceilDiv(rows, j.mv)
	j.run(min(w0, j.ntask))
	putJob(j)
}

// matVecMinWork is the fewest weights worth waking another worker for:
// 256 KiB of bfloat16, about 20 µs of one core's memory bandwidth.
const matVecMinWork = 1 << 17

// matVecTask computes rows [t·rows, …) of a MatVecBF16.
func (g *gemmArgs) matVecTask(t, rows int) {
	r0 := t * rows
	r1 := min(g.n, r0+rows)
	simd.K.MatVecBF16(g.c[r0:r1], g.b16[r0*g.k:], g.k, g.a)
}

package tensor

import (
	"fmt"
	"runtime"
	"sync"
	"unsafe"

	"github.com/posttrain/posttrain/tensor/internal/simd"
)

// bfloat16 products. Two routes, chosen by the tier (see Tier):
//
//   - With bfloat16 arithmetic (AVX512-BF16), A and B are packed as pairs
//     of bfloat16 along k and the micro-kernel multiplies pairs with
//     VDPBF16PS, twice the multiply-adds of a float32 FMA per instruction.
//   - Elsewhere (AVX-512 without it, AVX2, NEON, generic), B is widened to
//     float32 while it is packed, A once per call, and the float32
//     micro-kernel runs. The weights still take and stream half the bytes.
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
	g := dense(transA, transB, m, n, k, alpha, nil, nil, beta, c.data)
	g.bf, g.a16, g.b16 = true, a.data, b.data
	gemmBF16(g)
}

// GemmMixed computes c = alpha·op(a)·op(b) + beta·c for float32
// activations a and bfloat16 weights b, as a frozen bfloat16 layer
// needs: y = x·Wᵀ is GemmMixed(false, true, 1, x, w, 0, y) for w [out,in],
// and the gradient with respect to x, dx = dy·W, is
// GemmMixed(false, false, 1, dy, w, 0, dx).
//
// The activations are rounded to bfloat16 first (once per call), as
// mixed-precision training does, so the product is GemmBF16's of the
// rounded a and runs at its speed; MatVecBF16 instead keeps one vector
// exact. It panics with a *ShapeError on mismatched shapes.
func GemmMixed(transA, transB bool, alpha float32, a *Dense, b *BF16, beta float32, c *Dense) {
	m, k, n := gemmShape("GemmMixed", transA, transB, a.shape, b.shape, c.shape)
	g := dense(transA, transB, m, n, k, alpha, a.data, nil, beta, c.data)
	g.bf, g.b16 = true, b.data
	gemmBF16(g)
}

// GemmWiden computes c = alpha·op(a)·op(b) + beta·c for float32 a and
// bfloat16 b with a kept exact: b is widened to float32 (exactly) while it
// is packed and the float32 micro-kernel runs, on every tier. It is the
// product of a frozen bfloat16 layer under training, as a LoRA adapter
// on a bfloat16 base needs — y = x·Wᵀ is GemmWiden(false, true, 1, x, w,
// 0, y) and dx = dy·W is GemmWiden(false, false, 1, dy, w, 0, dx) — when
// neither the activations nor their gradients should lose bits: the
// result is the float32 product with the weights' values, at the speed
// of Gemm, the weights taking half the bytes. GemmMixed, which rounds a,
// is the faster route only where the tier multiplies bfloat16 itself.
// It panics with a *ShapeError on mismatched shapes.
func GemmWiden(transA, transB bool, alpha float32, a *Dense, b *BF16, beta float32, c *Dense) {
	m, k, n := gemmShape("GemmWiden", transA, transB, a.shape, b.shape, c.shape)
	g := dense(transA, transB, m, n, k, alpha, a.data, nil, beta, c.data)
	g.b16 = b.data
	gemm(g, true)
}

// gemmBF16 brings A to the form the route reads, once per call, then runs
// the product: bfloat16 for the bfloat16 micro-kernel (GemmMixed's
// activations rounded), float32 for the widening route (GemmBF16's
// widened, GemmMixed's rounded and widened), which then reads A in place
// like Gemm and widens only B as it packs it. Converting A once costs M·K
// conversions; converting it per packed tile would repeat them for every
// column block of C.
func gemmBF16(g gemmArgs) {
	if g.m == 0 || g.n == 0 {
		return
	}
	size := g.m * g.k
	if simd.K.BF16 != nil {
		if g.a16 == nil {
			h := getU16(size)
			simd.K.ToBF16(h.s, g.a[:size])
			g.a, g.a16 = nil, h.s
			defer bf16Bufs.Put(h)
		}
	} else {
		f := getF32(size)
		if g.a16 != nil {
			simd.K.FromBF16(f.s, g.a16[:size])
		} else {
			roundBF16(f.s, g.a[:size])
		}
		g.a, g.a16 = f.s, nil
		defer f32Bufs.Put(f)
	}
	gemm(g, true)
}

// roundBF16 sets dst to x rounded to bfloat16 values, through an L1-sized
// bfloat16 buffer.
func roundBF16(dst, x []float32) {
	h := getU16(1024)
	t := h.s
	for i := 0; i < len(x); i += len(t) {
		n := min(len(t), len(x)-i)
		simd.K.ToBF16(t[:n], x[i:i+n])
		simd.K.FromBF16(dst[i:i+n], t[:n])
	}
	bf16Bufs.Put(h)
}

// Conversion buffers, recycled between calls.
type f32Buf struct{ s []float32 }
type u16Buf struct{ s []uint16 }

var (
	f32Bufs  = sync.Pool{New: func() any { return new(f32Buf) }}
	bf16Bufs = sync.Pool{New: func() any { return new(u16Buf) }}
)

func getF32(n int) *f32Buf {
	b := f32Bufs.Get().(*f32Buf)
	if cap(b.s) < n {
		b.s = make([]float32, n)
	}
	b.s = b.s[:n]
	return b
}

func getU16(n int) *u16Buf {
	b := bf16Bufs.Get().(*u16Buf)
	if cap(b.s) < n {
		b.s = make([]uint16, n)
	}
	b.s = b.s[:n]
	return b
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
			kp := pairs(kcur, kern.KBlock)
			g.packB16(bbuf, pc, kcur, jc, ncur, NR, kp)
			accNow := acc || pc > 0
			panel := 2 * kp * NR
			for i0 := r0; i0 < r1; i0 += MR {
				m := min(MR, r1-i0)
				a := abuf[:2*kp*MR]
				g.packA16(a, pc, kcur, i0, m, MR, kern.KBlock, kp)
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

// pairs returns how many pairs of k a block of kc takes: ⌈kc/2⌉, rounded
// up to a multiple of kb when kb > 1.
func pairs(kc, kb int) int {
	kp := (kc + 1) / 2
	if kb > 1 {
		kp = ceilDiv(kp, kb) * kb
	}
	return kp
}

// packB16 writes op(B)[pc:pc+kc, jc:jc+nc] into dst as NR-wide panels of
// kp pairs along k: word q·NR+j of panel p holds B[pc+2q, j] in its low
// half and B[pc+2q+1, j] (0 past kc) in its high half. Lanes past the
// last column of a short panel are left as they were: lanes do not mix
// and the caller discards them.
func (g *gemmArgs) packB16(dst []uint16, pc, kc, jc, nc, NR, kp int) {
	d := u32(dst[:2*kp*NR*ceilDiv(nc, NR)])
	panel := kp * NR
	if kr := (kc + 1) / 2; kr < kp { // pairs past k, up to the kernel's block
		for p := range ceilDiv(nc, NR) {
			clear(d[p*panel+kr*NR : (p+1)*panel])
		}
	}
	if !g.transB {
		ldb := g.n
		for q := range (kc + 1) / 2 {
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
		if 2*q < kc {
			dj[q*NR] = uint32(src[2*q])
		}
	}
}

// packA16 writes rows [i0, i0+m) of op(A)[:, pc:pc+kc] into dst as kp
// pairs along k in the kernel's layout: word ((q/kb·MR)+i)·kb + q%kb holds
// the pair q of row i (kb = 1: groups of MR pairs; kb = 16: AMX tile
// rows). Rows m…MR and the pairs past kc are zero.
func (g *gemmArgs) packA16(dst []uint16, pc, kc, i0, m, MR, kb, kp int) {
	kb = max(kb, 1)
	d := u32(dst[:2*kp*MR])
	kr := (kc + 1) / 2
	if m < MR || kr < kp {
		clear(d)
	}
	at := func(q int) int { return q/kb*MR*kb + q%kb } // word of row 0's pair q
	if !g.transA {
		for i := range m {
			src := g.a16[(i0+i)*g.k+pc:][:kc]
			q := 0
			for ; 2*q+1 < kc; q++ {
				d[at(q)+i*kb] = uint32(src[2*q]) | uint32(src[2*q+1])<<16
			}
			if 2*q < kc {
				d[at(q)+i*kb] = uint32(src[2*q])
			}
		}
		return
	}
	// Row p of A is column p of op(A): pairs of rows interleave.
	lda := g.m
	for q := range kr {
		lo := g.a16[(pc+2*q)*lda+i0:][:m]
		dq := d[at(q):]
		if 2*q+1 == kc {
			for i, v := range lo {
				dq[i*kb] = uint32(v)
			}
			continue
		}
		hi := g.a16[(pc+2*q+1)*lda+i0:][:m]
		for i, v := range lo {
			dq[i*kb] = uint32(v) | uint32(hi[i])<<16
		}
	}
}

// packBWiden is packB for a bfloat16 B: alpha·op(B)[pc:pc+kc, jc:jc+nc]
// as float32 NR-wide panels. A transposed B (weights [out,in], the usual
// layout) is widened 16 rows at a time into the tail of the worker's
// buffer, which dst's capacity reaches, and transposed from there with
// the tier's PackT16.
func (g *gemmArgs) packBWiden(kern *simd.GemmKernel, dst []float32, pc, kc, jc, nc, nr int) {
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
		j := 0
		if pt := kern.PackT16; pt != nil && nr%16 == 0 && kc >= 16 {
			all := dst[:cap(dst)]
			tmp := all[len(all)-16*kc:]
			k16 := kc / 16
			for ; j+16 <= nc; j += 16 {
				for r := range 16 {
					simd.K.FromBF16(tmp[r*kc:(r+1)*kc], g.b16[(jc+j+r)*ldb+pc:][:kc])
				}
				pt(dst[j/nr*panel+j%nr:], tmp, kc, nr, k16)
				for r := range 16 {
					d := dst[(j+r)/nr*panel+(j+r)%nr:]
					for p := 16 * k16; p < kc; p++ {
						d[p*nr] = tmp[r*kc+p]
					}
				}
			}
		}
		for ; j < nc; j++ {
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
	j := getJob()
	if n := simd.SplitLen(cols); cap(j.split) < n {
		j.split = make([]float32, n)
	}
	xs := j.split[:simd.SplitLen(cols)]
	simd.SplitBF16(xs, x)
	w0 := max(1, min(runtime.GOMAXPROCS(0), rows*cols/matVecMinWork))
	if w0 == 1 {
		simd.K.DotsBF16(y, 0, w.data, cols, xs, 0, 1, rows, cols)
		putJob(j)
		return
	}
	j.g = gemmArgs{n: rows, k: cols, a: xs, b16: w.data, c: y}
	j.batch, j.vec = 0, false
	j.mv = max(4, ceilDiv(ceilDiv(rows, w0*gemmTasksPerWorker), 4)*4)
	j.ntask = ceilDiv(rows, j.mv)
	j.run(min(w0, j.ntask))
	putJob(j)
}

// matVecMinWork is the fewest weights worth waking another worker for:
// 256 KiB of bfloat16, about 20 µs of one core's memory bandwidth.
const matVecMinWork = 1 << 17

// matVecTask computes rows [t·rows, …) of a MatVecBF16, with g.a the
// input split by simd.SplitBF16.
func (g *gemmArgs) matVecTask(t, rows int) {
	r0 := t * rows
	r1 := min(g.n, r0+rows)
	simd.K.DotsBF16(g.c[r0:r1], 0, g.b16[r0*g.k:], g.k, g.a, 0, 1, r1-r0, g.k)
}

package autograd

import (
	"math"
	"slices"

	"github.com/posttrain/posttrain/tensor"
)

// attnBlock is the number of query positions of one block of Attention:
// block i of a sequence meets keys 0…(i+1)·attnBlock−1 only, so the
// products skip what lies above the diagonal, block by block.
const attnBlock = 64

// Attention returns causal grouped-query self-attention with rotary
// position embeddings (Vaswani et al. 2017; Su et al. 2021; Ainslie et
// al. 2023) over batch sequences laid end to end:
//
//	out_h = softmax(rope(q_h)·rope(k_g)ᵀ/√Dh, causal)·v_g,   g = h/(H/KV)
//
// for q [B·T, H·Dh] and k, v [B·T, KV·Dh], output [B·T, H·Dh]: query
// head h reads key/value head h/(H/KV), the key/value heads repeated in
// blocks as transformers' repeat_kv does. cos and sin [T, Dh/2] are the
// rotary tables of positions 0…T−1 (RoPETables), rotating pairs (i,
// i+Dh/2) — the "rotate half" layout of GPT-NeoX and LLaMA — and give Dh.
//
// It computes what the graph RoPE, Transpose, BatchMatMul, CausalSoftmax,
// BatchMatMul, Transpose would, in one op: the query heads of one key
// head are rotated while they are gathered into one block that meets
// its keys in a single product (repeat_kv without the copies), the
// products skip the masked blocks above the diagonal, and neither the
// head-major copies nor the scores' gradient live on the tape. It
// panics with a *tensor.ShapeError on shapes that do not fit together.
func (t *Tape) Attention(q, k, v *Var, batch int, cos, sin *tensor.Dense) *Var {
	return t.attention(t.attnShape(q, k, v, batch, cos, sin), q, k, v, cos, sin)
}

// PackedAttention is Attention over sequences that each hold several
// documents laid end to end — packing (Krell et al. 2021, "Efficient
// sequence packing without cross-contamination") — with one sequence per
// entry of starts: starts[b] lists the positions where the documents of
// sequence b begin, 0 first, strictly increasing, each below T. Every
// query attends only to the keys of its own document, and the rotary
// positions restart at 0 at each document's start, so each document
// gets exactly what Attention gives it alone: the mask is block-diagonal
// causal, and the key blocks wholly before a block's first document are
// skipped. An empty starts[b] is one document. It panics with a
// *tensor.ShapeError on shapes that do not fit together or on starts
// out of order.
func (t *Tape) PackedAttention(q, k, v *Var, starts [][]int, cos, sin *tensor.Dense) *Var {
	a := t.attnShape(q, k, v, len(starts), cos, sin)
	a.seg = make([]int32, a.n)
	for b, st := range starts {
		seg := a.seg[b*a.tt : (b+1)*a.tt]
		if len(st) > 0 && st[0] != 0 {
			shapeErr("PackedAttention", "sequence %d: first document starts at %d, not 0", b, st[0])
		}
		for i, s0 := range st {
			e := a.tt
			if i+1 < len(st) {
				e = st[i+1]
			}
			if s0 >= e || e > a.tt {
				shapeErr("PackedAttention", "sequence %d: document starts %v not increasing within %d positions", b, st, a.tt)
			}
			for r := s0; r < e; r++ {
				seg[r] = int32(s0)
			}
		}
	}
	return t.attention(a, q, k, v, cos, sin)
}

func (t *Tape) attention(a attnDims, q, k, v *Var, cos, sin *tensor.Dense) *Var {
	qv, kv, vv := q.Value.Data(), k.Value.Data(), v.Value.Data()
	cd, sd := cos.Data(), sin.Data()
	// Kept for backward: the rotated queries and keys and the values of
	// each task, gathered head-major, and the probabilities.
	qr, kr, vr := t.buf(a.n*a.qd), t.buf(a.n*a.kd), t.buf(a.n*a.kd)
	probs := t.buf(a.tasks * a.pLen)
	obuf := t.buf(a.tasks * attnBlock * a.gd)
	out := t.dense(a.n, a.qd)
	od := out.Data()
	t.parallel(a.tasks, func(task int) {
		b, kh := task/a.kvh, task%a.kvh
		Q, K, V := a.taskQ(qr, task), a.taskKV(kr, task), a.taskKV(vr, task)
		for r := range a.tt {
			pos := r - a.start(b, r)
			c, s := cd[pos*a.h:(pos+1)*a.h], sd[pos*a.h:(pos+1)*a.h]
			row := (b*a.tt + r)
			src := qv[row*a.qd+kh*a.gd:][:a.gd]
			for hi := range a.g {
				rotate(Q[(r*a.g+hi)*a.dh:][:a.dh], src[hi*a.dh:][:a.dh], c, s, 1, false)
			}
			rotate(K[r*a.dh:][:a.dh], kv[row*a.kd+kh*a.dh:][:a.dh], c, s, 1, false)
			copy(V[r*a.dh:][:a.dh], vv[row*a.kd+kh*a.dh:][:a.dh])
		}
		o := obuf[task*attnBlock*a.gd:][:attnBlock*a.gd]
		for blk := range a.blocks {
			i0, i1, rows, off := a.block(blk)
			// The block meets keys lo…i1−1: lo is 0 unpacked, else the
			// start of its first query's document.
			lo := a.start(b, i0)
			w := i1 - lo
			p := probs[task*a.pLen+off:][:rows*w]
			tensor.Gemm(false, true, 1, mat(Q[i0*a.gd:i1*a.gd], rows, a.dh), mat(K[lo*a.dh:i1*a.dh], w, a.dh), 0, mat(p, rows, w))
			for j := range rows {
				r := i0 + j/a.g
				s0, n := a.start(b, r)-lo, r-lo+1 // the keys query row j sees
				pr := p[j*w : (j+1)*w]
				clear(pr[:s0])
				tensor.Scale(pr[s0:n], a.scale, pr[s0:n])
				tensor.Softmax(pr[s0:n], pr[s0:n])
				clear(pr[n:])
			}
			tensor.Gemm(false, false, 1, mat(p, rows, w), mat(V[lo*a.dh:i1*a.dh], w, a.dh), 0, mat(o[:rows*a.dh], rows, a.dh))
			for r := i0; r < i1; r++ {
				copy(od[(b*a.tt+r)*a.qd+kh*a.gd:][:a.gd], o[(r-i0)*a.gd:][:a.gd])
			}
		}
	})
	var res *Var
	res = t.node(out, func() {
		t.attnBackward(a, res.Grad.Data(), q, k, v, qr, kr, vr, probs, cd, sd)
	}, q, k, v)
	return res
}

// attnBackward propagates dout through Attention: per task, block by
// block from the last (whose keys span the whole sequence, so it starts
// the key and value gradients), dP = dO·Vᵀ, dV += Pᵀ·dO, dS = P∘(dP −
// ⟨dP, P⟩)·scale, dQ = dS·K, dK += dSᵀ·Q; then the query and key
// gradients are rotated back and scattered to rows, one row block per
// worker, so that q, k and v may even share a buffer.
func (t *Tape) attnBackward(a attnDims, dout []float32, q, k, v *Var, qr, kr, vr, probs, cd, sd []float32) {
	dq, dk, dv := t.buf(a.n*a.qd), t.buf(a.n*a.kd), t.buf(a.n*a.kd)
	dog := t.buf(a.n * a.qd)
	dps := t.buf(a.tasks * attnBlock * a.g * a.tt)
	t.parallel(a.tasks, func(task int) {
		b, kh := task/a.kvh, task%a.kvh
		Q, K, V := a.taskQ(qr, task), a.taskKV(kr, task), a.taskKV(vr, task)
		dO, dQ := a.taskQ(dog, task), a.taskQ(dq, task)
		dK, dV := a.taskKV(dk, task), a.taskKV(dv, task)
		for r := range a.tt {
			copy(dO[r*a.gd:][:a.gd], dout[(b*a.tt+r)*a.qd+kh*a.gd:][:a.gd])
		}
		dp := dps[task*attnBlock*a.g*a.tt:][:attnBlock*a.g*a.tt]
		if a.seg != nil {
			// Packed, the last block need not meet every key: the
			// gradients start from zero instead.
			clear(dK)
			clear(dV)
		}
		for blk := a.blocks - 1; blk >= 0; blk-- {
			i0, i1, rows, off := a.block(blk)
			beta := float32(1)
			if blk == a.blocks-1 && a.seg == nil {
				beta = 0
			}
			lo := a.start(b, i0)
			w := i1 - lo
			p := mat(probs[task*a.pLen+off:][:rows*w], rows, w)
			dOb, Qb := mat(dO[i0*a.gd:i1*a.gd], rows, a.dh), mat(Q[i0*a.gd:i1*a.gd], rows, a.dh)
			Kb, Vb := mat(K[lo*a.dh:i1*a.dh], w, a.dh), mat(V[lo*a.dh:i1*a.dh], w, a.dh)
			ds := mat(dp[:rows*w], rows, w)
			tensor.Gemm(false, true, 1, dOb, Vb, 0, ds)
			tensor.Gemm(true, false, 1, p, dOb, beta, mat(dV[lo*a.dh:i1*a.dh], w, a.dh))
			pd, dd := p.Data(), ds.Data()
			for j := range rows {
				r := i0 + j/a.g
				s0, n := a.start(b, r)-lo, r-lo+1
				pr, dr := pd[j*w+s0:j*w+n], dd[j*w:(j+1)*w]
				dot := tensor.Dot(pr, dr[s0:n])
				for c, pv := range pr {
					dr[s0+c] = a.scale * pv * (dr[s0+c] - dot)
				}
				clear(dr[:s0])
				clear(dr[n:])
			}
			tensor.Gemm(false, false, 1, ds, Kb, 0, mat(dQ[i0*a.gd:i1*a.gd], rows, a.dh))
			tensor.Gemm(true, false, 1, ds, Qb, beta, mat(dK[lo*a.dh:i1*a.dh], w, a.dh))
		}
	})
	// Every element of the three gradients is written below, so new
	// buffers need no zeroing. The order q, k, v is the order of the
	// writes to each row, which keeps shared buffers right.
	var gq, gk, gv []float32
	var fq, fk, fv bool
	if q.needs {
		g, fresh := t.gradOut(q)
		gq, fq = g.Data(), fresh
	}
	if k.needs {
		g, fresh := t.gradOut(k)
		gk, fk = g.Data(), fresh
	}
	if v.needs {
		g, fresh := t.gradOut(v)
		gv, fv = g.Data(), fresh
	}
	rowBlocks := chunks(a.n, normBlock)
	t.parallel(rowBlocks, func(blk int) {
		for row := blk * normBlock; row < min((blk+1)*normBlock, a.n); row++ {
			b, r := row/a.tt, row%a.tt
			pos := r - a.start(b, r)
			c, s := cd[pos*a.h:(pos+1)*a.h], sd[pos*a.h:(pos+1)*a.h]
			for kh := range a.kvh {
				task := b*a.kvh + kh
				if gq != nil {
					dQ := a.taskQ(dq, task)
					dst := gq[row*a.qd+kh*a.gd:][:a.gd]
					for hi := range a.g {
						rotate(dst[hi*a.dh:][:a.dh], dQ[(r*a.g+hi)*a.dh:][:a.dh], c, s, -1, !fq)
					}
				}
				if gk != nil {
					rotate(gk[row*a.kd+kh*a.dh:][:a.dh], a.taskKV(dk, task)[r*a.dh:][:a.dh], c, s, -1, !fk)
				}
				if gv != nil {
					dst, src := gv[row*a.kd+kh*a.dh:][:a.dh], a.taskKV(dv, task)[r*a.dh:][:a.dh]
					if fv {
						copy(dst, src)
					} else {
						tensor.Add(dst, dst, src)
					}
				}
			}
		}
	})
}

// attnDims are the sizes of one Attention call. A task is one key/value
// head of one sequence, with the g query heads that read it.
type attnDims struct {
	n, tt, qd, kd int // rows, positions per sequence, widths of q and k
	dh, h, g, gd  int // head size, half of it, query heads per key head, their width
	kvh, tasks    int
	blocks, pLen  int // row blocks per sequence; probabilities per task
	scale         float32
	// seg is, packed, the position where the document of each row
	// begins; nil unpacked (one document per sequence).
	seg []int32
}

// start returns where the document of position r of sequence b begins.
func (a *attnDims) start(b, r int) int {
	if a.seg == nil {
		return 0
	}
	return int(a.seg[b*a.tt+r])
}

func (t *Tape) attnShape(q, k, v *Var, batch int, cos, sin *tensor.Dense) attnDims {
	if q.Value.Dims() != 2 || k.Value.Dims() != 2 || v.Value.Dims() != 2 || cos.Dims() != 2 {
		shapeErr("Attention", "need 2-D q, k, v and tables, have %v, %v, %v and %v", q.Shape(), k.Shape(), v.Shape(), cos.Shape())
	}
	var a attnDims
	a.n, a.qd, a.kd = q.Value.Dim(0), q.Value.Dim(1), k.Value.Dim(1)
	if k.Value.Dim(0) != a.n || v.Value.Dim(0) != a.n || v.Value.Dim(1) != a.kd {
		shapeErr("Attention", "q %v, k %v and v %v: k and v must match and have q's rows", q.Shape(), k.Shape(), v.Shape())
	}
	if batch <= 0 || a.n%batch != 0 {
		shapeErr("Attention", "%d rows do not split into %d sequences", a.n, batch)
	}
	a.tt, a.h = a.n/batch, cos.Dim(1)
	a.dh = 2 * a.h
	if cos.Dim(0) != a.tt || !slices.Equal(sin.Shape(), cos.Shape()) {
		shapeErr("Attention", "tables %v and %v for %d positions", cos.Shape(), sin.Shape(), a.tt)
	}
	if a.dh == 0 || a.kd == 0 || a.qd%a.dh != 0 || a.kd%a.dh != 0 || (a.qd/a.dh)%(a.kd/a.dh) != 0 {
		shapeErr("Attention", "q width %d and k width %d are not whole heads of %d with query heads a multiple of key heads", a.qd, a.kd, a.dh)
	}
	a.kvh = a.kd / a.dh
	a.g = a.qd / a.dh / a.kvh
	a.gd = a.g * a.dh
	a.tasks = batch * a.kvh
	a.blocks = (a.tt + attnBlock - 1) / attnBlock
	for blk := range a.blocks {
		_, i1, rows, _ := a.block(blk)
		a.pLen += rows * i1
	}
	a.scale = float32(1 / math.Sqrt(float64(a.dh)))
	return a
}

// block returns the positions [i0, i1) of row block blk, its rows of
// queries ((i1−i0)·g, position-major) and the offset of its
// probabilities [rows, i1] in a task's.
func (a *attnDims) block(blk int) (i0, i1, rows, off int) {
	for b := range blk {
		e := min(a.tt, (b+1)*attnBlock)
		off += (e - b*attnBlock) * a.g * e
	}
	i0, i1 = blk*attnBlock, min(a.tt, (blk+1)*attnBlock)
	return i0, i1, (i1 - i0) * a.g, off
}

// taskQ returns a task's [T·g, Dh] rows of a query-sized buffer, row
// r·g+hi for position r and query head hi of the group.
func (a *attnDims) taskQ(buf []float32, task int) []float32 {
	return buf[task*a.tt*a.gd:][:a.tt*a.gd]
}

// taskKV returns a task's [T, Dh] rows of a key-sized buffer.
func (a *attnDims) taskKV(buf []float32, task int) []float32 {
	return buf[task*a.tt*a.dh:][:a.tt*a.dh]
}

// mat views x as an r×c matrix.
func mat(x []float32, r, c int) *tensor.Dense { return tensor.FromSlice(x, r, c) }

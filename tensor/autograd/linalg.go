package autograd

import (
	"slices"

	"github.com/posttrain/posttrain/tensor"
)

// rowBlock is the number of rows one task of a split matrix product takes.
// Splits depend on this constant only, so results do not depend on the
// number of workers.
const rowBlock = 256

// MatMul returns a·b for a [M,K] and b [K,N].
func (t *Tape) MatMul(a, b *Var) *Var { return t.matmul(a, b, false) }

// MatMulT returns a·bᵀ for a [M,K] and b [N,K]: a linear layer whose
// weight is stored [out, in], as in PyTorch and safetensors checkpoints.
func (t *Tape) MatMulT(a, b *Var) *Var { return t.matmul(a, b, true) }

func (t *Tape) matmul(a, b *Var, transB bool) *Var {
	av, bv := a.Value, b.Value
	if av.Dims() != 2 || bv.Dims() != 2 {
		shapeErr("MatMul", "need 2-D operands, have %v and %v", av.Shape(), bv.Shape())
	}
	m, k := av.Dim(0), av.Dim(1)
	kb, n := bv.Dim(0), bv.Dim(1)
	if transB {
		kb, n = n, kb
	}
	if k != kb {
		shapeErr("MatMul", "inner dimensions differ: %v · %v (transB %v)", av.Shape(), bv.Shape(), transB)
	}
	c := t.dense(m, n)
	t.gemmRows(transB, av, bv, 0, c)
	var out *Var
	out = t.node(c, func() {
		g := out.Grad
		if a.needs {
			// dA = g·op(B)ᵀ: op(B)=B gives g·Bᵀ, op(B)=Bᵀ gives g·B.
			t.gemmRows(!transB, g, bv, 1, t.grad(a))
		}
		if b.needs {
			if transB {
				t.gemmReduce(g, av, t.grad(b)) // dB [N,K] += gᵀ·A
			} else {
				t.gemmReduce(av, g, t.grad(b)) // dB [K,N] += Aᵀ·g
			}
		}
	}, a, b)
	return out
}

// gemmRows computes c = x·op(y) + beta·c, splitting the rows of x and c
// into blocks that run in parallel.
func (t *Tape) gemmRows(transB bool, x, y *tensor.Dense, beta float32, c *tensor.Dense) {
	t.rowBlocks(x, c, func(xs, cs *tensor.Dense) { tensor.Gemm(false, transB, 1, xs, y, beta, cs) })
}

// rowBlocks runs f on matching blocks of rowBlock rows of x [M,K] and
// c [M,N], in parallel: a product whose rows are independent.
func (t *Tape) rowBlocks(x, c *tensor.Dense, f func(xs, cs *tensor.Dense)) {
	m, k := x.Dim(0), x.Dim(1)
	n := c.Dim(1)
	nb := chunks(m, rowBlock)
	if nb == 1 {
		f(x, c)
		return
	}
	xd, cd := x.Data(), c.Data()
	t.parallel(nb, func(i int) {
		r0, r1 := i*rowBlock, min((i+1)*rowBlock, m)
		f(tensor.FromSlice(xd[r0*k:r1*k], r1-r0, k), tensor.FromSlice(cd[r0*n:r1*n], r1-r0, n))
	})
}

// gemmReduce computes c += xᵀ·y for x [M,P], y [M,Q], c [P,Q]: a sum over
// the M rows, done in fixed blocks of rows whose partial products are added
// in block order.
func (t *Tape) gemmReduce(x, y, c *tensor.Dense) {
	m, p := x.Dim(0), x.Dim(1)
	q := y.Dim(1)
	nb := chunks(m, 2*rowBlock)
	if nb == 1 {
		tensor.Gemm(true, false, 1, x, y, 1, c)
		return
	}
	bs := 2 * rowBlock
	part := t.buf(nb * p * q)
	xd, yd := x.Data(), y.Data()
	t.parallel(nb, func(i int) {
		r0, r1 := i*bs, min((i+1)*bs, m)
		xs := tensor.FromSlice(xd[r0*p:r1*p], r1-r0, p)
		ys := tensor.FromSlice(yd[r0*q:r1*q], r1-r0, q)
		tensor.Gemm(true, false, 1, xs, ys, 0, tensor.FromSlice(part[i*p*q:(i+1)*p*q], p, q))
	})
	cd := c.Data()
	for i := range nb {
		tensor.Add(cd, cd, part[i*p*q:(i+1)*p*q])
	}
}

// BatchMatMul returns the matrix products of a [..., M, K] and b [..., K, N]
// (or b [..., N, K] with transB, giving a·bᵀ) over equal leading
// dimensions, as attention needs for scores (q·kᵀ) and outputs (p·v).
func (t *Tape) BatchMatMul(a, b *Var, transB bool) *Var {
	as, bs := a.Shape(), b.Shape()
	nd := len(as)
	if nd < 2 || len(bs) != nd || !slices.Equal(as[:nd-2], bs[:nd-2]) {
		shapeErr("BatchMatMul", "leading dimensions differ: %v and %v", as, bs)
	}
	m, k := as[nd-2], as[nd-1]
	kb, n := bs[nd-2], bs[nd-1]
	if transB {
		kb, n = n, kb
	}
	if k != kb {
		shapeErr("BatchMatMul", "inner dimensions differ: %v · %v (transB %v)", as, bs, transB)
	}
	g := 1 // number of products
	for _, d := range as[:nd-2] {
		g *= d
	}
	oshape := append(append([]int(nil), as[:nd-2]...), m, n)
	c := t.dense(oshape...)
	ad, bd, cd := a.Value.Data(), b.Value.Data(), c.Data()
	bsz := bs[nd-2] * bs[nd-1]
	t.parallel(g, func(i int) {
		ai := tensor.FromSlice(ad[i*m*k:(i+1)*m*k], m, k)
		bi := tensor.FromSlice(bd[i*bsz:(i+1)*bsz], bs[nd-2], bs[nd-1])
		ci := tensor.FromSlice(cd[i*m*n:(i+1)*m*n], m, n)
		tensor.Gemm(false, transB, 1, ai, bi, 0, ci)
	})
	var out *Var
	out = t.node(c, func() {
		gd := out.Grad.Data()
		var dad, dbd []float32
		if a.needs {
			dad = t.grad(a).Data()
		}
		if b.needs {
			dbd = t.grad(b).Data()
		}
		t.parallel(g, func(i int) {
			gi := tensor.FromSlice(gd[i*m*n:(i+1)*m*n], m, n)
			bi := tensor.FromSlice(bd[i*bsz:(i+1)*bsz], bs[nd-2], bs[nd-1])
			ai := tensor.FromSlice(ad[i*m*k:(i+1)*m*k], m, k)
			if dad != nil {
				dai := tensor.FromSlice(dad[i*m*k:(i+1)*m*k], m, k)
				tensor.Gemm(false, !transB, 1, gi, bi, 1, dai)
			}
			if dbd != nil {
				dbi := tensor.FromSlice(dbd[i*bsz:(i+1)*bsz], bs[nd-2], bs[nd-1])
				if transB {
					tensor.Gemm(true, false, 1, gi, ai, 1, dbi) // [N,K] += gᵀ·A
				} else {
					tensor.Gemm(true, false, 1, ai, gi, 1, dbi) // [K,N] += Aᵀ·g
				}
			}
		})
	}, a, b)
	return out
}

package tensor

import (
	"fmt"

	"github.com/posttrain/posttrain/tensor/internal/simd"
	"github.com/posttrain/posttrain/tensor/internal/strided"
)

func init() { strided.Gemm = stridedGemm }

// MatMul computes c = a·b for 2-D a [M,K], b [K,N] and c [M,N].
func MatMul(c, a, b *Dense) { Gemm(false, false, 1, a, b, 0, c) }

// Gemm computes c = alpha·op(a)·op(b) + beta·c, where op(x) is x or its
// transpose. With beta = 0, c is overwritten and its old contents (even NaN)
// are ignored, as in BLAS. It panics with a *ShapeError on mismatched shapes.
//
// c must not share memory with a or b. The product runs on a fixed pool
// of GOMAXPROCS workers through a packed, cache-blocked algorithm (see the
// package doc); once the packing buffers exist, a call allocates nothing.
// The result does not depend on the number of workers: every element of c
// sums its products in the same order whatever the split.
func Gemm(transA, transB bool, alpha float32, a, b *Dense, beta float32, c *Dense) {
	m, k, n := gemmShape("Gemm", transA, transB, a.shape, b.shape, c.shape)
	gemm(dense(transA, transB, m, n, k, alpha, a.data, b.data, beta, c.data), true)
}

// BatchedMatMul computes c[i] = a[i]·b[i] for 3-D a [B,M,K], b [B,K,N] and
// c [B,M,N], as attention needs for its per-head products.
func BatchedMatMul(c, a, b *Dense) { BatchedGemm(false, false, 1, a, b, 0, c) }

// BatchedGemm computes c[i] = alpha·op(a[i])·op(b[i]) + beta·c[i] for every
// i along the leading dimension of the 3-D tensors a, b and c, with the
// semantics of Gemm. Small products run one per worker; large ones each use
// all workers. It panics with a *ShapeError on mismatched shapes.
func BatchedGemm(transA, transB bool, alpha float32, a, b *Dense, beta float32, c *Dense) {
	if a.Dims() != 3 || b.Dims() != 3 || c.Dims() != 3 {
		panic(&ShapeError{Op: "BatchedGemm", Msg: fmt.Sprintf("need 3-D tensors, have %v, %v, %v", a.shape, b.shape, c.shape)})
	}
	nb := a.shape[0]
	if b.shape[0] != nb || c.shape[0] != nb {
		panic(&ShapeError{Op: "BatchedGemm", Msg: fmt.Sprintf("batch sizes differ: %v, %v, %v", a.shape, b.shape, c.shape)})
	}
	m, k, n := gemmShape("BatchedGemm", transA, transB, a.shape[1:], b.shape[1:], c.shape[1:])
	batchedGemm(nb, dense(transA, transB, m, n, k, alpha, a.data, b.data, beta, c.data))
}

func gemmShape(op string, transA, transB bool, as, bs, cs []int) (m, k, n int) {
	if len(as) != 2 || len(bs) != 2 || len(cs) != 2 {
		panic(&ShapeError{Op: op, Msg: fmt.Sprintf("need 2-D tensors, have %v, %v, %v", as, bs, cs)})
	}
	m, k = as[0], as[1]
	if transA {
		m, k = k, m
	}
	kb, n := bs[0], bs[1]
	if transB {
		kb, n = n, kb
	}
	if k != kb || cs[0] != m || cs[1] != n {
		panic(&ShapeError{Op: op, Msg: fmt.Sprintf("op(a) %dx%d · op(b) %dx%d does not give c %v", m, k, kb, n, cs)})
	}
	return m, k, n
}

// gemmArgs is one product c = alpha·op(a)·op(b) + beta·c over row-major
// storage: a is [m,k] ([k,m] if transA), b is [k,n] ([n,k] if transB) and
// c is [m,n], with rows lda, ldb and ldc floats apart (BLAS's leading
// dimensions; equal to the row length for a Dense).
type gemmArgs struct {
	transA, transB bool
	m, n, k        int
	alpha, beta    float32
	a, b, c        []float32
	lda, ldb, ldc  int

	// bfloat16 products (gemmbf16.go): b16 replaces b; on the bfloat16
	// route a16 replaces a.
	bf       bool
	a16, b16 []uint16
}

// dense returns the arguments for contiguous operands.
func dense(transA, transB bool, m, n, k int, alpha float32, a, b []float32, beta float32, c []float32) gemmArgs {
	g := gemmArgs{transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, beta: beta,
		a: a, b: b, c: c, lda: k, ldb: n, ldc: n}
	if transA {
		g.lda = m
	}
	if transB {
		g.ldb = k
	}
	return g
}

// stridedGemm computes c = alpha·op(a)·op(b) + beta·c over strided row-major
// storage, with the arguments and semantics of BLAS's sgemm. The caller
// (the gonumblas package, through tensor/internal/strided) has checked
// every dimension and length.
func stridedGemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	gemm(gemmArgs{transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, beta: beta,
		a: a, b: b, c: c, lda: lda, ldb: ldb, ldc: ldc}, true)
}

// prologue applies beta to c and reports whether the product itself still
// has to run, and whether it must add onto c (acc) rather than overwrite it.
func (g *gemmArgs) prologue() (run, acc bool) {
	if g.m == 0 || g.n == 0 {
		return false, false
	}
	empty := g.k == 0 || g.alpha == 0
	switch g.beta {
	case 0:
		if empty {
			for i := range g.m {
				clear(g.c[i*g.ldc : i*g.ldc+g.n])
			}
		}
		return !empty, false
	case 1:
	default:
		if g.ldc == g.n {
			c := g.c[:g.m*g.n]
			simd.K.Scale(c, g.beta, c)
		} else {
			for i := range g.m {
				c := g.c[i*g.ldc : i*g.ldc+g.n]
				simd.K.Scale(c, g.beta, c)
			}
		}
	}
	return !empty, true
}

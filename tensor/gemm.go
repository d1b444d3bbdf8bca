package tensor

import "fmt"

// MatMul computes c = a·b for 2-D a [M,K], b [K,N] and c [M,N].
func MatMul(c, a, b *Dense) { Gemm(false, false, 1, a, b, 0, c) }

// Gemm computes c = alpha·op(a)·op(b) + beta·c, where op(x) is x or its
// transpose. With beta = 0, c is overwritten and its old contents (even NaN)
// are ignored, as in BLAS. It panics with a *ShapeError on mismatched shapes.
func Gemm(transA, transB bool, alpha float32, a, b *Dense, beta float32, c *Dense) {
	m, k, n := gemmShape(transA, transB, a, b, c)
	cd := c.data
	if beta == 0 {
		clear(cd)
	} else if beta != 1 {
		Scale(cd, beta, cd)
	}
	if alpha == 0 || k == 0 {
		return
	}
	ad, bd := a.data, b.data
	lda, ldb := a.shape[1], b.shape[1]
	for i := range m {
		ci := cd[i*n : (i+1)*n]
		for p := range k {
			var aip float32
			if transA {
				aip = ad[p*lda+i]
			} else {
				aip = ad[i*lda+p]
			}
			aip *= alpha
			if !transB {
				Axpy(aip, bd[p*ldb:(p+1)*ldb], ci)
				continue
			}
			for j := range n {
				ci[j] += aip * bd[j*ldb+p]
			}
		}
	}
}

func gemmShape(transA, transB bool, a, b, c *Dense) (m, k, n int) {
	if a.Dims() != 2 || b.Dims() != 2 || c.Dims() != 2 {
		panic(&ShapeError{Op: "Gemm", Msg: fmt.Sprintf("need 2-D tensors, have %v, %v, %v", a.shape, b.shape, c.shape)})
	}
	m, k = a.shape[0], a.shape[1]
	if transA {
		m, k = k, m
	}
	kb, n := b.shape[0], b.shape[1]
	if transB {
		kb, n = n, kb
	}
	if k != kb || c.shape[0] != m || c.shape[1] != n {
		panic(&ShapeError{Op: "Gemm", Msg: fmt.Sprintf("op(a) %dx%d · op(b) %dx%d does not give c %v", m, k, kb, n, c.shape)})
	}
	return m, k, n
}

package gonumblas

import (
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"

	"github.com/posttrain/posttrain/tensor"
	"github.com/posttrain/posttrain/tensor/internal/strided"
)

// Implementation is gonum's blas.Float32 with Sgemm, Sgemv, Sdot, Saxpy and
// Sscal on posttrain's kernels and every other routine gonum's own. The
// zero value is ready to use and safe for concurrent use.
type Implementation struct {
	gonum.Implementation
}

var (
	_ blas.Float32       = Implementation{}
	_ blas.Float32Level3 = Implementation{}
)

// native is the reference every invalid call is handed to: it panics with
// gonum's message for whatever is wrong.
var native gonum.Implementation

func okTrans(t blas.Transpose) bool {
	return t == blas.NoTrans || t == blas.Trans || t == blas.ConjTrans
}

// Sgemm computes
//
//	C = alpha·op(A)·op(B) + beta·C
//
// where op(X) is X or Xᵀ as tA and tB say, op(A) is m×k, op(B) is k×n and C
// is m×n, all row-major with leading dimensions lda, ldb and ldc. With
// beta = 0, C is overwritten and its old contents (even NaN) ignored.
// Elements of C outside its m×n (the padding of ldc) are not touched.
func (Implementation) Sgemm(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	aT, bT := tA != blas.NoTrans, tB != blas.NoTrans
	if !okTrans(tA) || !okTrans(tB) || m < 0 || n < 0 || k < 0 ||
		lda < max(1, pick(aT, m, k)) || ldb < max(1, pick(bT, k, n)) || ldc < max(1, n) {
		native.Sgemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	if m == 0 || n == 0 {
		return
	}
	if len(a) < pick(aT, (k-1)*lda+m, (m-1)*lda+k) ||
		len(b) < pick(bT, (n-1)*ldb+k, (k-1)*ldb+n) ||
		len(c) < (m-1)*ldc+n {
		native.Sgemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	if (alpha == 0 || k == 0) && beta == 1 {
		return
	}
	strided.Gemm(aT, bT, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// Sgemv computes
//
//	y = alpha·A·x + beta·y   if tA = blas.NoTrans
//	y = alpha·Aᵀ·x + beta·y  otherwise
//
// for an m×n row-major A with leading dimension lda. With beta = 0, y is
// overwritten. Unit increments run on posttrain's kernels, others on
// gonum's.
func (Implementation) Sgemv(tA blas.Transpose, m, n int, alpha float32, a []float32, lda int, x []float32, incX int, beta float32, y []float32, incY int) {
	lenX, lenY := n, m
	if tA != blas.NoTrans {
		lenX, lenY = m, n
	}
	if !okTrans(tA) || m < 0 || n < 0 || lda < max(1, n) || incX != 1 || incY != 1 ||
		m == 0 || n == 0 || len(x) < lenX || len(y) < lenY || len(a) < lda*(m-1)+n || alpha == 0 {
		// Invalid arguments, strides, empty and alpha = 0 calls: gonum's
		// checks and its scaling of y, which are what BLAS prescribes.
		native.Sgemv(tA, m, n, alpha, a, lda, x, incX, beta, y, incY)
		return
	}
	if tA != blas.NoTrans {
		// yᵀ = alpha·xᵀ·A + beta·yᵀ: a one-row product, which the GEMM
		// streams through A a few rows at a time.
		strided.Gemm(false, false, 1, n, m, alpha, x, m, a, lda, beta, y, n)
		return
	}
	x, y = x[:n], y[:m]
	for i := range y {
		d := alpha * tensor.Dot(a[i*lda:i*lda+n], x)
		if beta != 0 {
			d += beta * y[i]
		}
		y[i] = d
	}
}

// Sdot returns Σ x[i]·y[i] over n elements.
func (Implementation) Sdot(n int, x []float32, incX int, y []float32, incY int) float32 {
	if incX != 1 || incY != 1 || n <= 0 || len(x) < n || len(y) < n {
		return native.Sdot(n, x, incX, y, incY)
	}
	return tensor.Dot(x[:n], y[:n])
}

// Saxpy computes y += alpha·x over n elements.
func (Implementation) Saxpy(n int, alpha float32, x []float32, incX int, y []float32, incY int) {
	if incX != 1 || incY != 1 || n <= 0 || len(x) < n || len(y) < n || alpha == 0 {
		native.Saxpy(n, alpha, x, incX, y, incY)
		return
	}
	tensor.Axpy(alpha, x[:n], y[:n])
}

// Sscal computes x = alpha·x over n elements. As in BLAS, alpha = 0 sets
// them to zero (NaN included) and a negative increment does nothing.
func (Implementation) Sscal(n int, alpha float32, x []float32, incX int) {
	if incX != 1 || n <= 0 || len(x) < n || alpha == 0 {
		native.Sscal(n, alpha, x, incX)
		return
	}
	tensor.Scale(x[:n], alpha, x[:n])
}

func pick(cond bool, a, b int) int {
	if cond {
		return a
	}
	return b
}

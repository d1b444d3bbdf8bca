// Package strided lets the gonumblas package reach package tensor's
// blocked GEMM over strided storage without adding a BLAS-shaped function,
// with its run of same-typed arguments, to tensor's own API.
package strided

// Gemm computes c = alpha·op(a)·op(b) + beta·c with BLAS's sgemm arguments
// (row-major, leading dimensions lda, ldb, ldc). Package tensor sets it at
// init; the caller checks every dimension and length first.
var Gemm func(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int)

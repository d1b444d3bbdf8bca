// Package gonumblas makes posttrain's float32 kernels available to gonum:
// Implementation satisfies gonum's blas.Float32, so
//
//	blas32.Use(gonumblas.Implementation{})
//
// routes every blas32 call of a gonum program (mat-free code built on
// blas32.General and blas32.Vector) through posttrain.
//
// The routines posttrain has kernels for run on them: Sgemm on the packed,
// cache-blocked, multi-threaded GEMM of package tensor (AVX-512, AVX2+FMA
// or NEON micro-kernels, any leading dimensions, results independent of the
// number of workers); Sgemv on the dot-product kernel (A·x) or the GEMM's
// streaming one-row path (Aᵀ·x); Sdot, Saxpy and Sscal on the slice
// kernels when the increments are 1. Everything else — other Level 1, 2
// and 3 routines, and non-unit or negative increments — is gonum's native
// implementation, embedded, so the whole interface is there and behaves as
// gonum documents.
//
// Arguments are checked exactly as gonum checks them: a call gonum would
// reject panics with gonum's own message (the check is delegated to gonum's
// implementation, which panics before doing any work).
//
// Sums are not bit-identical to gonum's: the kernels add in a different
// order (Dot, for one, adds float32 lanes in blocks and the blocks in
// float64), so results agree to float32 rounding, which the tests check
// against gonum's native implementation as the reference.
package gonumblas

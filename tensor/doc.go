// Package tensor is posttrain's numeric base: dense row-major float32
// arrays, slice kernels, and matrix products.
//
// # Kernels
//
// The slice kernels (Dot, Axpy, Scale, Add, Sub, Mul, Sum, Max, ArgMax,
// Exp, Log, LogSumExp, LogSumExp64, Softmax, ScaledSoftmax, SoftmaxLSE, LogSoftmax, TopK and the bfloat16/float16
// conversions) take whole slices and are written three times over: in
// AVX-512 and AVX2+FMA assembly for amd64, in NEON assembly for arm64, and
// once in portable Go. The fastest tier the CPU supports is chosen once, at
// init, through golang.org/x/sys/cpu; building with -tags purego runs the Go
// twins everywhere. Every tier is tested against the Go twin in one test
// binary.
//
// # Numerics
//
// Reductions (Sum, Dot, LogSumExp) keep float32 partial sums over blocks of
// 4096 elements and add the blocks in float64. Exp and Log are within 2 ulp
// of the correctly rounded result. Softmax and LogSoftmax subtract the row
// maximum before exponentiating and read their input twice: once for the
// running max and sum together, once to write.
//
// # Matrix products
//
// MatMul, Gemm and BatchedGemm follow Goto and van de Geijn, "Anatomy of
// High-Performance Matrix Multiplication" (ACM TOMS 34(3), 2008): B is
// packed, transposed if need be, into panels sized for the L2 cache; a
// register-blocked micro-kernel (12×32 with AVX-512, 6×16 with AVX2, 8×12
// with NEON, 4×8 in Go) multiplies a tile of A, kept in L1, by one panel.
// Rectangles of C are shared out to a fixed pool of GOMAXPROCS workers, so
// a call allocates nothing once warm, and every element of C sums its
// products in the same order whatever the number of workers.
//
// # Errors
//
// A length or shape mismatch is a programmer error: kernels panic with a
// *ShapeError, as gonum does, and never return errors or allocate on the hot
// path. Data-dependent checks (NaN in a loss's input, an out-of-range label)
// belong to the packages that consume the data.
package tensor

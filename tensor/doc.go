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
// # BF16
//
// Weights that are only read (a frozen base under LoRA, reference and
// teacher models, generation) can be held as BF16, bfloat16 (Kalamkar et
// al., "A Study of BFLOAT16 for Deep Learning Training", 2019): float32's
// exponent with 8 significant bits, half the bytes. GemmBF16 multiplies two
// BF16 tensors, GemmMixed float32 activations (rounded to bfloat16) by
// BF16 weights, both accumulating in float32; MatVecBF16
// is the one-token product y = W·x with x kept exact, bound by the time to
// stream W from memory.
//
// A product of two bfloat16 values is exact in float32, so every route
// computes the same products and differs only in summation order (and
// in that VDPBF16PS reads subnormal bfloat16 as zero). On the
// "avx512bf16" tier the micro-kernel multiplies pairs of bfloat16 with
// VDPBF16PS (12×32 tile, 24 accumulators); every other tier widens B to
// float32 while packing it (and A once per call) and runs its float32
// micro-kernel, so the weights still take and stream half the bytes.
// GemmWiden keeps float32 activations exact against bfloat16 weights, on
// every tier the float32 kernel's speed: the product of a frozen layer
// under training. VDPBF16PS doubles the multiply-adds per instruction
// but not necessarily per cycle: on the Intel Xeon (Sapphire Rapids
// class, in a VM) this was measured on, it retires one every two cycles
// and holds the FMA ports meanwhile (a loop alternating it with
// VFMADD231PS takes the sum of their times), so its peak is half the
// float32 FMA's in FLOPs (simd's BenchmarkPeak: 95 against 186 GFLOPS
// per core), and that tier is opt-in (SetTier) rather than chosen at
// init. The "amx" tier, on
// CPUs with AMX-BF16 where Linux grants the tile state
// (arch_prctl(ARCH_REQ_XCOMP_PERM), requested once at init), multiplies
// 32×32 tiles of C with TDPBF16PS; it is opt-in too until it has been
// measured, and its tests run only on such CPUs.
//
// # Errors
//
// A length or shape mismatch is a programmer error: kernels panic with a
// *ShapeError, as gonum does, and never return errors or allocate on the hot
// path. Data-dependent checks (NaN in a loss's input, an out-of-range label)
// belong to the packages that consume the data.
package tensor

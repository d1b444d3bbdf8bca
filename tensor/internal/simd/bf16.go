package simd

// bfloat16 kernels. A bfloat16 is the top half of a float32, so widening
// one is exact (a shift) and a product of two is exact in float32 (8 + 8
// significant bits). Tiers with AVX512-BF16 multiply pairs of them with
// VDPBF16PS; the others widen while packing and reuse the float32 GEMM.

// BF16Kernel is a bfloat16 GEMM micro-kernel on packed operands. For a
// product of depth k, kp = ⌈k/2⌉ pairs:
//
//	a: kp groups of MR pairs: a[(q*MR+i)*2+h] = A[i, 2q+h]
//	b: kp groups of NR pairs: b[(q*NR+j)*2+h] = B[2q+h, j]
//
// with zeros past k (and in rows or columns past the tile's edge, which
// the caller then discards). Run computes the whole MR×NR tile:
// c[i*ldc+j] = Σ_q Σ_h A[i, 2q+h]·B[2q+h, j] in float32, adding it to c
// when acc is true and never reading c when acc is false. kp ≥ 1.
//
// VDPBF16PS reads subnormal bfloat16 inputs as zero and flushes
// subnormal float32 results to zero, which the widening route does not:
// a product with a subnormal factor (below 2^-126 in magnitude) is lost.
// Weights and activations of trained models do not live there.
type BF16Kernel struct {
	MR, NR int
	// KBlock, if above 1, groups A by blocks of KBlock pairs instead:
	// a[((q/KBlock*MR+i)*KBlock+q%KBlock)*2+h] = A[i, 2q+h], each row's
	// block contiguous (an AMX tile row), and kp must be a multiple of
	// KBlock.
	KBlock int
	Run    func(kp int, a, b []uint16, c []float32, ldc int, acc bool)
}

// RoundBF16 rounds f to the nearest bfloat16, ties to even (the
// conversion ToBF16 applies to slices).
func RoundBF16(f float32) uint16 { return toBF16(f) }

// WidenBF16 returns the float32 value of bfloat16 h, exactly.
func WidenBF16(h uint16) float32 { return fromBF16(h) }

package simd

// GemmKernel is one tier's register-blocked GEMM micro-kernel and its tile
// geometry. Package tensor packs A and B into the layouts below, sized for
// the caches, and calls Run once per tile of C; Run loops over k itself, so
// a call does k·MR·NR multiply-adds and the call overhead vanishes.
//
// Operands, for a tile of mr ≤ MR rows and nr ≤ NR columns of C:
//
//	a: A read in place, A[i, p] = a[i*rs+p*ks]: rs = lda, ks = 1 for a
//	   row-major A; rs = 1, ks = lda for a transposed one. A needs no
//	   packing: a tile's mr rows stay in L1 across the B panels it meets.
//	b: the packed B panel, k groups of NR floats: b[p*NR+j] = B[p, j],
//	   zero beyond nr, so a kernel may compute the full NR width
//	c: the tile's first element; row i starts at c[i*ldc]
//
// Run computes c[i*ldc+j] = Σ_p A[i, p]·b[p*NR+j] for i < mr, j < nr, in
// order of increasing p, and adds that sum to c instead when acc is true.
// With acc false it never reads c, so NaN left in c does not leak into the
// result. Elements of c outside the mr×nr tile are neither read nor
// written. k ≥ 1.
type GemmKernel struct {
	MR, NR int
	Run    func(mr, nr, k int, a []float32, rs, ks int, b, c []float32, ldc int, acc bool)

	// PackT16, if not nil, transposes n16 blocks of 16×16 floats while
	// packing a transposed B: for q < n16 and i, r < 16,
	//	dst[(16q+i)*ldd+r] = src[r*lds+16q+i]
	// A scalar loop spends a load and a store on every float; this does it
	// with in-register shuffles.
	PackT16 func(dst, src []float32, lds, ldd, n16 int)

	// PackN, if not nil, copies np whole panels of a row-major B into
	// panel layout: for p < k, q < np and j < NR,
	//	dst[q*panel+p*NR+j] = src[p*lds+q*NR+j]
	PackN func(dst, src []float32, lds, panel, np, k int)

	// Rows4, if not nil, adds four scaled rows of B onto c:
	//	c[j] += a0·b[j] + a1·b[ldb+j] + a2·b[2·ldb+j] + a3·b[3·ldb+j]
	// in that order, for j < len(c). A product with one row of C is a
	// matrix–vector product that streams B once; packing B would double
	// the memory traffic.
	Rows4 func(c []float32, a0, a1, a2, a3 float32, b []float32, ldb int)
}

// gemmGeneric is the portable twin: a 4×8 tile that keeps one row's eight
// accumulators in locals, so the compiler holds them in registers.
var gemmGeneric = &GemmKernel{MR: 4, NR: 8, Run: gemmRunGeneric}

func gemmRunGeneric(mr, nr, k int, a []float32, rs, ks int, b, c []float32, ldc int, acc bool) {
	const NR = 8
	b = b[:k*NR]
	for i := range mr {
		var s0, s1, s2, s3, s4, s5, s6, s7 float32
		ai0 := i * rs
		for p := range k {
			ai := a[ai0+p*ks]
			bp := b[p*NR : p*NR+NR : p*NR+NR]
			s0 += ai * bp[0]
			s1 += ai * bp[1]
			s2 += ai * bp[2]
			s3 += ai * bp[3]
			s4 += ai * bp[4]
			s5 += ai * bp[5]
			s6 += ai * bp[6]
			s7 += ai * bp[7]
		}
		s := [NR]float32{s0, s1, s2, s3, s4, s5, s6, s7}
		ci := c[i*ldc : i*ldc+nr]
		if acc {
			for j := range ci {
				ci[j] += s[j]
			}
		} else {
			copy(ci, s[:nr])
		}
	}
}

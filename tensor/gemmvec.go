package tensor

import "github.com/posttrain/posttrain/tensor/internal/simd"

// A product with one row of C, such as one token's logits from a
// 512×49,152 projection, is a matrix–vector product: each element of B is
// used once, so the time goes to reading B from memory, and packing it
// would add a second pass. Where the tier has a Rows4 kernel, such
// products stream B four rows at a time onto chunks of C that stay in L1;
// with B transposed, one Dot per column reads each row of B once.
const gemmVecCols = 2048 // columns of C per task: 8 KiB of C, four 8 KiB runs of B

// vec reports whether g takes the streaming path. With a transposed B
// (a layer's weights [out,in] times one token), each element of C is a
// dot product of a with a contiguous row of B, on every tier.
func (g *gemmArgs) vec(k *simd.GemmKernel) bool {
	if g.m != 1 || g.b16 != nil {
		return false
	}
	if g.transB { // a must be contiguous for Dot: strided only through gonumblas
		return !g.transA || g.lda == 1
	}
	return k.Rows4 != nil
}

// vecTask computes columns [t·gemmVecCols, …) of the single row of C. With
// one row, a is a vector whether or not it is transposed: contiguous if
// not, lda floats between elements if it is.
func (g *gemmArgs) vecTask(k *simd.GemmKernel, t int, acc bool) {
	n, kk, alpha, ldb := g.n, g.k, g.alpha, g.ldb
	j0 := t * gemmVecCols
	c := g.c[j0:min(n, j0+gemmVecCols)]
	if g.transB {
		a := g.a[:kk]
		for j := range c {
			d := alpha * simd.K.Dot(a, g.b[(j0+j)*ldb:(j0+j)*ldb+kk])
			if acc {
				c[j] += d
			} else {
				c[j] = d
			}
		}
		return
	}
	if !acc {
		clear(c)
	}
	a, sa := g.a, 1
	if g.transA {
		sa = g.lda
	}
	p := 0
	for ; p+4 <= kk; p += 4 {
		k.Rows4(c, alpha*a[p*sa], alpha*a[(p+1)*sa], alpha*a[(p+2)*sa], alpha*a[(p+3)*sa], g.b[p*ldb+j0:], ldb)
	}
	for ; p < kk; p++ {
		simd.K.Axpy(alpha*a[p*sa], g.b[p*ldb+j0:p*ldb+j0+len(c)], c)
	}
}

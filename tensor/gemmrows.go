package tensor

import "github.com/posttrain/posttrain/tensor/internal/simd"

// A product with very few rows of C, such as one token's logits from a
// 512×49,152 projection, is a matrix–vector product in disguise: each
// element of B is used by at most a few multiply-adds, so the time goes to
// reading B once from memory, and packing B would add a second pass over
// it. Such products stream B row by row instead, through the Axpy kernel,
// onto column chunks of C that stay in L1; with op(B) = Bᵀ, each element
// of C is a Dot of two contiguous rows.
const (
	gemmFewRows = 4    // at most this many rows of C take the streaming path
	gemmRowsCol = 2048 // columns of C per task: m×8 KiB of C plus 8 KiB of B in L1
)

// fewRows reports whether g takes the streaming path.
func (g *gemmArgs) fewRows() bool { return !g.transA && g.m <= gemmFewRows }

// rowsTask computes columns [t·gemmRowsCol, …) of every row of C.
func (g *gemmArgs) rowsTask(t int, acc bool) {
	m, n, k := g.m, g.n, g.k
	j0 := t * gemmRowsCol
	j1 := min(n, j0+gemmRowsCol)
	if g.transB {
		for j := j0; j < j1; j++ {
			bj := g.b[j*k : (j+1)*k]
			for i := range m {
				v := g.alpha * simd.K.Dot(g.a[i*k:(i+1)*k], bj)
				if acc {
					v += g.c[i*n+j]
				}
				g.c[i*n+j] = v
			}
		}
		return
	}
	if !acc {
		for i := range m {
			clear(g.c[i*n+j0 : i*n+j1])
		}
	}
	for p := range k {
		bp := g.b[p*n+j0 : p*n+j1]
		for i := range m {
			simd.K.Axpy(g.alpha*g.a[i*k+p], bp, g.c[i*n+j0:i*n+j1])
		}
	}
}

//go:build gc && !purego

package simd

// matVec4NEON stores the partial sums of four rows of w·x, over len(x)
// columns (a multiple of 8), in out: row r's eight lanes at out[8r:]
// (bf16_arm64.s, written by _gen/gemm).
//
//go:noescape
func matVec4NEON(out *[32]float32, w []uint16, ldw int, x []float32)

// matVecNEON is Kernels.MatVecBF16: four rows at a time in assembly, the
// rows and columns left over in Go.
func matVecNEON(y []float32, w []uint16, ldw int, x []float32) {
	n := len(x) &^ 7
	i := 0
	if n > 0 {
		var out [32]float32
		for ; i+4 <= len(y); i += 4 {
			matVec4NEON(&out, w[i*ldw:], ldw, x[:n])
			for r := range 4 {
				o := out[8*r : 8*r+8 : 8*r+8]
				y[i+r] = ((o[0] + o[4]) + (o[1] + o[5])) + ((o[2] + o[6]) + (o[3] + o[7]))
			}
		}
	}
	if i < len(y) {
		matVecBF16Generic(y[i:], w[i*ldw:], ldw, x[:n])
	}
	if n < len(x) {
		matVecTail(y, w, ldw, x, n)
	}
}

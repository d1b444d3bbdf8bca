package gonumblas_test

import (
	"fmt"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"

	"github.com/posttrain/posttrain/tensor/gonumblas"
)

// After Use, every blas32 call runs on posttrain's kernels: here a product
// of a matrix with padded rows (Stride 4 > Cols 3) into a strided C.
func Example() {
	blas32.Use(gonumblas.Implementation{})

	a := blas32.General{Rows: 2, Cols: 3, Stride: 4, Data: []float32{
		1, 2, 3, 0,
		4, 5, 6, 0,
	}}
	b := blas32.General{Rows: 3, Cols: 2, Stride: 2, Data: []float32{
		1, 0,
		0, 1,
		1, 1,
	}}
	c := blas32.General{Rows: 2, Cols: 2, Stride: 2, Data: make([]float32, 4)}
	blas32.Gemm(blas.NoTrans, blas.NoTrans, 1, a, b, 0, c)
	fmt.Println(c.Data)
	// Output: [4 5 10 11]
}

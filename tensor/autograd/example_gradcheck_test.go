package autograd_test

import (
	"fmt"

	"github.com/posttrain/posttrain/tensor"
	"github.com/posttrain/posttrain/tensor/autograd"
)

// GradCheck compares a backward pass with central differences, here for
// Σ x·x·y over two inputs; the error names the worst element when they
// disagree.
func ExampleGradCheck() {
	x := autograd.Param(tensor.FromSlice([]float32{0.5, -1, 2}, 3))
	y := autograd.Param(tensor.FromSlice([]float32{1.5, 0.25, -0.75}, 3))
	f := func(t *autograd.Tape) *autograd.Var { return t.Sum(t.Mul(t.Mul(x, x), y)) }
	err := autograd.GradCheck(f, []*autograd.Var{x, y}, 1e-2, 1e-3, 1)
	fmt.Println("gradients agree:", err == nil)
	// The inputs keep the analytic gradient of L = w·Σ x²y (w drawn from the
	// seed): ∂L/∂x = 2w·x·y and ∂L/∂y = w·x², so their ratio is 2y/x.
	gx, gy := x.Grad.Data(), y.Grad.Data()
	for i := range gx {
		fmt.Printf("%.3f ", gx[i]/gy[i])
	}
	fmt.Println()
	// Output:
	// gradients agree: true
	// 6.000 -0.500 -0.750
}

// GradCheckWith names its settings, so a step and a tolerance cannot
// trade places unseen. Here the zero value's step (1e-2) and tolerance
// (1e-2) check L = Σ w·x·y, whose gradients are ∂L/∂x = w·y and
// ∂L/∂y = w·x: their ratio is y/x.
func ExampleGradCheckWith() {
	x := autograd.Param(tensor.FromSlice([]float32{0.5, -1, 2}, 3))
	y := autograd.Param(tensor.FromSlice([]float32{1.5, 0.25, -0.75}, 3))
	f := func(t *autograd.Tape) *autograd.Var { return t.Mul(x, y) }
	err := autograd.GradCheckWith(f, []*autograd.Var{x, y}, autograd.GradCheckOptions{Tol: 1e-3, Seed: 1})
	fmt.Println("gradients agree:", err == nil)
	gx, gy := x.Grad.Data(), y.Grad.Data()
	for i := range gx {
		fmt.Printf("%.3f ", gx[i]/gy[i])
	}
	fmt.Println()
	// Output:
	// gradients agree: true
	// 3.000 -0.250 -0.375
}

package tensor

import (
	"fmt"
	"math"
	"unsafe"
)

// Dense is a row-major array of float32 with a shape. The zero value is an
// empty tensor of shape []; New and FromSlice make the useful ones.
//
// A Dense shares its backing slice with anything made from it by Row or
// Reshape: writes through one are seen through the other, as with Go slices.
type Dense struct {
	shape []int
	data  []float32
}

// New returns a zeroed tensor of the given shape. A tensor with no
// dimensions is a scalar holding one element. It panics with a *ShapeError
// if a dimension is negative or the element count (or its size in bytes)
// overflows int: New(1<<62, 4) must not wrap to an empty tensor.
func New(shape ...int) *Dense {
	n := numel(shape)
	return &Dense{shape: append([]int(nil), shape...), data: make([]float32, n)}
}

// FromSlice wraps data, without copying, as a tensor of the given shape.
// It panics with a *ShapeError if len(data) does not equal the product of
// the dimensions.
func FromSlice(data []float32, shape ...int) *Dense {
	if n := numel(shape); n != len(data) {
		panic(&ShapeError{Op: "FromSlice", Msg: fmt.Sprintf("%d elements do not fill shape %v (%d)", len(data), shape, n)})
	}
	return &Dense{shape: append([]int(nil), shape...), data: data}
}

// Shape returns the dimensions. The caller must not modify the slice.
func (t *Dense) Shape() []int { return t.shape }

// Data returns the backing slice in row-major order.
func (t *Dense) Data() []float32 { return t.data }

// Len returns the number of elements.
func (t *Dense) Len() int { return len(t.data) }

// Overlaps reports whether t and u share any element of memory: the same
// backing array with intersecting ranges, as a tensor and its Row or
// Reshape do, or two tensors over shifted slices of one array. Functions
// that write a result while reading an input use it to refuse a partial
// overlap, which would overwrite input before it is read.
func (t *Dense) Overlaps(u *Dense) bool {
	a, b := t.data, u.data
	if len(a) == 0 || len(b) == 0 {
		return false
	}
	pa, pb := uintptr(unsafe.Pointer(&a[0])), uintptr(unsafe.Pointer(&b[0]))
	return pa < pb+uintptr(len(b))*4 && pb < pa+uintptr(len(a))*4
}

// Dims returns the number of dimensions.
func (t *Dense) Dims() int { return len(t.shape) }

// Dim returns the size of dimension i.
func (t *Dense) Dim(i int) int { return t.shape[i] }

// Rows and Cols return the two dimensions of a 2-D tensor. They panic with
// a *ShapeError on any other rank.
func (t *Dense) Rows() int { t.must2D("Rows"); return t.shape[0] }

// Cols returns the second dimension of a 2-D tensor.
func (t *Dense) Cols() int { t.must2D("Cols"); return t.shape[1] }

// Row returns row i of a 2-D tensor as a slice of the backing array.
func (t *Dense) Row(i int) []float32 {
	t.must2D("Row")
	r, c := t.shape[0], t.shape[1]
	if i < 0 || i >= r {
		panic(&ShapeError{Op: "Row", Msg: fmt.Sprintf("row %d out of range [0, %d)", i, r)})
	}
	return t.data[i*c : (i+1)*c : (i+1)*c]
}

// Reshape returns a tensor of the new shape over the same data. One
// dimension may be -1, inferred from the others. It panics with a
// *ShapeError if the element counts differ.
func (t *Dense) Reshape(shape ...int) *Dense {
	shape = append([]int(nil), shape...)
	infer := -1
	for i, d := range shape {
		switch {
		case d == -1 && infer < 0:
			infer = i
		case d < 0:
			panic(&ShapeError{Op: "Reshape", Msg: fmt.Sprintf("bad dimension %d in %v", d, shape)})
		}
	}
	known := product("Reshape", shape, infer)
	if infer >= 0 {
		if known == 0 || len(t.data)%known != 0 {
			panic(&ShapeError{Op: "Reshape", Msg: fmt.Sprintf("cannot infer %v from %d elements", shape, len(t.data))})
		}
		shape[infer] = len(t.data) / known
		known *= shape[infer]
	}
	if known != len(t.data) {
		panic(&ShapeError{Op: "Reshape", Msg: fmt.Sprintf("shape %v holds %d elements, tensor has %d", shape, known, len(t.data))})
	}
	return &Dense{shape: shape, data: t.data}
}

// Clone returns a deep copy.
func (t *Dense) Clone() *Dense {
	return &Dense{shape: append([]int(nil), t.shape...), data: append([]float32(nil), t.data...)}
}

// Zero sets every element to 0.
func (t *Dense) Zero() { clear(t.data) }

// SameShape reports whether t and u have identical shapes.
func (t *Dense) SameShape(u *Dense) bool { return sameShape(t.shape, u.shape) }

// String formats small tensors in full and large ones by shape.
func (t *Dense) String() string {
	if len(t.data) > 64 {
		return fmt.Sprintf("Dense%v", t.shape)
	}
	return fmt.Sprintf("Dense%v%v", t.shape, t.data)
}

func (t *Dense) must2D(op string) {
	if len(t.shape) != 2 {
		panic(&ShapeError{Op: op, Msg: fmt.Sprintf("need a 2-D tensor, have shape %v", t.shape)})
	}
}

func numel(shape []int) int { return product("New", shape, -1) }

// product returns the product of shape's dimensions other than shape[skip]
// (skip < 0 for none). It panics with a *ShapeError on a negative
// dimension, or if the product, or its size in bytes as float32s,
// overflows int. A zero dimension makes the product 0 whatever the others.
func product(op string, shape []int, skip int) int {
	n, zero := 1, false
	for i, d := range shape {
		if i == skip {
			continue
		}
		if d < 0 {
			panic(&ShapeError{Op: op, Msg: fmt.Sprintf("negative dimension in %v", shape)})
		}
		if d == 0 {
			zero = true
		}
	}
	if zero {
		return 0
	}
	for i, d := range shape {
		if i == skip {
			continue
		}
		if n > math.MaxInt/4/d {
			panic(&ShapeError{Op: op, Msg: fmt.Sprintf("shape %v holds more elements than fit in memory (overflows int)", shape)})
		}
		n *= d
	}
	return n
}

func sameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// ShapeError is the panic value for a shape or length mismatch: a
// programmer error, as in gonum, not a data-dependent failure.
type ShapeError struct {
	Op  string // the function that found the mismatch
	Msg string
}

// Error returns "tensor: Op: what was wrong".
func (e *ShapeError) Error() string { return "tensor: " + e.Op + ": " + e.Msg }

func mustSameLen(op string, a, b int) {
	if a != b {
		panic(&ShapeError{Op: op, Msg: fmt.Sprintf("length mismatch: %d != %d", a, b)})
	}
}

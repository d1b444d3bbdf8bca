package tensor

import "fmt"

// BF16 is a row-major array of bfloat16 values with a shape: the storage
// for weights that are read, never trained, such as a frozen base model
// under LoRA, a reference or teacher model, or a model that only
// generates. It halves the bytes of a float32 Dense, and the products
// below read it directly: GemmBF16 and GemmMixed for batches, MatVecBF16
// for one token at a time.
//
// Elements are bit patterns (the top 16 bits of a float32); Dense.BF16
// rounds a float32 tensor to one and BF16.Dense widens it back exactly.
// Checkpoints stored in bfloat16 load without rounding: wrap their words
// with FromSliceBF16. Like Dense, a BF16 shares its slice with anything
// made from it.
type BF16 struct {
	shape []int
	data  []uint16
}

// NewBF16 returns a zeroed bfloat16 tensor of the given shape.
func NewBF16(shape ...int) *BF16 {
	n := numel(shape)
	return &BF16{shape: append([]int(nil), shape...), data: make([]uint16, n)}
}

// FromSliceBF16 wraps bfloat16 bit patterns, without copying, as a tensor
// of the given shape. It panics with a *ShapeError if len(data) does not
// equal the product of the dimensions.
func FromSliceBF16(data []uint16, shape ...int) *BF16 {
	if n := numel(shape); n != len(data) {
		panic(&ShapeError{Op: "FromSliceBF16", Msg: fmt.Sprintf("%d elements do not fill shape %v (%d)", len(data), shape, n)})
	}
	return &BF16{shape: append([]int(nil), shape...), data: data}
}

// BF16 returns t rounded to bfloat16 (nearest, ties to even), in a new
// tensor of the same shape.
func (t *Dense) BF16() *BF16 {
	b := &BF16{shape: append([]int(nil), t.shape...), data: make([]uint16, len(t.data))}
	ToBF16(b.data, t.data)
	return b
}

// Dense returns t widened to float32, exactly, in a new tensor.
func (t *BF16) Dense() *Dense {
	d := New(t.shape...)
	FromBF16(d.data, t.data)
	return d
}

// Shape returns the dimensions. The caller must not modify the slice.
func (t *BF16) Shape() []int { return t.shape }

// Data returns the bit patterns in row-major order.
func (t *BF16) Data() []uint16 { return t.data }

// Len returns the number of elements.
func (t *BF16) Len() int { return len(t.data) }

// Dims returns the number of dimensions.
func (t *BF16) Dims() int { return len(t.shape) }

// Dim returns the size of dimension i.
func (t *BF16) Dim(i int) int { return t.shape[i] }

// String formats t by shape.
func (t *BF16) String() string { return fmt.Sprintf("BF16%v", t.shape) }

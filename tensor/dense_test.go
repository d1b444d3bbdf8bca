package tensor

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// mustPanicShape runs f and checks it panics with a *ShapeError.
func mustPanicShape(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		t.Helper()
		err, _ := recover().(error)
		var se *ShapeError
		require.ErrorAs(t, err, &se, "%s: want a panic with a *ShapeError", what)
	}()
	f()
}

func TestDense(t *testing.T) {
	a := New(2, 3)
	assert.Equal(t, []int{2, 3}, a.Shape())
	assert.Equal(t, 6, a.Len())
	b := FromSlice([]float32{1, 2, 3, 4, 5, 6}, 2, 3)
	r := b.Row(1)
	assert.Equal(t, []float32{4, 5, 6}, r)
	assert.Equal(t, 3, cap(r), "Row's capacity ends at the row")
	c := b.Reshape(3, -1)
	assert.Equal(t, []int{3, 2}, c.Shape(), "Reshape(3, -1)")
	c.Data()[0] = 9
	assert.Equal(t, float32(9), b.Data()[0], "Reshape shares data")
	d := b.Clone()
	d.Data()[0] = 1
	assert.Equal(t, float32(9), b.Data()[0], "Clone copies data")
	assert.True(t, d.SameShape(b), "Clone keeps the shape")
	assert.Equal(t, 1, New().Len(), "a scalar tensor has one element")
	mustPanicShape(t, "FromSlice short", func() { FromSlice(make([]float32, 5), 2, 3) })
	mustPanicShape(t, "New negative", func() { New(2, -1) })
	mustPanicShape(t, "Reshape count", func() { b.Reshape(4, 2) })
	mustPanicShape(t, "Reshape infer", func() { b.Reshape(4, -1) })
	mustPanicShape(t, "Row range", func() { b.Row(2) })
	mustPanicShape(t, "Row rank", func() { New(2, 2, 2).Row(0) })
	mustPanicShape(t, "Dot", func() { Dot(make([]float32, 3), make([]float32, 4)) })
	mustPanicShape(t, "Add", func() { Add(make([]float32, 3), make([]float32, 3), make([]float32, 4)) })
	mustPanicShape(t, "Exp", func() { Exp(make([]float32, 2), make([]float32, 3)) })
	mustPanicShape(t, "ToF16", func() { ToF16(make([]uint16, 2), make([]float32, 3)) })
	mustPanicShape(t, "TopK", func() { TopK(nil, -1) })
	mustPanicShape(t, "Gemm", func() { MatMul(New(2, 2), New(2, 3), New(2, 2)) })
}

// Shapes whose element count overflows int panic with a *ShapeError
// instead of wrapping (the probe: New(1<<62, 4) made an empty tensor).
func TestShapeOverflow(t *testing.T) {
	mustPanicShape(t, "New(1<<62, 4)", func() { New(1<<62, 4) })
	mustPanicShape(t, "New(1<<31, 1<<31, 4)", func() { New(1<<31, 1<<31, 4) })
	mustPanicShape(t, "FromSlice(nil, 1<<62, 4)", func() { FromSlice(nil, 1<<62, 4) })
	mustPanicShape(t, "Reshape(1<<62, 4)", func() { New(0).Reshape(1<<62, 4) })
	mustPanicShape(t, "Reshape(-1, 1<<62, 4)", func() { New(0).Reshape(-1, 1<<62, 4) })
	mustPanicShape(t, "New(-1, 0)", func() { New(-1, 0) })
	if a := New(1<<62, 0, 4); a.Len() != 0 {
		t.Fatalf("a zero dimension: %d elements", a.Len())
	}
}

func TestOverlaps(t *testing.T) {
	mem := make([]float32, 12)
	a := FromSlice(mem[:8], 2, 4)
	for _, c := range []struct {
		u    *Dense
		want bool
	}{
		{a, true},
		{FromSlice(mem[4:12], 2, 4), true}, // shifted a row
		{FromSlice(mem[7:11], 1, 4), true}, // one element in common
		{FromSlice(mem[8:12], 1, 4), false},
		{FromSlice(mem[8:8], 0), false},
		{FromSlice(make([]float32, 8), 2, 4), false},
		{a.Reshape(8), true},
	} {
		if got := a.Overlaps(c.u); got != c.want || c.u.Overlaps(a) != c.want {
			t.Errorf("Overlaps %v: %v, want %v", c.u.Shape(), got, c.want)
		}
	}
}

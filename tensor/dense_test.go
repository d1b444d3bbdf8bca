package tensor

import (
	"errors"
	"testing"
)

// mustPanicShape runs f and checks it panics with a *ShapeError.
func mustPanicShape(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		t.Helper()
		r := recover()
		if r == nil {
			t.Fatalf("%s: no panic", what)
		}
		err, ok := r.(error)
		var se *ShapeError
		if !ok || !errors.As(err, &se) {
			t.Fatalf("%s: panic %v (%T), want *ShapeError", what, r, r)
		}
	}()
	f()
}

func TestDense(t *testing.T) {
	a := New(2, 3)
	if got := a.Shape(); len(got) != 2 || got[0] != 2 || got[1] != 3 || a.Len() != 6 {
		t.Fatalf("New(2,3): shape %v len %d", got, a.Len())
	}
	b := FromSlice([]float32{1, 2, 3, 4, 5, 6}, 2, 3)
	if r := b.Row(1); len(r) != 3 || r[0] != 4 || cap(r) != 3 {
		t.Fatalf("Row(1) = %v (cap %d)", r, cap(r))
	}
	c := b.Reshape(3, -1)
	if c.Rows() != 3 || c.Cols() != 2 {
		t.Fatalf("Reshape(3,-1): %v", c.Shape())
	}
	c.Data()[0] = 9
	if b.Data()[0] != 9 {
		t.Fatal("Reshape does not share data")
	}
	d := b.Clone()
	d.Data()[0] = 1
	if b.Data()[0] != 9 || !d.SameShape(b) {
		t.Fatal("Clone shares data or changes shape")
	}
	if s := New().Len(); s != 1 {
		t.Fatalf("scalar tensor has %d elements", s)
	}
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

package lmhead

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/posttrain/posttrain/tensor"
)

func TestChunkRows(t *testing.T) {
	for _, v := range []int{1, 7, 32000, 49152, 151936, 1 << 22} {
		for heads := 1; heads <= 2; heads++ {
			r := ChunkRows(v, heads)
			if r < 256 || r > 1024 || r%16 != 0 {
				t.Errorf("ChunkRows(%d, %d) = %d, want a multiple of 16 in [256, 1024]", v, heads, r)
			}
			if v >= 1<<22 && r != 256 {
				t.Errorf("ChunkRows(%d, %d) = %d, want the floor 256", v, heads, r)
			}
		}
	}
	if ChunkRows(49152, 2) > ChunkRows(49152, 1) {
		t.Error("two heads got larger chunks than one")
	}
}

func newModel(n, v, d int) Model {
	h, w := tensor.New(n, d), tensor.New(v, d)
	for i, x := range h.Data() {
		h.Data()[i] = float32(i%7) - 3 + x
	}
	for i := range w.Data() {
		w.Data()[i] = float32(i%5)*0.25 - 0.5
	}
	return Model{H: h, W: w}
}

func allRows(n int) []int32 {
	r := make([]int32, n)
	for i := range r {
		r[i] = int32(i)
	}
	return r
}

// A Reuse pass after a forward-only pass runs the chunks last to first
// and takes the last chunk's logits from the buffer: a mark left in them
// by the forward pass must still be there. Another row count forms every
// chunk again.
func TestReuse(t *testing.T) {
	m := newModel(10, 6, 3)
	rows := allRows(10)
	c := Chunker{Rows: 4}
	const mark = 12345
	err := c.Run(context.Background(), Pass{S: m, Rows: rows, Loss: func(lo, hi int, z, _ *tensor.Dense) (float32, error) {
		z.Data()[0] = mark
		return 0, nil
	}})
	require.NoError(t, err)
	var order []int
	var marked []bool
	g := &Grad{W: tensor.New(6, 3)}
	err = c.Run(context.Background(), Pass{S: m, Rows: rows, Reuse: true, Grad: g, Loss: func(lo, hi int, z, _ *tensor.Dense) (float32, error) {
		order = append(order, lo)
		marked = append(marked, z.Data()[0] == mark)
		z.Zero()
		return 1, nil
	}})
	require.NoError(t, err)
	assert.Equal(t, []int{8, 4, 0}, order, "chunks last to first")
	assert.Equal(t, []bool{true, false, false}, marked, "only the last chunk reused")

	// A gradient pass leaves nothing to reuse; nor does a pass over other rows.
	marked = marked[:0]
	err = c.Run(context.Background(), Pass{S: m, Rows: rows, Reuse: true, Grad: g, Loss: func(lo, hi int, z, _ *tensor.Dense) (float32, error) {
		marked = append(marked, z.Data()[0] == mark)
		return 0, nil
	}})
	require.NoError(t, err)
	assert.NotContains(t, marked, true)
	require.NoError(t, c.Run(context.Background(), Pass{S: m, Rows: rows, Loss: func(lo, hi int, z, _ *tensor.Dense) (float32, error) {
		z.Data()[0] = mark
		return 0, nil
	}}))
	marked = marked[:0]
	err = c.Run(context.Background(), Pass{S: m, Rows: rows[:9], Reuse: true, Grad: g, Loss: func(lo, hi int, z, _ *tensor.Dense) (float32, error) {
		marked = append(marked, z.Data()[0] == mark)
		return 0, nil
	}})
	require.NoError(t, err)
	assert.NotContains(t, marked, true)
}

// A done context stops Run before the next chunk, with its error wrapped,
// and a context done from the start writes nothing.
func TestRunCancel(t *testing.T) {
	m := newModel(9, 5, 3)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	g := &Grad{H: tensor.New(9, 3), W: tensor.New(5, 3)}
	for i := range g.H.Data() {
		g.H.Data()[i] = 7
	}
	c := Chunker{Rows: 2}
	calls := 0
	err := c.Run(ctx, Pass{Name: "x: Op", S: m, Rows: []int32{1, 4}, Grad: g, Loss: func(lo, hi int, z, _ *tensor.Dense) (float32, error) {
		calls++
		return 1, nil
	}})
	require.ErrorIs(t, err, context.Canceled)
	assert.Contains(t, err.Error(), "x: Op")
	assert.Zero(t, calls)
	for _, x := range g.H.Data() {
		require.Equal(t, float32(7), x, "grad H written")
	}
	for _, x := range g.W.Data() {
		require.Zero(t, x, "grad W written")
	}

	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	calls = 0
	err = c.Run(ctx, Pass{Name: "x: Op", S: m, Rows: allRows(9), Loss: func(lo, hi int, z, _ *tensor.Dense) (float32, error) {
		calls++
		cancel()
		return 0, nil
	}})
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, 1, calls, "chunks run after the cancellation")
}

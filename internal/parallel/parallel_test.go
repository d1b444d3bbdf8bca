package parallel

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestForEveryChunkOnce(t *testing.T) {
	for _, n := range []int{0, 1, 2, 7, 1000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			hits := make([]atomic.Int32, n)
			For(n, func(c int) { hits[c].Add(1) })
			for c := range hits {
				require.Equal(t, int32(1), hits[c].Load(), "chunk %d", c)
			}
		})
	}
}

// sumBody adds chunk c's terms into part[c] using per-worker scratch.
type sumBody struct {
	x    []float64
	size int
	part []float64
}

var scratchKey = NewKey[[]float64]()

func (b *sumBody) Chunk(c int, w *Worker) {
	buf := Scratch(w, scratchKey)
	lo, hi := c*b.size, min(len(b.x), (c+1)*b.size)
	*buf = append((*buf)[:0], b.x[lo:hi]...)
	var s float64
	for _, v := range *buf {
		s += v
	}
	b.part[c] = s
}

// TestRunDeterministic: per-chunk results combined in chunk order are the
// same bits for any worker count, and scratch is never shared by two
// chunks at once (the race detector would see it).
func TestRunDeterministic(t *testing.T) {
	x := make([]float64, 100_000)
	for i := range x {
		x[i] = 1 / float64(i+1)
	}
	total := func(workers int) float64 {
		b := &sumBody{x: x, size: 777, part: make([]float64, (len(x)+776)/777)}
		Run(len(b.part), workers, b)
		var s float64
		for _, p := range b.part {
			s += p
		}
		return s
	}
	want := total(1)
	for _, w := range []int{2, 3, 8, 0} {
		assert.Equal(t, want, total(w), "workers %d", w)
	}
}

// TestNested: a body that starts a loop of its own finishes even when every
// pool goroutine is inside an outer body.
func TestNested(t *testing.T) {
	var count atomic.Int64
	For(4*runtime.GOMAXPROCS(0), func(int) {
		For(16, func(int) { count.Add(1) })
	})
	assert.Equal(t, int64(64*runtime.GOMAXPROCS(0)), count.Load())
}

func TestConcurrentCallers(t *testing.T) {
	errc := make(chan error, 8)
	for g := range 8 {
		go func() {
			for range 50 {
				var s atomic.Int64
				For(100, func(c int) { s.Add(int64(c)) })
				if s.Load() != 4950 {
					errc <- fmt.Errorf("caller %d: sum %d", g, s.Load())
					return
				}
			}
			errc <- nil
		}()
	}
	for range 8 {
		require.NoError(t, <-errc)
	}
}

func TestRunAllocs(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage instruments allocations")
	}
	b := &sumBody{x: make([]float64, 10_000), size: 100, part: make([]float64, 100)}
	Run(100, 0, b) // warm the pool, the free lists and the scratch
	assert.Zero(t, testing.AllocsPerRun(100, func() { Run(100, 0, b) }))
}

func TestEach(t *testing.T) {
	var ran atomic.Int64
	require.NoError(t, Each(t.Context(), 100, 7, func(context.Context, int) error {
		ran.Add(1)
		return nil
	}))
	assert.Equal(t, int64(100), ran.Load())

	// The lowest failing index wins; calls failing because of the
	// cancellation that the first failure caused do not count.
	bad3, bad40 := errors.New("3"), errors.New("40")
	for range 20 {
		err := Each(t.Context(), 100, 4, func(ctx context.Context, i int) error {
			switch i {
			case 3:
				return bad3
			case 40:
				return bad40
			}
			return ctx.Err()
		})
		require.ErrorIs(t, err, bad3)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := Each(ctx, 10, 2, func(context.Context, int) error { return nil })
	assert.ErrorIs(t, err, context.Canceled)
}

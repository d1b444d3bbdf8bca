package distill

import "github.com/posttrain/posttrain/internal/parallel"

// The losses split a batch into chunks of whole rows whose layout depends
// only on the batch shape, never on the number of workers, and sum each
// chunk's row losses in float64 in row order, then the chunks in chunk
// order. The result is therefore bit-identical for any GOMAXPROCS.
//
// Chunks run on posttrain's one worker pool (internal/parallel), each
// with the running goroutine's scratch. Nothing here allocates once the
// pool and the free lists are warm.

// chunkElems is the target number of logits per chunk: large enough that a
// chunk's bookkeeping is noise, small enough that a [2048 × 49152] batch
// gives every worker many chunks to balance.
const chunkElems = 1 << 16

// chunkRows returns how many rows of width v make one chunk.
func chunkRows(v int) int { return max(1, chunkElems/max(v, 1)) }

// chunker is one parallel pass: chunk processes chunk c with the calling
// worker's scratch.
type chunker interface {
	chunk(c int, s *scratch)
}

// batch adapts a chunker to parallel.Body; batches are recycled so that
// a call converts no new value to an interface.
type batch struct{ work chunker }

var (
	scratchKey = parallel.NewKey[scratch]()
	batches    = newFreeList[batch]()
)

func (b *batch) Chunk(c int, w *parallel.Worker) { b.work.chunk(c, parallel.Scratch(w, scratchKey)) }

// run calls work.chunk for every c in [0, n), spread over up to GOMAXPROCS
// goroutines (the caller and the pool's), and returns when all are done.
func run(work chunker, n int) {
	b := batches.get()
	b.work = work
	parallel.Run(n, 0, b)
	b.work = nil
	batches.put(b)
}

// freeList recycles per-call state without sync.Pool's random drops (the
// race detector makes sync.Pool drop items on purpose), so steady-state
// calls do not allocate.
type freeList[T any] struct{ ch chan *T }

func newFreeList[T any]() freeList[T] { return freeList[T]{make(chan *T, 64)} }

func (f freeList[T]) get() *T {
	select {
	case x := <-f.ch:
		return x
	default:
		return new(T)
	}
}

func (f freeList[T]) put(x *T) {
	select {
	case f.ch <- x:
	default:
	}
}

// scratch is one worker's reusable row buffers.
type scratch struct {
	a, b, c, d, e []float32
	f, h          []float64 // float64 rows, for the high-temperature path
}

// buf returns (*p)[:n], growing *p if needed.
func buf(p *[]float32, n int) []float32 {
	if cap(*p) < n {
		*p = make([]float32, n)
	}
	return (*p)[:n]
}

// buf64 returns (*p)[:n], growing *p if needed.
func buf64(p *[]float64, n int) []float64 {
	if cap(*p) < n {
		*p = make([]float64, n)
	}
	return (*p)[:n]
}

// parts holds one float64 partial sum per chunk, and per chunk the first
// error found, reused across calls.
type parts struct {
	sum  []float64
	errs []error
}

func (p *parts) reset(n int) {
	if cap(p.sum) < n {
		p.sum, p.errs = make([]float64, n), make([]error, n)
	}
	p.sum, p.errs = p.sum[:n], p.errs[:n]
	clear(p.sum)
	clear(p.errs)
}

// total returns the chunk sums added in chunk order, or the error of the
// first chunk that has one.
func (p *parts) total() (float64, error) {
	var s float64
	for c := range p.sum {
		if err := p.errs[c]; err != nil {
			clear(p.errs) // the free list should not keep errors alive
			return 0, err
		}
		s += p.sum[c]
	}
	return s, nil
}

// Package parallel is posttrain's one parallel-for: a loop over chunks on
// one persistent pool of goroutines, shared by the GEMM, the losses and
// autograd, plus Each, a bounded, cancellable loop for work that blocks
// (sampling a model, asking a labeler).
//
// Determinism is the caller's split, not the pool's: a loop body gets a
// chunk number, the chunks are laid out from the problem's shape alone,
// and a caller that combines per-chunk results in chunk order gets the
// same bits for any number of workers.
//
// The pool holds up to GOMAXPROCS−1 goroutines, started on first need;
// the calling goroutine always works too, so a loop never waits for a
// worker that is busy elsewhere: if no worker is free, the caller runs
// every chunk itself. That also makes nested loops safe (a loss body that
// calls the GEMM): a loop never blocks on a worker that has not joined it.
// Workers poll for new work briefly before they park, and a caller polls
// briefly for its helpers to finish before it sleeps: loops come in bursts
// (a layer, then the next), and waking a parked thread costs tens of
// microseconds on a VM, as much as a small product's share.
package parallel

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Body is a loop body that must not allocate per call: Chunk runs chunk c
// with w, the running goroutine's Worker.
type Body interface {
	// Chunk runs chunk c; w is the running goroutine's Worker.
	Chunk(c int, w *Worker)
}

// Worker is the state one goroutine carries from loop to loop: scratch
// buffers that packages keep on it with Scratch. One body at a time uses a
// Worker, so its scratch needs no locking.
type Worker struct {
	scratch [maxKeys]any
}

const maxKeys = 16

// Key names one package's scratch on every Worker. Make keys with NewKey
// in package-level variables.
type Key[T any] struct{ id int }

var keys atomic.Int32

// NewKey returns a new scratch key. It panics past maxKeys keys: they are
// meant to be a handful, declared once per package.
func NewKey[T any]() Key[T] {
	id := int(keys.Add(1)) - 1
	if id >= maxKeys {
		panic("parallel: too many scratch keys")
	}
	return Key[T]{id}
}

// Scratch returns w's value for key k, a new(T) on first use.
func Scratch[T any](w *Worker, k Key[T]) *T {
	if v, ok := w.scratch[k.id].(*T); ok {
		return v
	}
	v := new(T)
	w.scratch[k.id] = v
	return v
}

// spin is how long a worker polls for the next loop before it parks, and
// a caller for its helpers before it waits.
const spin = 50 * time.Microsecond

var pool struct {
	mu      sync.Mutex
	started int
	tickets chan *loop // one ticket per helper a loop would like
	loops   freeList[loop]
	workers freeList[Worker] // the callers' Workers
}

func init() {
	pool.tickets = make(chan *loop, 256)
	pool.loops = make(freeList[loop], 64)
	pool.workers = make(freeList[Worker], 64)
}

// loop is one call's shared state. Helpers join it under mu until the
// caller closes it; a ticket still queued after that is ignored (its loop
// may already be recycled and running another call, which it then
// simply helps).
type loop struct {
	body    Body
	n       int
	next    atomic.Int64
	mu      sync.Mutex
	closed  bool
	wg      sync.WaitGroup
	pending atomic.Int64 // helpers joined and not yet done
}

func (l *loop) drain(w *Worker) {
	for {
		c := int(l.next.Add(1)) - 1
		if c >= l.n {
			return
		}
		l.body.Chunk(c, w)
	}
}

// join registers a helper unless the caller has closed the loop.
func (l *loop) join() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.wg.Add(1)
	l.pending.Add(1)
	return true
}

func worker() {
	w := new(Worker)
	for {
		l := nextTicket()
		if !l.join() {
			continue
		}
		l.drain(w)
		l.pending.Add(-1)
		l.wg.Done()
	}
}

func nextTicket() *loop {
	for t0 := time.Now(); time.Since(t0) < spin; {
		select {
		case l := <-pool.tickets:
			return l
		default:
		}
	}
	return <-pool.tickets
}

func ensure(n int) {
	pool.mu.Lock()
	for ; pool.started < n; pool.started++ {
		go worker()
	}
	pool.mu.Unlock()
}

// Run calls b.Chunk(c, w) for every c in [0, n) and returns when all have
// returned. Chunks run on the calling goroutine and on up to workers − 1
// pool goroutines (workers ≤ 0 means GOMAXPROCS; it is capped at
// GOMAXPROCS and n). A steady-state call allocates nothing.
func Run(n, workers int, b Body) {
	if n <= 0 {
		return
	}
	procs := runtime.GOMAXPROCS(0)
	if workers <= 0 || workers > procs {
		workers = procs
	}
	workers = min(workers, n)
	w := pool.workers.get()
	defer pool.workers.put(w)
	if workers == 1 {
		for c := range n {
			b.Chunk(c, w)
		}
		return
	}
	ensure(workers - 1)
	l := pool.loops.get()
	l.mu.Lock() // a stale ticket's worker may be looking at l
	l.body, l.n = b, n
	l.next.Store(0)
	l.closed = false
	l.mu.Unlock()
	for range workers - 1 {
		select {
		case pool.tickets <- l:
		default: // the queue is full: the caller does more itself
		}
	}
	l.drain(w)
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	// Helpers usually finish within microseconds of the caller; polling
	// for that long is cheaper than parking and being woken.
	for t0 := time.Now(); l.pending.Load() > 0 && time.Since(t0) < spin; {
	}
	l.wg.Wait()
	l.body = nil
	pool.loops.put(l)
}

// Func is a loop body that needs no scratch: Run(n, workers, Func(f)).
type Func func(c int)

// Chunk calls f(c).
func (f Func) Chunk(c int, _ *Worker) { f(c) }

// For calls body(c) for every c in [0, n) on the calling goroutine and up
// to GOMAXPROCS − 1 pool goroutines, and returns when all have returned.
func For(n int, body func(c int)) { Run(n, 0, Func(body)) }

// freeList recycles per-call state without sync.Pool's random drops (the
// race detector makes sync.Pool drop items on purpose), so steady-state
// calls do not allocate.
type freeList[T any] chan *T

func (f freeList[T]) get() *T {
	select {
	case x := <-f:
		return x
	default:
		return new(T)
	}
}

func (f freeList[T]) put(x *T) {
	select {
	case f <- x:
	default:
	}
}

// Each calls f(ctx, i) for every i in [0, n) on at most workers
// goroutines of its own (workers ≤ 0 means GOMAXPROCS), for work that
// blocks — a model sampling, a labeler answering — and so must not hold
// the CPU pool's goroutines. The first failure cancels the context the
// others see and stops new calls; Each returns, after every call has
// returned, the error of the lowest failing index (so the same failure is
// reported whatever the scheduling), or ctx's error if ctx was cancelled
// from outside.
func Each(ctx context.Context, n, workers int, f func(ctx context.Context, i int) error) error {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	inner, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next  atomic.Int64
		mu    sync.Mutex
		first = -1
		ferr  error
		wg    sync.WaitGroup
	)
	for range min(workers, n) {
		wg.Go(func() {
			for inner.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := f(inner, i); err != nil {
					if inner.Err() != nil && errors.Is(err, context.Canceled) {
						continue // a consequence of another failure, or of ctx
					}
					mu.Lock()
					if first < 0 || i < first {
						first, ferr = i, err
					}
					mu.Unlock()
					cancel()
				}
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	return ferr
}

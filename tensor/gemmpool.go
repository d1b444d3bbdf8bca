package tensor

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// The GEMM worker pool: long-lived goroutines, started on first need and
// never more than GOMAXPROCS−1 of them (the calling goroutine is always one
// of the workers), each with its own packing buffer. A call hands its job
// to as many of them as it has use for, works on the job itself, and waits.
// Jobs and buffers are recycled, so a steady-state call allocates nothing.
var gemmPool struct {
	mu      sync.Mutex
	started int
	jobs    chan *gemmJob // work hand-off to the pool goroutines
	free    chan *gemmJob // recycled jobs
}

func init() {
	gemmPool.jobs = make(chan *gemmJob, 256)
	gemmPool.free = make(chan *gemmJob, 64)
}

// gemmJob is one call's shared state. Workers claim task numbers from next
// until they run out.
type gemmJob struct {
	g       gemmArgs
	pl      gemmPlan
	acc     bool
	batch   int  // > 0: task t is the whole product for batch item t
	vec     bool // the one-row streaming path (gemmvec.go)
	mv      int  // > 0: a bfloat16 matrix–vector product, mv rows per task (matvec.go)
	ntask   int
	next    atomic.Int64
	pending atomic.Int64 // helpers still working
	wg      sync.WaitGroup
	caller  []float32 // the calling goroutine's packing buffer
}

// gemm runs one product, on the pool if parallel and the work is large.
func gemm(g gemmArgs, parallel bool) {
	run, acc := g.prologue()
	if !run {
		return
	}
	w := 1
	if parallel {
		w = g.workers(runtime.GOMAXPROCS(0))
	}
	j := getJob()
	j.g, j.pl, j.acc, j.batch, j.mv = g, plan(&g, w), acc, 0, 0
	j.ntask, j.vec = j.pl.tasks(), g.vec(&j.pl.kern)
	if j.vec {
		j.ntask = ceilDiv(g.n, gemmVecCols)
	}
	j.run(min(w, j.ntask))
	putJob(j)
}

// batchedGemm runs nb products laid out back to back in g's slices. Items
// that are small run whole, one per task; big ones run one after another,
// each across all workers.
func batchedGemm(nb int, g gemmArgs) {
	if nb == 0 || g.m == 0 || g.n == 0 {
		return
	}
	procs := runtime.GOMAXPROCS(0)
	if nb == 1 || g.workers(procs) >= procs {
		sa, sb, sc := g.m*g.k, g.k*g.n, g.m*g.n
		for i := range nb {
			gi := g
			gi.a, gi.b, gi.c = g.a[i*sa:(i+1)*sa], g.b[i*sb:(i+1)*sb], g.c[i*sc:(i+1)*sc]
			gemm(gi, true)
		}
		return
	}
	j := getJob()
	j.g, j.pl, j.batch, j.ntask, j.vec, j.mv = g, plan(&g, 1), nb, nb, false, 0
	w := max(1, min(procs, nb, nb*g.m*g.n*g.k/gemmMinWork))
	j.run(w)
	putJob(j)
}

// run does the job's ntask tasks on w workers, the caller being one of them.
func (j *gemmJob) run(w int) {
	j.next.Store(0)
	helpers := w - 1
	if helpers > 0 {
		startWorkers(helpers)
		j.wg.Add(helpers)
		j.pending.Store(int64(helpers))
		for range helpers {
			gemmPool.jobs <- j
		}
	}
	if j.caller == nil {
		j.caller = make([]float32, gemmBuf)
	}
	j.work(j.caller)
	// The helpers usually finish within microseconds of the caller;
	// polling for that long is cheaper than parking and being woken.
	for t0 := time.Now(); j.pending.Load() > 0 && time.Since(t0) < gemmSpin; {
	}
	j.wg.Wait()
}

// work claims and runs tasks until none are left.
func (j *gemmJob) work(buf []float32) {
	for {
		t := int(j.next.Add(1)) - 1
		if t >= j.ntask {
			return
		}
		if j.vec {
			j.g.vecTask(&j.pl.kern, t, j.acc)
			continue
		}
		if j.mv > 0 {
			j.g.matVecTask(t, j.mv)
			continue
		}
		if j.batch == 0 {
			j.g.task(&j.pl, t, j.acc, buf)
			continue
		}
		g := j.g
		sa, sb, sc := g.m*g.k, g.k*g.n, g.m*g.n
		g.a, g.b, g.c = g.a[t*sa:(t+1)*sa], g.b[t*sb:(t+1)*sb], g.c[t*sc:(t+1)*sc]
		if run, acc := g.prologue(); run {
			g.task(&j.pl, 0, acc, buf)
		}
	}
}

// startWorkers makes sure at least n pool goroutines exist.
func startWorkers(n int) {
	gemmPool.mu.Lock()
	for ; gemmPool.started < n; gemmPool.started++ {
		go gemmWorker()
	}
	gemmPool.mu.Unlock()
}

func gemmWorker() {
	buf := make([]float32, gemmBuf)
	for {
		j := nextJob()
		j.work(buf)
		j.pending.Add(-1)
		j.wg.Done()
	}
}

// gemmSpin is how long a worker polls for the next job before it parks,
// and a caller for its helpers before it waits. Products come in bursts (a
// layer, then the next); waking a parked thread costs tens of
// microseconds on a VM, as much as a whole 256³ product's share.
const gemmSpin = 50 * time.Microsecond

// nextJob returns the next job handed to the pool, polling briefly before
// it blocks.
func nextJob() *gemmJob {
	for t0 := time.Now(); time.Since(t0) < gemmSpin; {
		select {
		case j := <-gemmPool.jobs:
			return j
		default:
		}
	}
	return <-gemmPool.jobs
}

func getJob() *gemmJob {
	select {
	case j := <-gemmPool.free:
		return j
	default:
		return new(gemmJob)
	}
}

func putJob(j *gemmJob) {
	j.g = gemmArgs{} // drop references to the caller's data
	select {
	case gemmPool.free <- j:
	default:
	}
}

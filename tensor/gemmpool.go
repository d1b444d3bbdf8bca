package tensor

import (
	"runtime"

	"github.com/posttrain/posttrain/internal/parallel"
)

// Products run on posttrain's one worker pool (internal/parallel): the
// calling goroutine and up to GOMAXPROCS−1 long-lived workers, each with
// its own packing buffer kept as the worker's scratch. A call hands its
// tasks to as many of them as it has use for and works on them itself.
// Jobs and buffers are recycled, so a steady-state call allocates nothing.

var gemmBufKey = parallel.NewKey[[]float32]()

// gemmJobs recycles jobs.
var gemmJobs = make(chan *gemmJob, 64)

// gemmJob is one call's shared state; task t is one chunk of the loop.
type gemmJob struct {
	g     gemmArgs
	pl    gemmPlan
	acc   bool
	batch int       // > 0: task t is the whole product for batch item t
	vec   bool      // the one-row streaming path (gemmvec.go)
	mv    int       // > 0: a bfloat16 matrix–vector product, mv rows per task (gemmbf16.go)
	split []float32 // MatVecBF16's input, split for simd.K.DotsBF16; kept for the next call
	ntask int
}

// gemm runs one product, on the pool if par and the work is large.
func gemm(g gemmArgs, par bool) {
	run, acc := g.prologue()
	if !run {
		return
	}
	w := 1
	if par {
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

// run does the job's ntask tasks on up to w goroutines, the caller being
// one of them.
func (j *gemmJob) run(w int) { parallel.Run(j.ntask, w, j) }

// Chunk runs task t with w's packing buffer.
func (j *gemmJob) Chunk(t int, w *parallel.Worker) {
	if j.vec {
		j.g.vecTask(&j.pl.kern, t, j.acc)
		return
	}
	if j.mv > 0 {
		j.g.matVecTask(t, j.mv)
		return
	}
	bp := parallel.Scratch(w, gemmBufKey)
	if len(*bp) < gemmBuf {
		*bp = make([]float32, gemmBuf)
	}
	buf := *bp
	if j.batch == 0 {
		j.g.task(&j.pl, t, j.acc, buf)
		return
	}
	g := j.g
	sa, sb, sc := g.m*g.k, g.k*g.n, g.m*g.n
	g.a, g.b, g.c = g.a[t*sa:(t+1)*sa], g.b[t*sb:(t+1)*sb], g.c[t*sc:(t+1)*sc]
	if run, acc := g.prologue(); run {
		g.task(&j.pl, 0, acc, buf)
	}
}

func getJob() *gemmJob {
	select {
	case j := <-gemmJobs:
		return j
	default:
		return new(gemmJob)
	}
}

func putJob(j *gemmJob) {
	j.g = gemmArgs{} // drop references to the caller's data
	select {
	case gemmJobs <- j:
	default:
	}
}

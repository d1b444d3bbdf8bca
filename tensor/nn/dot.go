package nn

import (
	"runtime"

	"github.com/posttrain/posttrain/internal/parallel"
	"github.com/posttrain/posttrain/tensor"
	"github.com/posttrain/posttrain/tensor/internal/simd"
)

// Decoding a few rows at a time is a matrix–vector product per row: each
// weight is used once per row, so the time goes to reading the weights.
// dots streams every weight row once for all rows of the batch, with
// simd's multi-row kernel (a block of four weight rows against four input
// rows in registers), and splits the weight rows over the shared worker
// pool. The kernel computes each output from its two rows alone, in one
// fixed order, so a sequence's logits do not depend on the other
// sequences decoded with it, nor on the split.

// task is a share of work the pool runs.
type task interface{ run() }

// taskList runs a decoder's shares as one loop of posttrain's worker pool
// (internal/parallel); the Decoder keeps one, so a step allocates nothing.
type taskList struct{ ts []task }

// Chunk runs share c.
func (l *taskList) Chunk(c int, _ *parallel.Worker) { l.ts[c].run() }

// workers returns the number of shares work is split into.
func workers() int { return runtime.GOMAXPROCS(0) }

// fanout runs the tasks, one of them on the calling goroutine, and waits.
func (d *Decoder) fanout(ts []task) {
	if len(ts) == 0 {
		return
	}
	d.body.ts = ts
	parallel.Run(len(ts), len(ts), &d.body)
	d.body.ts = nil
}

// dotJob is one worker's share: outputs [o0, o1) of every row.
type dotJob struct {
	y, x, w, b    []float32
	rows, in, out int
	o0, o1        int
}

func (j *dotJob) run() {
	simd.K.Dots(j.y[j.o0:], j.out, j.w[j.o0*j.in:], j.in, j.x, j.in, j.rows, j.o1-j.o0, j.in)
	j.addBias()
}

// addBias adds b[o0:o1] to the share's outputs of every row.
func (j *dotJob) addBias() {
	if j.b == nil {
		return
	}
	for r := range j.rows {
		yr := j.y[r*j.out+j.o0 : r*j.out+j.o1]
		tensor.Add(yr, yr, j.b[j.o0:j.o1])
	}
}

// share returns how many of out outputs each worker takes, a multiple of
// align: all of them when the work (multiply-adds) is too small to split.
func (d *Decoder) share(out, work, align int) int {
	shares := len(d.jobs)
	if work < 1<<15 {
		shares = 1
	}
	per := (out + shares - 1) / shares
	return (per + align - 1) / align * align
}

// dots computes y[r, o] = W[o]·x[r] + b[o] for rows inputs x [rows, in]
// and W [out, in]; b may be nil.
func (d *Decoder) dots(y, x, w, b []float32, rows, in, out int) {
	per := d.share(out, out*in*rows, 16)
	n := 0
	for o0 := 0; o0 < out; o0 += per {
		d.jobs[n] = dotJob{y: y, x: x, w: w, b: b, rows: rows, in: in, out: out, o0: o0, o1: min(out, o0+per)}
		d.tasks[n] = &d.jobs[n]
		n++
	}
	d.fanout(d.tasks[:n])
}

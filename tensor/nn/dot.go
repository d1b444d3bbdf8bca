package nn

import (
	"runtime"
	"sync"

	"github.com/posttrain/posttrain/tensor"
)

// Decoding a few rows at a time is a matrix–vector product per row: each
// weight is used once per row, so the time goes to reading the weights.
// dots streams every weight row once for all rows of the batch (the row
// stays in L1 while each input row meets it) and splits the weight rows
// over a fixed pool of workers. Each output is one tensor.Dot whatever
// the split or the batch, so a sequence's logits do not depend on the
// other sequences decoded with it.

// dotJob is one worker's share: outputs [o0, o1) of every row.
type dotJob struct {
	y, x, w, b    []float32
	rows, in, out int
	o0, o1        int
	wg            *sync.WaitGroup
}

func (j *dotJob) run() {
	for o := j.o0; o < j.o1; o++ {
		wr := j.w[o*j.in : (o+1)*j.in]
		var bias float32
		if j.b != nil {
			bias = j.b[o]
		}
		for r := range j.rows {
			j.y[r*j.out+o] = tensor.Dot(wr, j.x[r*j.in:(r+1)*j.in]) + bias
		}
	}
}

var dotPool struct {
	once sync.Once
	n    int
	ch   chan *dotJob
}

// dotWorkers returns the number of shares a product is split into,
// starting the pool on first use.
func dotWorkers() int {
	dotPool.once.Do(func() {
		dotPool.n = runtime.GOMAXPROCS(0)
		dotPool.ch = make(chan *dotJob)
		for range dotPool.n - 1 {
			go func() {
				for j := range dotPool.ch {
					j.run()
					j.wg.Done()
				}
			}()
		}
	})
	return dotPool.n
}

// dots computes y[r, o] = W[o]·x[r] + b[o] for rows inputs x [rows, in]
// and W [out, in]; b may be nil.
func (d *Decoder) dots(y, x, w, b []float32, rows, in, out int) {
	const align = 16
	shares := len(d.jobs)
	if out*in*rows < 1<<15 {
		shares = 1
	}
	per := (out + shares - 1) / shares
	per = (per + align - 1) / align * align
	n := 0
	for o0 := 0; o0 < out; o0 += per {
		d.jobs[n] = dotJob{y: y, x: x, w: w, b: b, rows: rows, in: in, out: out, o0: o0, o1: min(out, o0+per), wg: &d.wg}
		n++
	}
	if n == 0 {
		return
	}
	d.wg.Add(n - 1)
	for i := 1; i < n; i++ {
		dotPool.ch <- &d.jobs[i]
	}
	d.jobs[0].run()
	d.wg.Wait()
}

package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/posttrain/posttrain/internal/parallel"
	"github.com/posttrain/posttrain/tensor"
)

// Teacher maps a batch of tokens to the teacher's next-token logits for
// each position, a [len(tokens), Vocab] tensor. It owns how context is
// carried across batches (a stateful model, or batches that are whole
// sequences).
type Teacher func(tokens []int32) (*tensor.Dense, error)

// Sink receives teacher predictions; *Writer and *ShardWriter are sinks.
type Sink interface {
	Format() Format
	Write(ids []int32, logProbs []float32) error
}

// TokenSource yields a token stream. ReadTokens fills buf with up to
// len(buf) tokens and returns how many, and io.EOF once the stream ends
// (with or after the last tokens), as io.Reader does.
type TokenSource interface {
	ReadTokens(buf []int32) (int, error)
}

// SliceTokens is a TokenSource over a slice.
func SliceTokens(tokens []int32) TokenSource { return &sliceSource{tokens} }

type sliceSource struct{ s []int32 }

func (s *sliceSource) ReadTokens(buf []int32) (int, error) {
	if len(s.s) == 0 {
		return 0, io.EOF
	}
	n := copy(buf, s.s)
	s.s = s.s[n:]
	return n, nil
}

// Precompute runs teacher over src in batches of batch tokens and writes
// its top-K predictions (and log-probs, if dst's format stores them) to
// dst, calling progress, if not nil, with the running token count after
// each batch. It stops at the first error — from the source, the teacher,
// the sink, or ctx — and returns the tokens written so far; batch must be
// in [1, 2²⁶/K] (its buffers hold batch·K entries); teacher
// logits of the wrong shape or holding NaN or ±Inf are errors naming the
// token. The caller closes (or aborts) dst.
//
// With the Distribute option, batches become tasks of an Executor (a
// fleet of workers, say) with several in flight, and teacher may be nil;
// they are written in order, so dst's bytes are the same either way. Of
// batches that fail at once, the error of the earliest is returned, not
// the cancellations its failure causes in the others. dst.Write and
// progress are called one at a time, batch after batch, though not
// necessarily on the calling goroutine.
func Precompute(ctx context.Context, dst Sink, teacher Teacher, src TokenSource, batch int, progress func(tokens int64), opts ...Option) (int64, error) {
	f := dst.Format()
	if err := f.withDefaults().validate(); err != nil {
		return 0, fmt.Errorf("cache: Precompute: sink format: %v", err)
	}
	if batch < 1 || batch > maxBlockEntries/f.K {
		return 0, fmt.Errorf("cache: Precompute: batch %d outside [1, %d] (%d entries of k = %d at most)", batch, maxBlockEntries/f.K, maxBlockEntries, f.K)
	}
	o := options{ex: local{teacher}, window: 1}
	for _, opt := range opts {
		opt(&o)
	}
	p := &pipeline{f: f, dst: dst, src: src, batch: batch, progress: progress, o: o}
	p.turn = sync.NewCond(&p.mu)
	// window workers, each carrying one batch at a time from the source
	// through the executor to dst: a sliding window of batches in flight,
	// on internal/parallel's bounded, cancellable loop. A failing worker
	// cancels the context the others' Predict calls see.
	err := parallel.Each(ctx, o.window, o.window, p.work)
	if p.err != nil {
		err = p.err
	}
	return p.done, err
}

// pipeline is one Precompute call's shared state.
type pipeline struct {
	f        Format
	dst      Sink
	src      TokenSource
	batch    int
	progress func(int64)
	o        options

	readMu sync.Mutex // guards src and the three below
	eof    bool
	read   int64 // tokens read
	index  int64 // batches read

	mu     sync.Mutex // guards the rest
	turn   *sync.Cond // signalled when next or stop changes
	next   int64      // the batch dst gets next
	done   int64      // tokens written
	stop   bool       // a batch failed: take no more, write no more
	failed int64      // the earliest failed batch, if stop
	err    error      // its error
}

// work is one worker: it takes batches until the source ends or a batch
// fails, and returns an error only to have the other workers cancelled.
func (p *pipeline) work(ctx context.Context, _ int) error {
	for {
		t, ok, err := p.take(ctx)
		if err != nil || !ok {
			return err
		}
		pred, err := p.o.ex.Predict(ctx, t)
		if err == nil && (len(pred.IDs) != len(t.Tokens)*p.f.K || (p.f.LogProbs != None) != (pred.LogProbs != nil)) {
			err = fmt.Errorf("cache: Precompute: executor returned %d ids for %d tokens of K = %d", len(pred.IDs), len(t.Tokens), p.f.K)
		}
		if err != nil {
			return p.fail(t.Batch, err)
		}
		if err := p.write(t, pred); err != nil {
			return err
		}
	}
}

// take reads the next batch; ok is false once the source is exhausted or
// the run has stopped.
func (p *pipeline) take(ctx context.Context) (t Task, ok bool, err error) {
	p.readMu.Lock()
	defer p.readMu.Unlock()
	for !p.eof {
		p.mu.Lock()
		stop := p.stop
		p.mu.Unlock()
		if stop {
			return Task{}, false, nil
		}
		if err := ctx.Err(); err != nil {
			return Task{}, false, p.fail(p.index, err)
		}
		buf := make([]int32, p.batch) // the executor may keep it until Predict returns
		n, rerr := p.src.ReadTokens(buf)
		if rerr != nil && !errors.Is(rerr, io.EOF) {
			return Task{}, false, p.fail(p.index, fmt.Errorf("cache: Precompute: token source after %d tokens: %w", p.read, rerr))
		}
		p.eof = rerr != nil
		if n == 0 {
			continue
		}
		t = Task{ID: fmt.Sprintf("%s/b%d", p.o.corpus, p.index), Corpus: p.o.corpus, Batch: p.index, First: p.read, Tokens: buf[:n], Format: p.f}
		p.read += int64(n)
		p.index++
		return t, true, nil
	}
	return Task{}, false, nil
}

// write waits for batch t's turn and hands its predictions to dst.
func (p *pipeline) write(t Task, pred Prediction) error {
	p.mu.Lock()
	for p.next != t.Batch && !p.stop {
		p.turn.Wait()
	}
	if p.stop {
		p.mu.Unlock()
		return nil
	}
	if err := p.dst.Write(pred.IDs, pred.LogProbs); err != nil {
		p.mu.Unlock()
		return p.fail(t.Batch, err)
	}
	p.done += int64(len(t.Tokens))
	if p.progress != nil {
		p.progress(p.done)
	}
	p.next++
	p.turn.Broadcast()
	p.mu.Unlock()
	return nil
}

// fail records batch b's error and stops the run; it returns err for the
// worker to return. A cancellation after the run has stopped is the
// consequence of another failure, not one of its own.
func (p *pipeline) fail(b int64, err error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stop && errors.Is(err, context.Canceled) {
		return err
	}
	if !p.stop || b < p.failed {
		p.failed, p.err = b, err
	}
	p.stop = true
	p.turn.Broadcast()
	return err
}

// An Executor computes the teacher's predictions for batches of a corpus.
// Predict may be called for several batches at once.
type Executor interface {
	Predict(ctx context.Context, t Task) (Prediction, error)
}

// Task is one batch of a corpus: its ID, "<corpus>/b<batch>", is stable
// across runs, so an executor that keeps results by ID never computes a
// batch twice.
type Task struct {
	ID     string
	Corpus string
	Batch  int64 // the batch's index
	First  int64 // the batch's first token in the corpus
	Tokens []int32
	Format Format
}

// Prediction is a batch's top-K ids and, if the format stores them, their
// log-probabilities, token by token.
type Prediction struct {
	IDs      []int32   `json:"ids"`
	LogProbs []float32 `json:"log_probs,omitempty"`
}

// Option configures Precompute.
type Option func(*options)

type options struct {
	ex     Executor
	corpus string
	window int
}

// Distribute makes Precompute hand batches to ex, up to window (at least
// 1) at once; corpus names the corpus in task IDs.
func Distribute(ex Executor, corpus string, window int) Option {
	return func(o *options) { o.ex, o.corpus, o.window = ex, corpus, max(window, 1) }
}

// local is the in-process Executor: the teacher, called here.
type local struct{ teacher Teacher }

func (l local) Predict(ctx context.Context, t Task) (Prediction, error) {
	if l.teacher == nil {
		return Prediction{}, errors.New("cache: Precompute: nil teacher and no executor")
	}
	return Predict(t.Format, l.teacher, t.Tokens, t.First)
}

// Predict runs teacher on one batch of tokens, the first of which is token
// number first of the corpus (for error messages), and returns the top K
// of each row's log-softmax in f's layout: what Precompute writes, and
// what a remote Executor's workers compute.
func Predict(f Format, teacher Teacher, tokens []int32, first int64) (Prediction, error) {
	n := len(tokens)
	logits, err := teacher(tokens)
	if err != nil {
		return Prediction{}, fmt.Errorf("cache: Precompute: teacher at token %d: %w", first, err)
	}
	if logits == nil || logits.Dims() != 2 || logits.Dim(0) != n || logits.Dim(1) != f.Vocab {
		var shape []int
		if logits != nil {
			shape = logits.Shape()
		}
		return Prediction{}, fmt.Errorf("cache: Precompute: teacher returned logits of shape %v for %d tokens, want [%d %d]", shape, n, n, f.Vocab)
	}
	p := Prediction{IDs: make([]int32, n*f.K)}
	if f.LogProbs != None {
		p.LogProbs = make([]float32, n*f.K)
	}
	row := make([]float32, f.Vocab)
	idx, val := make([]int, f.K), make([]float32, f.K)
	for i := range n {
		z := logits.Row(i)
		if s := tensor.Sum(z); s != s || s > 3.4e38 || s < -3.4e38 {
			for j, x := range z {
				if x != x || x > 3.4e38 || x < -3.4e38 {
					return Prediction{}, fmt.Errorf("cache: Precompute: teacher logit for token %d, id %d is %v", first+int64(i), j, x)
				}
			}
		}
		if f.K == 1 && p.LogProbs == nil {
			p.IDs[i] = int32(tensor.ArgMax(z))
			continue
		}
		tensor.LogSoftmax(row, z)
		tensor.TopKTo(idx, val, row)
		for a := range f.K {
			p.IDs[i*f.K+a] = int32(idx[a])
			if p.LogProbs != nil {
				p.LogProbs[i*f.K+a] = min(val[a], 0) // log-softmax may round a hair above 0
			}
		}
	}
	return p, nil
}

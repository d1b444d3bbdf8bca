package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

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
// they are written in order, so dst's bytes are the same either way.
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
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type inflight struct {
		n    int
		done chan Prediction
		err  chan error
	}
	var (
		queue []*inflight
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error // the first executor error, not the cancellations it causes
		done  int64 // tokens written
		read  int64 // tokens read
		index int64 // batches read
	)
	defer wg.Wait()
	// flush writes the oldest batch in flight once it is back.
	flush := func() error {
		b := queue[0]
		queue = queue[1:]
		var p Prediction
		select {
		case p = <-b.done:
		case <-b.err:
			mu.Lock()
			defer mu.Unlock()
			return first
		}
		if len(p.IDs) != b.n*f.K || (f.LogProbs != None) != (p.LogProbs != nil) {
			return fmt.Errorf("cache: Precompute: executor returned %d ids for %d tokens of K = %d", len(p.IDs), b.n, f.K)
		}
		if err := dst.Write(p.IDs, p.LogProbs); err != nil {
			return err
		}
		done += int64(b.n)
		if progress != nil {
			progress(done)
		}
		return nil
	}
	for eof := false; !eof || len(queue) > 0; {
		if eof || len(queue) >= o.window {
			if err := flush(); err != nil {
				return done, err
			}
			continue
		}
		if err := ctx.Err(); err != nil {
			// A failed batch cancels ctx: report its error, not the
			// cancellation.
			mu.Lock()
			if first != nil {
				err = first
			}
			mu.Unlock()
			return done, err
		}
		buf := make([]int32, batch)
		n, rerr := src.ReadTokens(buf)
		if rerr != nil && !errors.Is(rerr, io.EOF) {
			return done, fmt.Errorf("cache: Precompute: token source after %d tokens: %w", read, rerr)
		}
		eof = rerr != nil
		if n == 0 {
			continue
		}
		b := &inflight{n: n, done: make(chan Prediction, 1), err: make(chan error, 1)}
		queue = append(queue, b)
		t := Task{ID: fmt.Sprintf("%s/b%d", o.corpus, index), Corpus: o.corpus, Batch: index, First: read, Tokens: buf[:n], Format: f}
		read += int64(n)
		index++
		wg.Go(func() {
			p, err := o.ex.Predict(ctx, t)
			if err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
				cancel() // stop the other batches
				b.err <- err
				return
			}
			b.done <- p
		})
	}
	return done, nil
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

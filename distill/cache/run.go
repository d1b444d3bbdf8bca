package cache

import (
	"context"
	"errors"
	"fmt"
	"io"

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
func Precompute(ctx context.Context, dst Sink, teacher Teacher, src TokenSource, batch int, progress func(tokens int64)) (int64, error) {
	f := dst.Format()
	if err := f.withDefaults().validate(); err != nil {
		return 0, fmt.Errorf("cache: Precompute: sink format: %v", err)
	}
	if batch < 1 || batch > maxBlockEntries/f.K {
		return 0, fmt.Errorf("cache: Precompute: batch %d outside [1, %d] (%d entries of k = %d at most)", batch, maxBlockEntries/f.K, maxBlockEntries, f.K)
	}
	buf := make([]int32, batch)
	ids := make([]int32, batch*f.K)
	var lps []float32
	if f.LogProbs != None {
		lps = make([]float32, batch*f.K)
	}
	row := make([]float32, f.Vocab)
	idx, val := make([]int, f.K), make([]float32, f.K)
	var done int64
	for {
		if err := ctx.Err(); err != nil {
			return done, err
		}
		n, rerr := src.ReadTokens(buf)
		if rerr != nil && !errors.Is(rerr, io.EOF) {
			return done, fmt.Errorf("cache: Precompute: token source after %d tokens: %w", done, rerr)
		}
		if n > 0 {
			logits, err := teacher(buf[:n])
			if err != nil {
				return done, fmt.Errorf("cache: Precompute: teacher at token %d: %w", done, err)
			}
			if logits == nil || logits.Dims() != 2 || logits.Dim(0) != n || logits.Dim(1) != f.Vocab {
				var shape []int
				if logits != nil {
					shape = logits.Shape()
				}
				return done, fmt.Errorf("cache: Precompute: teacher returned logits of shape %v for %d tokens, want [%d %d]", shape, n, n, f.Vocab)
			}
			for i := range n {
				z := logits.Row(i)
				if s := tensor.Sum(z); s != s || s > 3.4e38 || s < -3.4e38 {
					for j, x := range z {
						if x != x || x > 3.4e38 || x < -3.4e38 {
							return done, fmt.Errorf("cache: Precompute: teacher logit for token %d, id %d is %v", done+int64(i), j, x)
						}
					}
				}
				if f.K == 1 && lps == nil {
					ids[i] = int32(tensor.ArgMax(z))
					continue
				}
				tensor.LogSoftmax(row, z)
				tensor.TopKTo(idx, val, row)
				for a := range f.K {
					ids[i*f.K+a] = int32(idx[a])
					if lps != nil {
						lps[i*f.K+a] = min(val[a], 0) // log-softmax may round a hair above 0
					}
				}
			}
			var lp []float32
			if lps != nil {
				lp = lps[:n*f.K]
			}
			if err := dst.Write(ids[:n*f.K], lp); err != nil {
				return done, err
			}
			done += int64(n)
			if progress != nil {
				progress(done)
			}
		}
		if rerr != nil {
			return done, nil
		}
	}
}

package lab

import (
	"context"
	"errors"
	"math"
	"runtime"
	"sync"

	"github.com/posttrain/posttrain/tensor/nn"
)

// Policy samples continuations from a TinyLM: Len bytes at Temperature
// with top-K, restricted to printable ASCII and newline, so responses stay
// valid UTF-8 text (JSONL round-trips them exactly). It implements
// itec.Generator: a response is a pure function of (prompt, seed).
type Policy struct {
	M           *nn.TinyLM
	Len         int
	Temperature float64
	TopK        int
}

// Generate implements itec.Generator.
func (p Policy) Generate(ctx context.Context, prompt string, seeds []uint64) ([]string, error) {
	var tok nn.ByteTokenizer
	in := tok.Encode(prompt)
	if len(in) == 0 {
		return nil, errors.New("lab: empty prompt")
	}
	d := p.M.NewDecoder()
	out := make([]string, len(seeds))
	buf := make([]byte, 0, p.Len)
	for i, seed := range seeds {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		d.Reset()
		s := nn.NewSampler(seed, p.Temperature, p.TopK, 0)
		var logits []float32
		var err error
		for _, t := range in {
			if logits, err = d.Step(t); err != nil {
				return nil, err
			}
		}
		buf = buf[:0]
		for range p.Len {
			mask(logits)
			t, err := s.Sample(logits)
			if err != nil {
				return nil, err
			}
			buf = append(buf, byte(t))
			if len(buf) == p.Len {
				break
			}
			if logits, err = d.Step(t); err != nil {
				return nil, err
			}
		}
		out[i] = string(buf)
	}
	return out, nil
}

var negInf = float32(math.Inf(-1))

// mask rules out every byte but printable ASCII and newline.
func mask(logits []float32) {
	for i := range logits {
		if (i < ' ' && i != '\n') || i > '~' {
			logits[i] = negInf
		}
	}
}

// Each runs f(i) for i in [0, n) on GOMAXPROCS workers and returns the
// first error.
func Each(ctx context.Context, n int, f func(i int) error) error {
	workers := min(runtime.GOMAXPROCS(0), n)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu    sync.Mutex
		first error
		next  int
		wg    sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for {
				mu.Lock()
				i := next
				next++
				stop := first != nil || ctx.Err() != nil
				mu.Unlock()
				if i >= n || stop {
					return
				}
				if err := f(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
						cancel()
					}
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

package hf

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
)

// EncodeBatch encodes texts on up to workers goroutines (GOMAXPROCS when
// workers ≤ 0), as Encode does each one; ids[i] belongs to texts[i] and
// the result does not depend on workers. It returns the error of the
// lowest-numbered text that fails, naming it, or ctx's error once ctx is
// done, and then no ids.
func (t *Tokenizer) EncodeBatch(ctx context.Context, texts []string, workers int) ([][]int32, error) {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = min(workers, len(texts))
	ids := make([][]int32, len(texts))
	errs := make([]error, len(texts))
	var next atomic.Int64
	var failed atomic.Bool
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(texts) || failed.Load() || ctx.Err() != nil {
					return
				}
				ids[i], errs[i] = t.Encode(texts[i])
				if errs[i] != nil {
					failed.Store(true)
				}
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("hf: EncodeBatch: %w", err)
	}
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("hf: EncodeBatch: text %d: %w", i, err)
		}
	}
	return ids, nil
}

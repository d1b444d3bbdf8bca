package hf

import (
	"context"
	"fmt"

	"github.com/posttrain/posttrain/internal/parallel"
)

// EncodeBatch encodes texts on up to workers goroutines (GOMAXPROCS when
// workers ≤ 0), as Encode does each one; ids[i] belongs to texts[i] and
// the result does not depend on workers. It returns the error of the
// lowest-numbered text that fails, naming it, or ctx's error once ctx is
// done, and then no ids.
func (t *Tokenizer) EncodeBatch(ctx context.Context, texts []string, workers int) ([][]int32, error) {
	ids := make([][]int32, len(texts))
	err := parallel.Each(ctx, len(texts), workers, func(_ context.Context, i int) error {
		var err error
		if ids[i], err = t.Encode(texts[i]); err != nil {
			return fmt.Errorf("text %d: %w", i, err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("hf: EncodeBatch: %w", err)
	}
	return ids, nil
}

package cache_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/posttrain/posttrain/distill"
	"github.com/posttrain/posttrain/distill/cache"
	"github.com/posttrain/posttrain/tensor"
)

// Precompute a teacher's top-1 predictions once, then train against them
// with AFM's convex combination, teacher-free.
func Example() {
	dir, err := os.MkdirTemp("", "cache-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	const vocab = 8

	// A stand-in teacher: after token x it predicts x+1 (mod V).
	teacher := func(tokens []int32) (*tensor.Dense, error) {
		logits := tensor.New(len(tokens), vocab)
		for i, x := range tokens {
			logits.Row(i)[(x+1)%vocab] = 5
		}
		return logits, nil
	}
	stream := []int32{0, 1, 2, 3, 5, 7, 1, 4}

	path := filepath.Join(dir, "top1.ptc")
	w, err := cache.Create(path, cache.Format{Vocab: vocab, K: 1})
	if err != nil {
		panic(err)
	}
	n, err := cache.Precompute(context.Background(), w, teacher, cache.SliceTokens(stream), 4,
		func(done int64) { fmt.Println("teacher ran on", done, "tokens") })
	if err != nil {
		panic(err)
	}
	if err := w.Close(); err != nil {
		panic(err)
	}
	fmt.Printf("%d tokens, %v bytes a token\n", n, w.Format().BytesPerToken())

	r, err := cache.Open(path)
	if err != nil {
		panic(err)
	}
	defer r.Close()
	blk, err := r.Next()
	if err != nil {
		panic(err)
	}
	fmt.Println("teacher top-1:", blk.IDs)

	// The student's logits for the stream (uniform here), the true next
	// tokens, and the cached teacher predictions give the AFM loss.
	student := tensor.New(len(stream)-1, vocab)
	loss, err := distill.ConvexCombination(nil, student, stream[1:], blk.IDs[:len(stream)-1], distill.DefaultTeacherWeight)
	if err != nil {
		panic(err)
	}
	fmt.Printf("loss %.4f (log 8 = 2.0794)\n", loss)
	// Output:
	// teacher ran on 4 tokens
	// teacher ran on 8 tokens
	// 8 tokens, 4 bytes a token
	// teacher top-1: [1 2 3 4 6 0 2 5]
	// loss 2.0794 (log 8 = 2.0794)
}

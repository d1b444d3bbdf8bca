package cache

import (
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"testing"
)

// Cache throughput in tokens: bytes/s counts the stored bytes. Read/ is
// Reader.Next, which also hashes the blocks for the content digest;
// ReadBlock/ reads the same blocks without.
//
//	go test -run '^$' -bench . ./distill/cache/
func BenchmarkCache(b *testing.B) {
	const n = 1 << 18
	for _, f := range []Format{
		{Vocab: 49152, K: 1},
		{Vocab: 49152, K: 1, PackIDs: true},
		{Vocab: 49152, K: 8, LogProbs: BF16, PackIDs: true},
	} {
		ids, lps := predictions(rand.New(rand.NewPCG(1, 2)), f, n)
		name := fmt.Sprintf("k=%d/pack=%v/%v", f.K, f.PackIDs, f.LogProbs)
		path := filepath.Join(b.TempDir(), "b.ptc")
		write := func(b *testing.B) {
			w, err := Create(path, f)
			if err != nil {
				b.Fatal(err)
			}
			if err := w.Write(ids, lps); err != nil {
				b.Fatal(err)
			}
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
		}
		write(b) // for the readers, when -bench skips Write
		b.Run("Write/"+name, func(b *testing.B) {
			b.SetBytes(int64(f.BytesPerToken() * n))
			for b.Loop() {
				write(b)
			}
		})
		b.Run("Read/"+name, func(b *testing.B) {
			b.SetBytes(int64(f.BytesPerToken() * n))
			for b.Loop() {
				r, err := Open(path)
				if err != nil {
					b.Fatal(err)
				}
				for {
					if _, err := r.Next(); err == io.EOF {
						break
					} else if err != nil {
						b.Fatal(err)
					}
				}
				r.Close()
			}
		})
		// ReadBlock in order: Next without its content-digest hashing, so
		// Read/ against ReadBlock/ in one run is the hashing's cost.
		b.Run("ReadBlock/"+name, func(b *testing.B) {
			b.SetBytes(int64(f.BytesPerToken() * n))
			for b.Loop() {
				r, err := Open(path)
				if err != nil {
					b.Fatal(err)
				}
				for i := range r.Blocks() {
					if _, err := r.ReadBlock(i); err != nil {
						b.Fatal(err)
					}
				}
				r.Close()
			}
		})
	}
}

package jetstream

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/posttrain/posttrain/distill/cache"
	"github.com/posttrain/posttrain/tensor/nn"
)

// tinyModel saves a small random TinyLM of width d and returns it with
// its path.
func tinyModel(t testing.TB, seed uint64, d int) (*nn.TinyLM, string) {
	t.Helper()
	m, err := nn.NewTinyLM(nn.Config{Vocab: 256, DModel: d, Layers: 2, Heads: 2, Context: 128, Hidden: 2 * d}, seed)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "teacher.safetensors")
	if err := m.Save(path); err != nil {
		t.Fatal(err)
	}
	return m, path
}

// A corpus's teacher predictions computed by two workers from the stored
// checkpoint are the bytes the in-process Precompute writes; run again over
// the kept results, no batch is recomputed.
func TestDistributedPrecompute(t *testing.T) {
	lm, path := tinyModel(t, 3, 32)
	r := rand.New(rand.NewPCG(4, 4))
	tokens := make([]int32, 700)
	for i := range tokens {
		tokens[i] = int32('a' + r.IntN(26))
	}
	f := cache.Format{Vocab: 256, K: 4, LogProbs: cache.BF16, BlockTokens: 128}
	dir := t.TempDir()
	write := func(name string, teacher cache.Teacher, opts ...cache.Option) []byte {
		t.Helper()
		p := filepath.Join(dir, name)
		w, err := cache.Create(p, f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cache.Precompute(context.Background(), w, teacher, cache.SliceTokens(tokens), 64, nil, opts...); err != nil {
			w.Abort()
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	want := write("local.ptc", ModelTeacher(lm))

	s := startServer(t, "")
	ex := open(t, connect(t, s), Options{Run: "teach"})
	serve(t, connect(t, s), "teach", &Worker{Loader: TinyLM{}, Concurrency: 2, Name: "w1"})
	serve(t, connect(t, s), "teach", &Worker{Loader: TinyLM{}, Concurrency: 2, Name: "w2"})
	got := write("dist.ptc", nil, cache.Distribute(ex.Teacher(path), "corpus", 8))
	if !bytes.Equal(got, want) {
		t.Fatal("the workers' cache differs from the in-process one")
	}
	published := func() uint64 {
		info, err := ex.tasks.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return info.State.LastSeq
	}
	n := published()
	again := write("again.ptc", nil, cache.Distribute(ex.Teacher(path), "corpus", 8))
	if !bytes.Equal(again, want) || published() != n || n != 11 {
		t.Fatalf("rerun: %d tasks published before, %d after; want 11 batches, none published again", n, published())
	}
}

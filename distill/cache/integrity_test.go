package cache

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// corpus writes n tokens of f as shards of per tokens into a new directory
// and returns the manifest's path.
func corpus(t *testing.T, seed uint64, f Format, n int, per int64) string {
	t.Helper()
	dir := t.TempDir()
	ids, lps := predictions(rand.New(rand.NewPCG(seed, 1)), f, n)
	sw, err := CreateSharded(dir, f, per)
	if err != nil {
		t.Fatal(err)
	}
	if err := sw.Write(ids, lps); err != nil {
		t.Fatal(err)
	}
	if err := sw.Close(); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, ManifestName)
}

func copyFile(t *testing.T, dst, src string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// The probe's cases: two shards of one length swapped, a shard replaced by
// another cache's shard of the same format and length, a later shard
// truncated — each caught by OpenCorpus before any token is delivered.
func TestShardSubstitution(t *testing.T) {
	f := Format{Vocab: 49152, K: 1, BlockTokens: 100}
	for _, c := range []struct {
		name   string
		damage func(t *testing.T, dir string)
		want   string
	}{
		{"swapped", func(t *testing.T, dir string) {
			a, b := filepath.Join(dir, "shard-00000.ptc"), filepath.Join(dir, "shard-00001.ptc")
			tmp := filepath.Join(dir, "tmp")
			os.Rename(a, tmp)
			os.Rename(b, a)
			os.Rename(tmp, b)
		}, "shard 0: shard-00000.ptc: header says it is shard 1"},
		{"replaced", func(t *testing.T, dir string) {
			other := filepath.Dir(corpus(t, 99, f, 900, 300))
			copyFile(t, filepath.Join(dir, "shard-00001.ptc"), filepath.Join(other, "shard-00001.ptc"))
		}, "shard 1: shard-00001.ptc: content digest"},
		{"later shard truncated", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "shard-00002.ptc")
			fi, _ := os.Stat(p)
			os.Truncate(p, fi.Size()-10)
		}, "shard 2: shard-00002.ptc: 1266 bytes, its header implies 1276"},
		{"later shard extended", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "shard-00002.ptc")
			b, _ := os.ReadFile(p)
			os.WriteFile(p, append(b, 0), 0o644)
		}, "shard 2: shard-00002.ptc: 1277 bytes"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := corpus(t, 1, f, 900, 300)
			c.damage(t, filepath.Dir(path))
			_, err := OpenCorpus(path)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want ErrCorrupt mentioning %q", err, c.want)
			}
		})
	}
}

// Blocks rewritten under an intact header, each with a valid checksum, pass
// each block's check; Next catches them by the content digest at the
// file's last block, which it never returns, and Verify before anything is
// read, for a single file and for a corpus.
func TestVerify(t *testing.T) {
	f := Format{Vocab: 1000, K: 2, LogProbs: BF16, BlockTokens: 4}
	path := corpus(t, 2, f, 24, 12)
	c, err := OpenCorpus(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Verify(); err != nil {
		t.Fatalf("intact corpus: %v", err)
	}
	c.Close()
	// Forge shard 1: the ids of its first block changed, checksum fixed.
	shard := filepath.Join(filepath.Dir(path), "shard-00001.ptc")
	b, _ := os.ReadFile(shard)
	blk := b[headerSize : headerSize+int(f.blockBytes(4))]
	blk[0] ^= 1
	putCRC(blk)
	os.WriteFile(shard, b, 0o644)
	r, err := Open(shard)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Verify(); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "content digest") {
		t.Errorf("Reader.Verify of a forged shard: %v", err)
	}
	for range 2 { // the error is sticky until Rewind; Rewind reads again
		ids, _, err := readAll(r)
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "content digest") {
			t.Fatalf("Reader.Next over a forged shard: %v", err)
		}
		if len(ids) != 2*4*f.K { // blocks 0 and 1; never the last
			t.Fatalf("Reader.Next delivered %d tokens of the forged shard, want 8", len(ids)/f.K)
		}
		if _, err := r.Next(); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Next after the digest error: %v", err)
		}
		r.Rewind()
	}
	r.Close()
	c, err = OpenCorpus(path)
	if err != nil {
		t.Fatalf("the header is intact, OpenCorpus should pass: %v", err)
	}
	if err := c.Verify(); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "shard 1") {
		t.Errorf("Corpus.Verify of a forged shard: %v", err)
	}
	ids, _, err := readAll(c)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "shard 1") || !strings.Contains(err.Error(), "content digest") {
		t.Errorf("Corpus.Next over a forged shard: %v", err)
	}
	if len(ids) != (12+8)*f.K {
		t.Errorf("Corpus.Next delivered %d tokens, want 20 (shard 0, two blocks of shard 1)", len(ids)/f.K)
	}
	c.Close()
	// A forged last block: not one token of it is delivered.
	b, _ = os.ReadFile(shard)
	blk[0] ^= 1
	putCRC(blk)
	copy(b[headerSize:], blk) // shard 1 as written
	last := b[headerSize+2*int(f.blockBytes(4)):]
	last[1] ^= 2
	putCRC(last)
	os.WriteFile(shard, b, 0o644)
	if r, err := Open(shard); err != nil {
		t.Fatal(err)
	} else {
		ids, _, err := readAll(r)
		if !errors.Is(err, ErrCorrupt) || len(ids) != 8*f.K {
			t.Errorf("forged last block: %d tokens delivered, %v", len(ids)/f.K, err)
		}
		r.Close()
	}
	// A flipped bit is caught by Verify too (by its block checksum).
	b[len(b)-7] ^= 4
	os.WriteFile(shard, b, 0o644)
	if r, err := Open(shard); err != nil {
		t.Fatal(err)
	} else if err := r.Verify(); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Verify of a flipped bit: %v", err)
	}
}

// A file truncated while mapped is an error, not a SIGBUS that kills the
// process.
func TestTruncatedWhileMapped(t *testing.T) {
	if runtime.GOOS != "linux" && runtime.GOOS != "darwin" && runtime.GOOS != "freebsd" {
		t.Skip("truncating a mapped file is refused on this system")
	}
	f := Format{Vocab: 49152, K: 1, BlockTokens: 1024}
	path := filepath.Join(t.TempDir(), "big.ptc")
	ids, _ := predictions(rand.New(rand.NewPCG(3, 3)), f, 64<<10)
	writeFile(t, path, f, ids, nil, 64<<10)
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.ReadBlock(0); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, headerSize); err != nil {
		t.Fatal(err)
	}
	_, err = r.ReadBlock(r.Blocks() - 1)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "truncated or changed while mapped") {
		t.Fatalf("reading a block truncated away: %v", err)
	}
	// The reader is still usable for what remains (the header page).
	if err := r.Verify(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Verify: %v", err)
	}
}

// A Writer records the file's content digest and shard index in its header.
func TestHeaderDigest(t *testing.T) {
	b := sample(t)
	if err := readBytes(b); err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(bytesReaderAt(b), "s")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Verify(); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(b[40:60], make([]byte, 20)) || r.Index() != 0 {
		t.Fatalf("header digest %x, index %d", b[40:60], r.Index())
	}
}

// Integer arguments from the far end of their range are errors, never a
// panic or an allocation that kills the process.
func TestPrecomputeHugeBatch(t *testing.T) {
	w, err := Create(filepath.Join(t.TempDir(), "x.ptc"), Format{Vocab: 10, K: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	for _, batch := range []int{1 << 62, 1 << 40, maxBlockEntries/2 + 1, 0, -1} {
		if _, err := Precompute(t.Context(), w, nil, SliceTokens([]int32{1}), batch, nil); err == nil || !strings.Contains(err.Error(), "batch") {
			t.Errorf("batch %d: %v", batch, err)
		}
	}
}

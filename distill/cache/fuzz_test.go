package cache

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// FuzzReader feeds arbitrary bytes to the reader: it must return errors,
// never panic, hang or allocate without bound. The committed seed corpus
// in testdata/fuzz/FuzzReader holds valid files of several formats and
// damaged copies; regenerate it with
//
//	CACHE_WRITE_SEEDS=1 go test -run TestWriteSeeds ./distill/cache/
func FuzzReader(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := NewReader(bytesReaderAt(b), "fuzz")
		if err != nil {
			return
		}
		// A file that opens may still fail block by block; read them all,
		// and the last one twice through ReadBlock.
		for {
			blk, err := r.Next()
			if err != nil {
				break
			}
			if len(blk.IDs) != blk.Tokens*blk.K {
				t.Fatalf("block %d: %d ids for %d tokens × k %d", blk.Index, len(blk.IDs), blk.Tokens, blk.K)
			}
			for _, id := range blk.IDs {
				if id < 0 || int(id) >= r.Format().Vocab {
					t.Fatalf("block %d: id %d escaped the range check", blk.Index, id)
				}
			}
		}
		r.ReadBlock(r.Blocks() - 1)
		r.ReadBlock(r.Blocks())
	})
}

// bytesReaderAt serves a byte slice as a ReaderAt.
type bytesReaderAt []byte

func (b bytesReaderAt) Len() int { return len(b) }

func (b bytesReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off > int64(len(b)) {
		return 0, fmt.Errorf("offset %d outside [0, %d]", off, len(b))
	}
	n := copy(p, b[off:])
	if n < len(p) {
		return n, fmt.Errorf("short read at %d", off)
	}
	return n, nil
}

// seeds returns small valid files of several formats, and damaged copies.
func seeds(tb testing.TB) [][]byte {
	var out [][]byte
	r := rand.New(rand.NewPCG(7, 8))
	for i, f := range []Format{
		{Vocab: 49152, K: 1, BlockTokens: 4},
		{Vocab: 49152, K: 1, PackIDs: true, BlockTokens: 4},
		{Vocab: 6, K: 2, PackIDs: true, LogProbs: F16, BlockTokens: 3},
		{Vocab: 1000, K: 8, LogProbs: BF16, PackIDs: true, BlockTokens: 2},
	} {
		ids, lps := predictions(r, f, 5)
		path := filepath.Join(tb.TempDir(), fmt.Sprintf("s%d.ptc", i))
		w, err := Create(path, f)
		if err != nil {
			tb.Fatal(err)
		}
		if err := w.Write(ids, lps); err != nil {
			tb.Fatal(err)
		}
		if err := w.Close(); err != nil {
			tb.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			tb.Fatal(err)
		}
		flipped := append([]byte(nil), b...)
		flipped[len(b)-3] ^= 1
		out = append(out, b, b[:len(b)-5], flipped)
	}
	return out
}

func TestWriteSeeds(t *testing.T) {
	if os.Getenv("CACHE_WRITE_SEEDS") == "" {
		t.Skip("set CACHE_WRITE_SEEDS=1 to rewrite testdata/fuzz/FuzzReader")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzReader")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, s := range seeds(t) {
		body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(s)) + ")\n"
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed%02d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// FuzzHeader builds headers with valid checksums from arbitrary fields, so
// the size arithmetic and block decoding behind the header check are
// explored too, with arbitrary (unchecksummed or re-checksummed) blocks.
func FuzzHeader(f *testing.F) {
	f.Add(uint32(49152), uint32(1), uint32(4), uint64(5), uint8(0), uint8(32), []byte{1, 2, 3}, true)
	f.Add(uint32(6), uint32(2), uint32(3), uint64(5), uint8(2), uint8(3), make([]byte, 40), true)
	f.Add(uint32(1000), uint32(8), uint32(2), uint64(1<<40), uint8(1), uint8(10), []byte{}, false)
	f.Fuzz(func(t *testing.T, vocab, k, bt uint32, tokens uint64, prec, idBits uint8, tail []byte, fixCRC bool) {
		h := make([]byte, headerSize)
		copy(h, magic)
		le := binary.LittleEndian
		le.PutUint32(h[8:], version)
		le.PutUint32(h[12:], vocab)
		le.PutUint32(h[16:], k)
		le.PutUint32(h[20:], bt)
		le.PutUint64(h[24:], tokens)
		h[32], h[33] = prec, idBits
		le.PutUint32(h[60:], crc32Checksum(h[:60]))
		b := append(h, tail...)
		if fixCRC {
			// Give every whole block a valid checksum.
			if fm, _, err := decodeHeader(h); err == nil {
				full := int(fm.blockBytes(fm.BlockTokens))
				for off := headerSize; off+full <= len(b); off += full {
					putCRC(b[off : off+full])
				}
			}
		}
		r, err := NewReader(bytesReaderAt(b), "fuzz")
		if err != nil {
			return
		}
		for {
			if _, err := r.Next(); err != nil {
				break
			}
		}
	})
}

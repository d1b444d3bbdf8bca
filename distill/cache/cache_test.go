package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/posttrain/posttrain/tensor"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// predictions draws n tokens of K distinct ids and sorted log-probs.
func predictions(r *rand.Rand, f Format, n int) ([]int32, []float32) {
	ids := make([]int32, n*f.K)
	var lps []float32
	if f.LogProbs != None {
		lps = make([]float32, n*f.K)
	}
	for t := range n {
		perm := distinct(r, f.Vocab, f.K)
		lp := float32(0)
		for a := range f.K {
			ids[t*f.K+a] = perm[a]
			lp -= float32(r.ExpFloat64())
			if lps != nil {
				lps[t*f.K+a] = lp
			}
		}
	}
	return ids, lps
}

// distinct draws k distinct ids from [0, v).
func distinct(r *rand.Rand, v, k int) []int32 {
	if 2*k > v {
		p := r.Perm(v)[:k]
		out := make([]int32, k)
		for i, x := range p {
			out[i] = int32(x)
		}
		return out
	}
	seen := make(map[int32]bool, k)
	out := make([]int32, 0, k)
	for len(out) < k {
		x := int32(r.IntN(v))
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// stored is what a log-prob reads back as after its 16-bit round trip.
func stored(p Precision, x []float32) []float32 {
	u, y := make([]uint16, len(x)), make([]float32, len(x))
	if p == BF16 {
		tensor.ToBF16(u, x)
		tensor.FromBF16(y, u)
	} else {
		tensor.ToF16(u, x)
		tensor.FromF16(y, u)
	}
	return y
}

func writeFile(t *testing.T, path string, f Format, ids []int32, lps []float32, chunk int) {
	t.Helper()
	w, err := Create(path, f)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(ids); i += chunk * f.K {
		j := min(len(ids), i+chunk*f.K)
		var lp []float32
		if lps != nil {
			lp = lps[i:j]
		}
		if err := w.Write(ids[i:j], lp); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func readAll(r interface{ Next() (Block, error) }) ([]int32, []float32, error) {
	var ids []int32
	var lps []float32
	for {
		b, err := r.Next()
		if err == io.EOF {
			return ids, lps, nil
		}
		if err != nil {
			return ids, lps, err
		}
		if int64(len(ids)/b.K) != b.Start {
			return nil, nil, fmt.Errorf("block %d starts at token %d, want %d", b.Index, b.Start, len(ids)/b.K)
		}
		ids = append(ids, b.IDs...)
		lps = append(lps, b.LogProbs...)
	}
}

var formats = []Format{
	{Vocab: 49152, K: 1, BlockTokens: 7},
	{Vocab: 49152, K: 1, PackIDs: true, BlockTokens: 7},
	{Vocab: 5, K: 1, PackIDs: true, BlockTokens: 3},
	{Vocab: 2, K: 2, PackIDs: true, LogProbs: F16, BlockTokens: 4},
	{Vocab: 1000, K: 8, LogProbs: BF16, PackIDs: true, BlockTokens: 5},
	{Vocab: 32000, K: 32, LogProbs: F16, BlockTokens: 16},
	{Vocab: 100, K: 3, LogProbs: BF16},
}

func TestRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	dir := t.TempDir()
	for i, f := range formats {
		for _, n := range []int{0, 1, 6, 7, 50} {
			t.Run(fmt.Sprintf("%s/n=%d", formatName(f), n), func(t *testing.T) {
				path := filepath.Join(dir, fmt.Sprintf("c%d-%d.ptc", i, n))
				ids, lps := predictions(r, f, n)
				writeFile(t, path, f, ids, lps, 3)
				rd, err := Open(path)
				if err != nil {
					t.Fatalf("%+v n=%d: %v", f, n, err)
				}
				if rd.Tokens() != int64(n) || rd.Format() != f.withDefaults() {
					t.Errorf("%+v: reads back %d tokens, format %+v", f, rd.Tokens(), rd.Format())
				}
				gotIDs, gotLPs, err := readAll(rd)
				if err != nil {
					t.Fatalf("%+v n=%d: %v", f, n, err)
				}
				if !slicesEqual(gotIDs, ids) {
					t.Errorf("%+v n=%d: ids differ", f, n)
				}
				if f.LogProbs != None && !slicesEqual(gotLPs, stored(f.LogProbs, lps)) {
					t.Errorf("%+v n=%d: log-probs differ from their %v round trip", f, n, f.LogProbs)
				}
				info, _ := os.Stat(path)
				wantSize := int64(headerSize)
				bt := f.withDefaults().BlockTokens
				for s := 0; s < n; s += bt {
					wantSize += f.blockBytes(min(bt, n-s))
				}
				if info.Size() != wantSize {
					t.Errorf("%+v n=%d: %d bytes, want %d", f, n, info.Size(), wantSize)
				}
				rd.Close()
			})
		}
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "*.tmp*")); len(m) != 0 {
		t.Errorf("temporary files left: %v", m)
	}
}

// formatName names a format in subtest names: "V=1000,K=8,bf16,packed,B=5".
func formatName(f Format) string {
	s := fmt.Sprintf("V=%d,K=%d,%v", f.Vocab, f.K, f.LogProbs)
	if f.PackIDs {
		s += ",packed"
	}
	if f.BlockTokens != 0 {
		s += fmt.Sprintf(",B=%d", f.BlockTokens)
	}
	return s
}

func slicesEqual[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestBytesPerToken records the storage table in the package doc.
func TestBytesPerToken(t *testing.T) {
	for _, c := range []struct {
		f    Format
		want float64
	}{
		{Format{Vocab: 49152, K: 1}, 4},
		{Format{Vocab: 49152, K: 1, PackIDs: true}, 2},
		{Format{Vocab: 49152, K: 8, LogProbs: BF16}, 48},
		{Format{Vocab: 49152, K: 8, LogProbs: BF16, PackIDs: true}, 32},
		{Format{Vocab: 49152, K: 32, LogProbs: F16}, 192},
		{Format{Vocab: 49152, K: 32, LogProbs: F16, PackIDs: true}, 128},
		{Format{Vocab: 100000, K: 1, PackIDs: true}, 17.0 / 8},
	} {
		t.Run(formatName(c.f), func(t *testing.T) {
			assert.Equal(t, c.want, c.f.BytesPerToken()) // exact: a ratio of small integers
		})
	}
}

func TestTempAndAbort(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.ptc")
	w, err := Create(path, Format{Vocab: 10, K: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write([]int32{1, 2, 3}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("final file exists before Close: %v", err)
	}
	w.Abort()
	if m, _ := os.ReadDir(dir); len(m) != 0 {
		t.Errorf("files left after Abort: %v", m)
	}
	if err := w.Write([]int32{1}, nil); err == nil {
		t.Error("write after Abort succeeded")
	}
}

func TestWriteErrors(t *testing.T) {
	w, err := Create(filepath.Join(t.TempDir(), "c.ptc"), Format{Vocab: 10, K: 2, LogProbs: BF16})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	for _, c := range []struct {
		name string
		ids  []int32
		lps  []float32
		want string
	}{
		{"ragged", []int32{1}, []float32{-1}, "multiple of k"},
		{"no log-probs", []int32{1, 2}, nil, "0 log-probs for 2 ids"},
		{"id ≥ V", []int32{1, 2, 3, 10}, []float32{-1, -2, -1, -2}, "token 1: id 10"},
		{"id < 0", []int32{1, 2, 3, -1}, []float32{-1, -2, -1, -2}, "token 1: id -1"},
		{"log-prob > 0", []int32{1, 2}, []float32{-1, 0.5}, "token 0: log-prob 0.5"},
		{"log-prob NaN", []int32{1, 2}, []float32{float32(math.NaN()), -1}, "log-prob NaN"},
	} {
		t.Run(c.name, func(t *testing.T) {
			assert.ErrorContains(t, w.Write(c.ids, c.lps), c.want)
		})
	}
	if w.Tokens() != 0 {
		t.Errorf("%d tokens written by failed calls", w.Tokens())
	}
	for _, f := range []Format{{Vocab: 0, K: 1}, {Vocab: 5, K: 6}, {Vocab: 5, K: 1, LogProbs: 9}, {Vocab: 5, K: 1, BlockTokens: -1}} {
		if _, err := Create(filepath.Join(t.TempDir(), "x"), f); err == nil {
			t.Errorf("Create with %+v: no error", f)
		}
	}
}

// sample writes a small valid file and returns its bytes: 4 blocks of
// 5 tokens and one of 2.
func sample(t testing.TB) []byte {
	f := Format{Vocab: 1000, K: 4, LogProbs: BF16, PackIDs: true, BlockTokens: 5}
	ids, lps := predictions(rand.New(rand.NewPCG(3, 4)), f, 22)
	path := filepath.Join(t.TempDir(), "s.ptc")
	w, err := Create(path, f)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(ids, lps); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readBytes opens b and reads every block, returning the first error.
func readBytes(b []byte) error {
	r, err := NewReader(bytes.NewReader(b), "test")
	if err != nil {
		return err
	}
	_, _, err = readAll(r)
	return err
}

func TestCorruption(t *testing.T) {
	b := sample(t)
	if err := readBytes(b); err != nil {
		t.Fatalf("sample does not read: %v", err)
	}
	f := Format{Vocab: 1000, K: 4, LogProbs: BF16, PackIDs: true, BlockTokens: 5}
	full := int(f.blockBytes(5))
	flip := func(i int) []byte { c := bytes.Clone(b); c[i] ^= 0x10; return c }
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "shorter than"},
		{"magic", flip(0), "bad magic"},
		{"header", flip(20), "header: checksum"},
		{"block 0", flip(headerSize + 3), "block 0 at byte 64: checksum"},
		{"block 2", flip(headerSize + 2*full + full/2), "block 2 at byte"},
		{"last block crc", flip(len(b) - 1), "block 4 at byte"},
		{"truncated in block 3", b[:headerSize+3*full+7], "truncated: block 3 of 5"},
		{"truncated in block 1", b[:headerSize+full+1], "block 1"},
		{"no blocks", b[:headerSize], "truncated"},
		{"trailing", append(bytes.Clone(b), 0), "1 trailing bytes after block 4"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := readBytes(c.data)
			require.ErrorIs(t, err, ErrCorrupt)
			assert.ErrorContains(t, err, c.want)
		})
	}
	// An id ≥ V under a valid checksum (a writer bug, or a forged file) is
	// caught too, naming the block.
	g := Format{Vocab: 5, K: 1, PackIDs: true, BlockTokens: 4}
	raw := encodeHeader(g, header{tokens: 4})
	blk := make([]byte, g.blockBytes(4))
	packIDs(blk[:2], []int32{1, 2, 7, 3}, 3)
	putCRC(blk)
	err := readBytes(append(raw, blk...))
	require.ErrorIs(t, err, ErrCorrupt, "forged id")
	assert.ErrorContains(t, err, "block 0 token 2: id 7", "forged id")
}

func putCRC(blk []byte) {
	body := blk[:len(blk)-4]
	c := crc32Checksum(body)
	blk[len(body)], blk[len(body)+1], blk[len(body)+2], blk[len(body)+3] = byte(c), byte(c>>8), byte(c>>16), byte(c>>24)
}

func TestShards(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	dir := t.TempDir()
	f := Format{Vocab: 300, K: 2, LogProbs: F16, PackIDs: true, BlockTokens: 4}
	ids, lps := predictions(r, f, 57)
	sw, err := CreateSharded(dir, f, 10)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(ids); i += 2 * 7 {
		j := min(len(ids), i+2*7)
		if err := sw.Write(ids[i:j], lps[i:j]); err != nil {
			t.Fatal(err)
		}
	}
	if err := sw.Close(); err != nil {
		t.Fatal(err)
	}
	c, err := OpenCorpus(filepath.Join(dir, ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	if m := c.Manifest(); len(m.Shards) != 6 || m.Tokens != 57 {
		t.Errorf("manifest: %d shards, %d tokens; want 6, 57", len(m.Shards), m.Tokens)
	}
	gotIDs, gotLPs, err := readAll(c)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if !slicesEqual(gotIDs, ids) || !slicesEqual(gotLPs, stored(F16, lps)) {
		t.Error("corpus reads back different predictions")
	}

	// A missing shard, or one of another length or format, is caught
	// when the corpus is opened, before any data is read.
	oids, olps := predictions(r, f, 10)
	if err := os.Remove(filepath.Join(dir, "shard-00003.ptc")); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenCorpus(filepath.Join(dir, ManifestName)); err == nil || !strings.Contains(err.Error(), "shard 3") {
		t.Errorf("missing shard: %v", err)
	}
	short := filepath.Join(dir, "shard-00003.ptc")
	writeFile(t, short, f, oids[:2*9], olps[:2*9], 9)
	if _, err := OpenCorpus(filepath.Join(dir, ManifestName)); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "shard 3: shard-00003.ptc: 9 tokens, manifest says 10") {
		t.Errorf("short shard: %v", err)
	}
	g := f
	g.LogProbs = BF16
	writeFile(t, short, g, oids, stored(BF16, olps), 10)
	if _, err := OpenCorpus(filepath.Join(dir, ManifestName)); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "shard 3: shard-00003.ptc: format") {
		t.Errorf("shard of another format: %v", err)
	}
}

// toyTeacher's logits favor token (x·7 + 3) mod V, then (x·7 + 4), ...
func toyTeacher(v int, calls *int) Teacher {
	return func(tokens []int32) (*tensor.Dense, error) {
		*calls++
		z := tensor.New(len(tokens), v)
		for i, x := range tokens {
			row := z.Row(i)
			for j := range row {
				row[(int(x)*7+3+j)%v] = -float32(j) * 0.5
			}
		}
		return z, nil
	}
}

func TestPrecompute(t *testing.T) {
	const v, n = 50, 103
	tokens := make([]int32, n)
	for i := range tokens {
		tokens[i] = int32(i * 13 % v)
	}
	for _, f := range []Format{{Vocab: v, K: 1, BlockTokens: 8}, {Vocab: v, K: 3, LogProbs: BF16, BlockTokens: 8}} {
		path := filepath.Join(t.TempDir(), "p.ptc")
		w, err := Create(path, f)
		if err != nil {
			t.Fatal(err)
		}
		var calls int
		var seen []int64
		done, err := Precompute(context.Background(), w, toyTeacher(v, &calls), SliceTokens(tokens), 10,
			func(k int64) { seen = append(seen, k) })
		if err != nil || done != n {
			t.Fatalf("Precompute: %d, %v", done, err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if calls != 11 || len(seen) != 11 || seen[0] != 10 || seen[10] != n {
			t.Errorf("%d teacher calls, progress %v", calls, seen)
		}
		r, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		ids, lps, err := readAll(r)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		// The expected top-k and log-probs, in float64.
		var lse float64
		for j := range v {
			lse += math.Exp(-float64(j) * 0.5)
		}
		lse = math.Log(lse)
		for i, x := range tokens {
			for a := range f.K {
				if want := int32((int(x)*7 + 3 + a) % v); ids[i*f.K+a] != want {
					t.Fatalf("token %d rank %d: id %d, want %d", i, a, ids[i*f.K+a], want)
				}
				if lps != nil {
					want := -float64(a)*0.5 - lse
					if got := float64(lps[i*f.K+a]); math.Abs(got-want) > 1e-2*math.Abs(want) {
						t.Fatalf("token %d rank %d: log-prob %v, want %v", i, a, got, want)
					}
				}
			}
		}
	}
}

func TestPrecomputeErrors(t *testing.T) {
	f := Format{Vocab: 4, K: 1}
	w, err := Create(filepath.Join(t.TempDir(), "p.ptc"), f)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	bad := func(tokens []int32) (*tensor.Dense, error) {
		z := tensor.New(len(tokens), 4)
		z.Row(len(tokens) - 1)[2] = float32(math.NaN())
		return z, nil
	}
	if _, err := Precompute(context.Background(), w, bad, SliceTokens(make([]int32, 5)), 5, nil); err == nil || !strings.Contains(err.Error(), "token 4, id 2 is NaN") {
		t.Errorf("NaN teacher: %v", err)
	}
	wrong := func(tokens []int32) (*tensor.Dense, error) { return tensor.New(len(tokens), 3), nil }
	if _, err := Precompute(context.Background(), w, wrong, SliceTokens(make([]int32, 5)), 5, nil); err == nil || !strings.Contains(err.Error(), "shape [5 3]") {
		t.Errorf("wrong shape: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var calls int
	teacher := toyTeacher(4, &calls)
	stop := func(tokens []int32) (*tensor.Dense, error) { cancel(); return teacher(tokens) }
	done, err := Precompute(ctx, w, stop, SliceTokens(make([]int32, 50)), 5, nil)
	if !errors.Is(err, context.Canceled) || done != 5 {
		t.Errorf("cancelled: %d tokens, %v; want 5, context.Canceled", done, err)
	}
}

// TestPrecomputeSharded fills a sharded corpus and a single file from the
// same teacher; they read back the same.
func TestPrecomputeSharded(t *testing.T) {
	const v, n = 40, 75
	tokens := make([]int32, n)
	for i := range tokens {
		tokens[i] = int32(i * 7 % v)
	}
	f := Format{Vocab: v, K: 2, LogProbs: F16, PackIDs: true, BlockTokens: 6}
	dir := t.TempDir()
	var calls int
	sw, err := CreateSharded(filepath.Join(dir, "corpus"), f, 20)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Precompute(context.Background(), sw, toyTeacher(v, &calls), SliceTokens(tokens), 9, nil); err != nil {
		t.Fatal(err)
	}
	if err := sw.Close(); err != nil {
		t.Fatal(err)
	}
	w, err := Create(filepath.Join(dir, "one.ptc"), f)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Precompute(context.Background(), w, toyTeacher(v, &calls), SliceTokens(tokens), 16, nil); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	c, err := OpenCorpus(filepath.Join(dir, "corpus", ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r, err := Open(filepath.Join(dir, "one.ptc"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ci, cl, err1 := readAll(c)
	ri, rl, err2 := readAll(r)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if len(c.Manifest().Shards) != 4 || !slicesEqual(ci, ri) || !slicesEqual(cl, rl) || len(ci) != n*2 {
		t.Errorf("sharded corpus (%d shards, %d ids) differs from the single file (%d ids)", len(c.Manifest().Shards), len(ci), len(ri))
	}
}

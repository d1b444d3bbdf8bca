package cache

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"runtime/debug"

	"golang.org/x/exp/mmap"

	"github.com/posttrain/posttrain/distill"
	"github.com/posttrain/posttrain/tensor"
)

// Block is one block of a cache: Tokens tokens, each with K ids (IDs,
// length Tokens·K) and, if the format stores them, K log-probs (LogProbs,
// else nil). Its slices belong to the reader and are valid until the
// reader's next call.
type Block struct {
	Index    int   // block number within its file
	Start    int64 // index of its first token within the file (or corpus)
	Tokens   int
	K        int
	IDs      []int32
	LogProbs []float32
}

// TopK returns the block as the sparse teacher of distill.SparseKL. It
// shares the block's slices.
func (b Block) TopK() distill.TopK { return distill.TopK{IDs: b.IDs, LogProbs: b.LogProbs, K: b.K} }

// Reader reads a cache file through a read-only memory map, one block at
// a time: the file is never loaded whole, and each block's checksum is
// verified before it is decoded.
type Reader struct {
	src    ReaderAt
	closer io.Closer
	name   string
	f      Format
	tokens int64
	hd     header
	blocks int
	full   int64 // bytes of a full block
	next   int
	sum    hash.Hash // SHA-256 of the blocks Next has returned, in order
	bad    error     // the content digest's mismatch, sticky until Rewind

	raw []byte
	ids []int32
	lps []float32
	u16 []uint16
}

// Open maps the cache file at path and checks its header and size. A
// truncated or overlong file is an error naming the first incomplete
// block.
func Open(path string) (*Reader, error) {
	m, err := mmap.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	r := &Reader{src: m, closer: m, name: path}
	if err := r.init(); err != nil {
		m.Close()
		return nil, err
	}
	return r, nil
}

// ReaderAt is what a Reader reads from: random access and a length, as
// mmap.ReaderAt and bytes.Reader provide.
type ReaderAt interface {
	io.ReaderAt
	Len() int
}

// NewReader reads a cache from src, which the caller keeps open; name
// labels errors. Open is NewReader over a memory map of a file.
func NewReader(src ReaderAt, name string) (*Reader, error) {
	r := &Reader{src: src, name: name}
	if err := r.init(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Reader) init() error {
	m := r.src
	var h [headerSize]byte
	size := int64(m.Len())
	if size < headerSize {
		return corruptf("cache: %s: %d bytes, shorter than the %d-byte header", r.name, size, headerSize)
	}
	if err := r.readAt(h[:], 0); err != nil {
		return fmt.Errorf("cache: %s: header: %w", r.name, err)
	}
	f, hd, err := decodeHeader(h[:])
	if err != nil {
		return corruptf("cache: %s: %v", r.name, err)
	}
	tokens := hd.tokens
	r.f, r.tokens, r.hd = f, tokens, hd
	bt := int64(f.BlockTokens)
	nb := (tokens + bt - 1) / bt
	r.full = f.blockBytes(f.BlockTokens)
	// Compare sizes without overflow: the header's token count may be
	// anything up to 2⁶², the full-block size is below 2³⁰.
	if nb > (size-headerSize)/r.full+1 {
		return corruptf("cache: %s: truncated: block %d of %d incomplete (%d bytes for %d tokens)",
			r.name, (size-headerSize)/r.full, nb, size, tokens)
	}
	want := f.fileSize(tokens) // no overflow: size ≥ (nb-1)·full
	switch {
	case size < want:
		b := (size - headerSize) / r.full
		return corruptf("cache: %s: truncated: block %d of %d incomplete (%d bytes, want %d)", r.name, b, nb, size, want)
	case size > want:
		return corruptf("cache: %s: %d trailing bytes after block %d", r.name, size-want, nb-1)
	}
	r.blocks = int(nb)
	r.sum = sha256.New()
	e := int(min(bt, tokens)) * f.K
	r.raw = make([]byte, f.blockBytes(int(min(bt, tokens))))
	r.ids = make([]int32, e)
	if f.LogProbs != None {
		r.lps, r.u16 = make([]float32, e), make([]uint16, e)
	}
	return nil
}

// Format returns the file's format.
func (r *Reader) Format() Format { return r.f }

// Tokens returns the number of tokens in the file.
func (r *Reader) Tokens() int64 { return r.tokens }

// Index returns the shard index the file's header records (0 for a file
// written by Create).
func (r *Reader) Index() int { return int(r.hd.index) }

// Blocks returns the number of blocks.
func (r *Reader) Blocks() int { return r.blocks }

// Close unmaps the file.
func (r *Reader) Close() error {
	if r.closer == nil {
		return nil
	}
	c := r.closer
	r.closer = nil
	return c.Close()
}

// Next returns the next block in order, and io.EOF after the last.
//
// Besides each block's own checksum, Next checks the file's content: it
// hashes the blocks as it returns them and compares the SHA-256 with the
// digest the header records when it reads the last block, before it
// returns it. A file whose blocks were replaced by others with valid
// checksums under an intact header (which OpenCorpus's checks of the
// header cannot see) is therefore an error wrapping ErrCorrupt at its last
// block, which is never returned; the blocks before it have been, so a
// caller that must not use a single token of such a file calls Verify
// first. The hashing covers blocks read by Next from the first one on;
// ReadBlock and Verify do not disturb it.
func (r *Reader) Next() (Block, error) {
	if r.bad != nil {
		return Block{}, r.bad
	}
	if r.next >= r.blocks {
		return Block{}, io.EOF
	}
	b, err := r.ReadBlock(r.next)
	if err != nil {
		return b, err
	}
	if r.next == 0 {
		r.sum.Reset()
	}
	r.sum.Write(r.raw[:r.f.blockBytes(b.Tokens)])
	if r.next == r.blocks-1 {
		if _, err := r.checkDigest(r.sum); err != nil {
			r.bad = err
			return Block{}, err
		}
	}
	r.next++
	return b, nil
}

// Rewind makes Next start again from the first block.
func (r *Reader) Rewind() { r.next, r.bad = 0, nil }

// checkDigest compares the SHA-256 in h with the content digest the header
// records, and returns it whole.
func (r *Reader) checkDigest(h hash.Hash) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	if !bytes.Equal(sum[:digestSize], r.hd.digest[:]) {
		return sum, corruptf("cache: %s: content digest %x, header says %x: the blocks are not the ones written", r.name, sum[:digestSize], r.hd.digest)
	}
	return sum, nil
}

// ReadBlock reads, verifies and decodes block i.
func (r *Reader) ReadBlock(i int) (Block, error) {
	if i < 0 || i >= r.blocks {
		return Block{}, fmt.Errorf("cache: %s: block %d outside [0, %d)", r.name, i, r.blocks)
	}
	bt := int64(r.f.BlockTokens)
	start := int64(i) * bt
	t := int(min(bt, r.tokens-start))
	off := headerSize + int64(i)*r.full
	raw := r.raw[:r.f.blockBytes(t)]
	if err := r.readAt(raw, off); err != nil {
		return Block{}, fmt.Errorf("cache: %s: block %d at byte %d: %w", r.name, i, off, err)
	}
	body := raw[:len(raw)-4]
	if got, want := binary.LittleEndian.Uint32(raw[len(body):]), crc32.Checksum(body, castagnoli); got != want {
		return Block{}, corruptf("cache: %s: block %d at byte %d: checksum %08x, want %08x", r.name, i, off, got, want)
	}
	e := t * r.f.K
	nid := (e*r.f.idBits() + 7) / 8
	ids := r.ids[:e]
	unpackIDs(ids, body[:nid], r.f.idBits())
	for j, id := range ids {
		if id < 0 || int(id) >= r.f.Vocab {
			return Block{}, corruptf("cache: %s: block %d token %d: id %d outside [0, %d)", r.name, i, start+int64(j/r.f.K), id, r.f.Vocab)
		}
	}
	blk := Block{Index: i, Start: start, Tokens: t, K: r.f.K, IDs: ids}
	if r.f.LogProbs != None {
		u := r.u16[:e]
		for j := range u {
			u[j] = binary.LittleEndian.Uint16(body[nid+2*j:])
		}
		lps := r.lps[:e]
		if r.f.LogProbs == BF16 {
			tensor.FromBF16(lps, u)
		} else {
			tensor.FromF16(lps, u)
		}
		for j, lp := range lps {
			if lp != lp || lp > 0 {
				return Block{}, corruptf("cache: %s: block %d token %d: log-prob %v, want ≤ 0", r.name, i, start+int64(j/r.f.K), lp)
			}
		}
		blk.LogProbs = lps
	}
	return blk, nil
}

// readAt reads len(p) bytes at off. A memory-mapped file that shrinks
// while mapped (truncated by another process) makes the copy fault with
// SIGBUS, which would kill the process; readAt turns the fault into an
// error wrapping ErrCorrupt instead (runtime/debug.SetPanicOnFault, set for
// the calling goroutine during the copy only).
func (r *Reader) readAt(p []byte, off int64) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if e := recover(); e != nil {
			if f, ok := e.(interface{ Addr() uintptr }); ok {
				err = corruptf("memory fault reading %d bytes at byte %d (address %#x): the file was truncated or changed while mapped", len(p), off, f.Addr())
				return
			}
			panic(e)
		}
	}()
	_, err = r.src.ReadAt(p, off)
	return err
}

// Verify reads the whole file and checks it: every block's checksum,
// every id and log-prob, and the SHA-256 of all blocks against the digest
// the header records — which also catches a file whose blocks were
// replaced by other blocks with valid checksums. It reuses the Reader's
// buffers, so blocks returned earlier are invalid afterwards, and leaves
// Next's position alone.
func (r *Reader) Verify() error {
	_, err := r.verify()
	return err
}

// verify is Verify, returning the full SHA-256 of the blocks.
func (r *Reader) verify() ([sha256.Size]byte, error) {
	h := sha256.New()
	for i := range r.blocks {
		if _, err := r.ReadBlock(i); err != nil {
			return [sha256.Size]byte{}, err
		}
		t := int(min(int64(r.f.BlockTokens), r.tokens-int64(i)*int64(r.f.BlockTokens)))
		h.Write(r.raw[:r.f.blockBytes(t)])
	}
	return r.checkDigest(h)
}

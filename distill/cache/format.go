package cache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"math/bits"
)

// ErrCorrupt reports cache data that cannot be trusted: a bad header, a
// block that fails its checksum, a file of the wrong size, an id outside
// the vocabulary, a shard that is not the one its manifest lists. Every
// such error names the file (and block or token) and satisfies
// errors.Is(err, ErrCorrupt).
var ErrCorrupt = errors.New("cache: corrupt data")

// corruptError is an error message that is an ErrCorrupt.
type corruptError struct{ msg string }

func (e *corruptError) Error() string        { return e.msg }
func (e *corruptError) Is(target error) bool { return target == ErrCorrupt }

// corruptf formats an error that satisfies errors.Is(err, ErrCorrupt).
func corruptf(format string, args ...any) error {
	return &corruptError{fmt.Sprintf(format, args...)}
}

// Precision is how a cache stores teacher log-probabilities.
type Precision uint8

const (
	None Precision = iota // ids only
	BF16                  // bfloat16: float32's range, 8 bits of precision
	F16                   // IEEE binary16: 11 bits of precision over ±65504
)

// String returns the precision's name as the header records it: "none",
// "bf16" or "f16".
func (p Precision) String() string {
	switch p {
	case None:
		return "none"
	case BF16:
		return "bf16"
	case F16:
		return "f16"
	}
	return fmt.Sprintf("Precision(%d)", uint8(p))
}

// Format describes what a cache file holds per token: the teacher's top K
// token ids over a vocabulary of Vocab, and, unless LogProbs is None, their
// log-probabilities. K = 1 with LogProbs = None is AFM's top-1 cache.
type Format struct {
	Vocab    int       `json:"vocab"`
	K        int       `json:"k"`
	LogProbs Precision `json:"log_probs"`
	// PackIDs stores each id in ⌈log2 Vocab⌉ bits instead of 32 (16 bits
	// for a 49,152-token vocabulary).
	PackIDs bool `json:"pack_ids"`
	// BlockTokens is how many tokens share one checksummed block; 0 means
	// DefaultBlockTokens.
	BlockTokens int `json:"block_tokens"`
}

// DefaultBlockTokens keeps a top-1 block at 256 KiB.
const DefaultBlockTokens = 1 << 16

// maxBlockEntries bounds BlockTokens·K so that one block's buffers stay
// modest whatever a header claims.
const maxBlockEntries = 1 << 26

func (f Format) withDefaults() Format {
	if f.BlockTokens == 0 {
		f.BlockTokens = DefaultBlockTokens
	}
	return f
}

func (f Format) validate() error {
	switch {
	case f.Vocab < 1 || f.Vocab > 1<<31-1:
		return fmt.Errorf("vocabulary size %d outside [1, 2³¹)", f.Vocab)
	case f.K < 1 || f.K > f.Vocab:
		return fmt.Errorf("k = %d outside [1, vocabulary %d]", f.K, f.Vocab)
	case f.LogProbs > F16:
		return fmt.Errorf("unknown log-prob precision %d", f.LogProbs)
	case f.BlockTokens < 1 || f.BlockTokens > maxBlockEntries/f.K:
		return fmt.Errorf("block of %d tokens × k %d outside [1, %d] entries", f.BlockTokens, f.K, maxBlockEntries)
	}
	return nil
}

// idBits is the width of one stored id.
func (f Format) idBits() int {
	if !f.PackIDs {
		return 32
	}
	return max(1, bits.Len(uint(f.Vocab-1)))
}

// BytesPerToken is the storage one token costs, without block checksums
// and header: K ids of idBits bits plus K 16-bit log-probs.
func (f Format) BytesPerToken() float64 {
	b := float64(f.K*f.idBits()) / 8
	if f.LogProbs != None {
		b += float64(2 * f.K)
	}
	return b
}

// blockBytes is the stored size of a block of t tokens, checksum included.
func (f Format) blockBytes(t int) int64 {
	e := int64(t) * int64(f.K)
	n := (e*int64(f.idBits()) + 7) / 8
	if f.LogProbs != None {
		n += 2 * e
	}
	return n + 4
}

// fileSize is the exact size of a file of tokens tokens (0 ≤ tokens ≤
// 2⁶²), or -1 if that overflows an int64.
func (f Format) fileSize(tokens int64) int64 {
	bt := int64(f.BlockTokens)
	nb := (tokens + bt - 1) / bt
	if nb == 0 {
		return headerSize
	}
	full := f.blockBytes(f.BlockTokens)
	if nb-1 > (math.MaxInt64-headerSize-full)/full {
		return -1
	}
	return headerSize + (nb-1)*f.blockBytes(f.BlockTokens) + f.blockBytes(int(tokens-(nb-1)*bt))
}

// File layout, little-endian:
//
//	header (64 bytes):
//	  0  magic "PTTCACHE"
//	  8  version uint32 (1)
//	 12  vocab uint32
//	 16  k uint32
//	 20  block tokens uint32
//	 24  tokens uint64
//	 32  log-prob precision uint8, id bits uint8, 2 zero bytes
//	 36  shard index uint32 (0 for a file outside a corpus)
//	 40  digest: the first 20 bytes of the SHA-256 of all blocks
//	 60  CRC-32C of bytes 0–59
//	blocks, each: ids (bit-packed, LSB first, padded to a byte), then
//	log-probs (uint16 each, if any), then the CRC-32C of the two.
//
// Every block holds BlockTokens tokens except the last, which holds the
// rest, so block b starts at 64 + b·blockBytes(BlockTokens) and the file
// size is fixed by the header.
const (
	headerSize = 64
	magic      = "PTTCACHE"
	version    = 2
	digestSize = 20 // bytes of the blocks' SHA-256 kept in the header
)

// header is what a file's header records besides its format.
type header struct {
	tokens int64
	index  uint32
	digest [digestSize]byte
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func encodeHeader(f Format, hd header) []byte {
	h := make([]byte, headerSize)
	copy(h, magic)
	le := binary.LittleEndian
	le.PutUint32(h[8:], version)
	le.PutUint32(h[12:], uint32(f.Vocab))
	le.PutUint32(h[16:], uint32(f.K))
	le.PutUint32(h[20:], uint32(f.BlockTokens))
	le.PutUint64(h[24:], uint64(hd.tokens))
	h[32] = byte(f.LogProbs)
	h[33] = byte(f.idBits())
	le.PutUint32(h[36:], hd.index)
	copy(h[40:60], hd.digest[:])
	le.PutUint32(h[60:], crc32.Checksum(h[:60], castagnoli))
	return h
}

func decodeHeader(h []byte) (Format, header, error) {
	var hd header
	if len(h) < headerSize {
		return Format{}, hd, fmt.Errorf("header: %d bytes, want %d", len(h), headerSize)
	}
	if string(h[:8]) != magic {
		return Format{}, hd, fmt.Errorf("header: bad magic %q", h[:8])
	}
	le := binary.LittleEndian
	if got, want := le.Uint32(h[60:]), crc32.Checksum(h[:60], castagnoli); got != want {
		return Format{}, hd, fmt.Errorf("header: checksum %08x, want %08x", got, want)
	}
	if v := le.Uint32(h[8:]); v != version {
		return Format{}, hd, fmt.Errorf("header: version %d, this reader knows %d (re-create the cache)", v, version)
	}
	f := Format{
		Vocab:       int(le.Uint32(h[12:])),
		K:           int(le.Uint32(h[16:])),
		BlockTokens: int(le.Uint32(h[20:])),
		LogProbs:    Precision(h[32]),
	}
	tokens := le.Uint64(h[24:])
	switch h[33] {
	case 32:
	default:
		f.PackIDs = true
	}
	if err := f.validate(); err != nil {
		return Format{}, hd, fmt.Errorf("header: %v", err)
	}
	if int(h[33]) != f.idBits() {
		return Format{}, hd, fmt.Errorf("header: %d id bits do not fit vocabulary %d", h[33], f.Vocab)
	}
	if h[34] != 0 || h[35] != 0 {
		return Format{}, hd, fmt.Errorf("header: reserved bytes 34–35 are not zero")
	}
	if tokens > 1<<62 {
		return Format{}, hd, fmt.Errorf("header: token count %d too large", tokens)
	}
	hd.tokens = int64(tokens)
	hd.index = le.Uint32(h[36:])
	copy(hd.digest[:], h[40:60])
	return f, hd, nil
}

// packIDs writes ids of width w bits, LSB first, into dst, which must hold
// ⌈len(ids)·w/8⌉ bytes.
func packIDs(dst []byte, ids []int32, w int) {
	if w == 32 {
		for i, id := range ids {
			binary.LittleEndian.PutUint32(dst[4*i:], uint32(id))
		}
		return
	}
	var acc uint64
	n, o := 0, 0
	for _, id := range ids {
		acc |= uint64(uint32(id)) << n
		n += w
		for n >= 8 {
			dst[o] = byte(acc)
			o++
			acc >>= 8
			n -= 8
		}
	}
	if n > 0 {
		dst[o] = byte(acc)
	}
}

// unpackIDs is packIDs' inverse for len(dst) ids.
func unpackIDs(dst []int32, src []byte, w int) {
	if w == 32 {
		for i := range dst {
			dst[i] = int32(binary.LittleEndian.Uint32(src[4*i:]))
		}
		return
	}
	var acc uint64
	n, o := 0, 0
	mask := uint64(1)<<w - 1
	for i := range dst {
		for n < w {
			acc |= uint64(src[o]) << n
			o++
			n += 8
		}
		dst[i] = int32(acc & mask)
		acc >>= w
		n -= w
	}
}

func crc32Checksum(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

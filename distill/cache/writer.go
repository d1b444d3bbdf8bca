package cache

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"

	"github.com/posttrain/posttrain/internal/atomicfile"
	"github.com/posttrain/posttrain/tensor"
)

// Writer writes one cache file. It writes through internal/atomicfile to
// a temporary file in the same directory, which Close syncs and renames
// into place (and syncs the directory), so a reader never sees a
// half-written cache under the final name, even after a crash.
type Writer struct {
	f      Format
	path   string
	file   *atomicfile.File
	bw     *bufio.Writer
	ids    []int32   // the pending block's ids
	lps    []float32 // and log-probs
	n      int       // tokens pending
	tokens int64     // tokens written, pending included
	raw    []byte
	u16    []uint16
	sum    hash.Hash // SHA-256 of the blocks written
	index  uint32    // shard index, recorded in the header
	err    error     // sticky: once a write fails the file is abandoned
	done   bool
}

// Create starts a cache file at path with format f.
func Create(path string, f Format) (*Writer, error) { return create(path, f, 0) }

// create starts a cache file that is shard index of a corpus.
func create(path string, f Format, index uint32) (*Writer, error) {
	f = f.withDefaults()
	if err := f.validate(); err != nil {
		return nil, fmt.Errorf("cache: %s: %v", path, err)
	}
	file, err := atomicfile.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	w := &Writer{f: f, path: path, file: file, bw: bufio.NewWriterSize(file, 1<<20), sum: sha256.New(), index: index}
	e := f.BlockTokens * f.K
	w.ids = make([]int32, e)
	if f.LogProbs != None {
		w.lps, w.u16 = make([]float32, e), make([]uint16, e)
	}
	w.raw = make([]byte, f.blockBytes(f.BlockTokens))
	if _, err := w.bw.Write(encodeHeader(f, header{index: index})); err != nil { // rewritten on Close
		w.Abort()
		return nil, fmt.Errorf("cache: %w", err)
	}
	return w, nil
}

// Format returns the file's format, defaults filled in.
func (w *Writer) Format() Format { return w.f }

// Tokens returns how many tokens have been written.
func (w *Writer) Tokens() int64 { return w.tokens }

// Write appends len(ids)/K tokens: per token, K ids (the teacher's top K,
// best first) and, unless the format stores none (then logProbs must be
// nil), their K log-probabilities. It returns an error naming the token if
// an id is outside [0, Vocab) or a log-prob is NaN or > 0; nothing of that
// call is written then.
func (w *Writer) Write(ids []int32, logProbs []float32) error {
	if w.err != nil {
		return w.err
	}
	if w.done {
		return errors.New("cache: write after Close")
	}
	if err := w.f.check(w.path, w.tokens, ids, logProbs); err != nil {
		return err
	}
	k := w.f.K
	for len(ids) > 0 {
		room := (w.f.BlockTokens - w.n) * k
		c := min(room, len(ids))
		copy(w.ids[w.n*k:], ids[:c])
		if logProbs != nil {
			copy(w.lps[w.n*k:], logProbs[:c])
			logProbs = logProbs[c:]
		}
		ids = ids[c:]
		w.n += c / k
		w.tokens += int64(c / k)
		if w.n == w.f.BlockTokens {
			if err := w.flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

// flush writes the pending block.
func (w *Writer) flush() error {
	if w.n == 0 {
		return nil
	}
	e := w.n * w.f.K
	raw := w.raw[:w.f.blockBytes(w.n)]
	nid := (e*w.f.idBits() + 7) / 8
	clear(raw[:nid])
	packIDs(raw[:nid], w.ids[:e], w.f.idBits())
	if w.f.LogProbs != None {
		u := w.u16[:e]
		if w.f.LogProbs == BF16 {
			tensor.ToBF16(u, w.lps[:e])
		} else {
			tensor.ToF16(u, w.lps[:e])
		}
		for i, x := range u {
			binary.LittleEndian.PutUint16(raw[nid+2*i:], x)
		}
	}
	body := raw[:len(raw)-4]
	binary.LittleEndian.PutUint32(raw[len(body):], crc32.Checksum(body, castagnoli))
	w.n = 0
	w.sum.Write(raw)
	if _, err := w.bw.Write(raw); err != nil {
		w.err = fmt.Errorf("cache: %s: %w", w.path, err)
		return w.err
	}
	return nil
}

// Close writes the last block and the final header, syncs, and renames
// the file into place. On error the temporary file is removed and no file
// appears under the final name.
func (w *Writer) Close() error {
	if w.done {
		return w.err
	}
	w.done = true
	err := w.err
	if err == nil {
		err = w.flush()
	}
	if err == nil {
		err = w.bw.Flush()
	}
	if err == nil {
		_, err = w.file.WriteAt(encodeHeader(w.f, w.header()), 0)
	}
	if err == nil {
		err = w.file.Commit()
	} else {
		w.file.Abort()
	}
	if err != nil {
		w.err = fmt.Errorf("cache: %s: %w", w.path, err)
		return w.err
	}
	return nil
}

// header is the final header's content.
func (w *Writer) header() header {
	hd := header{tokens: w.tokens, index: w.index}
	copy(hd.digest[:], w.sum.Sum(nil))
	return hd
}

// Digest returns the SHA-256, in hex, of the blocks written so far: after
// Close, the file's content digest, as Reader.Verify recomputes it.
func (w *Writer) Digest() string { return hex.EncodeToString(w.sum.Sum(nil)) }

// Abort discards the file.
func (w *Writer) Abort() {
	if w.done {
		return
	}
	w.done = true
	w.err = errors.New("cache: aborted")
	w.file.Abort()
}

// check validates a Write call's input; first is the index of its first
// token, for messages.
func (f Format) check(name string, first int64, ids []int32, logProbs []float32) error {
	k := f.K
	if len(ids)%k != 0 {
		return fmt.Errorf("cache: %s: %d ids is not a multiple of k = %d", name, len(ids), k)
	}
	if f.LogProbs == None && logProbs != nil {
		return fmt.Errorf("cache: %s: format stores no log-probs, got %d", name, len(logProbs))
	}
	if f.LogProbs != None && len(logProbs) != len(ids) {
		return fmt.Errorf("cache: %s: %d log-probs for %d ids", name, len(logProbs), len(ids))
	}
	for i, id := range ids {
		if id < 0 || int(id) >= f.Vocab {
			return fmt.Errorf("cache: %s: token %d: id %d outside [0, %d)", name, first+int64(i/k), id, f.Vocab)
		}
		if logProbs != nil {
			if lp := logProbs[i]; lp != lp || lp > 0 {
				return fmt.Errorf("cache: %s: token %d: log-prob %v, want ≤ 0", name, first+int64(i/k), lp)
			}
		}
	}
	return nil
}

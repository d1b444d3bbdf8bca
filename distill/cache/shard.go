package cache

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/posttrain/posttrain/internal/atomicfile"
)

// A corpus too large for one file — AFM's 6.3T pre-training tokens are
// 25 TB even at 4 bytes a token — is split into shard files listed, in
// order, by a manifest in the same directory.

// ManifestName is the manifest's file name within a corpus directory.
const ManifestName = "manifest.json"

// Manifest lists a corpus's shards in token order.
type Manifest struct {
	Version int     `json:"version"`
	Format  Format  `json:"format"`
	Tokens  int64   `json:"tokens"`
	Shards  []Shard `json:"shards"`
}

// Shard is one file of a corpus.
type Shard struct {
	File   string `json:"file"`  // relative to the manifest's directory
	Index  int    `json:"index"` // its position in Manifest.Shards, also in its header
	Tokens int64  `json:"tokens"`
	// SHA256 is the hex SHA-256 of the shard's blocks (everything after
	// the header); the header keeps its first 20 bytes. OpenCorpus compares
	// the header's copy, Corpus.Verify the digest of the data itself.
	SHA256 string `json:"sha256"`
	// HeaderCRC is the CRC-32C stored in the shard's header, which covers
	// the format, token count, index and digest: a shard swapped with
	// another of the corpus, or replaced by another cache of the same
	// format and length, fails the check at OpenCorpus. A shard whose
	// blocks were rewritten under an unchanged header (each with a valid
	// checksum) passes OpenCorpus; Corpus.Next fails at its last block,
	// Corpus.Verify before any block is used.
	HeaderCRC uint32 `json:"header_crc32c"`
}

// ShardWriter writes a corpus as shards of at most ShardTokens tokens
// each, and the manifest on Close. Each shard, and the manifest, is
// renamed into place only once complete.
type ShardWriter struct {
	dir    string
	f      Format
	per    int64
	cur    *Writer
	m      Manifest
	err    error
	closed bool
}

// CreateSharded starts a corpus in dir (created if needed) with format f
// and at most shardTokens tokens per shard.
func CreateSharded(dir string, f Format, shardTokens int64) (*ShardWriter, error) {
	f = f.withDefaults()
	if err := f.validate(); err != nil {
		return nil, fmt.Errorf("cache: %s: %v", dir, err)
	}
	if shardTokens < 1 {
		return nil, fmt.Errorf("cache: %s: %d tokens per shard, want ≥ 1", dir, shardTokens)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	return &ShardWriter{dir: dir, f: f, per: shardTokens, m: Manifest{Version: version, Format: f}}, nil
}

// Format returns the corpus format.
func (s *ShardWriter) Format() Format { return s.f }

// Tokens returns how many tokens have been written.
func (s *ShardWriter) Tokens() int64 { return s.m.Tokens }

// Write appends tokens as Writer.Write does, starting new shards as the
// current one fills.
func (s *ShardWriter) Write(ids []int32, logProbs []float32) error {
	if s.err != nil {
		return s.err
	}
	if s.closed {
		return errors.New("cache: write after Close")
	}
	if err := s.f.check(s.dir, s.m.Tokens, ids, logProbs); err != nil {
		return err // checked whole, so nothing of a bad call is written
	}
	k := s.f.K
	for len(ids) > 0 {
		if s.cur == nil {
			name := fmt.Sprintf("shard-%05d.ptc", len(s.m.Shards))
			w, err := create(filepath.Join(s.dir, name), s.f, uint32(len(s.m.Shards)))
			if err != nil {
				s.err = err
				return err
			}
			s.cur = w
			s.m.Shards = append(s.m.Shards, Shard{File: name, Index: len(s.m.Shards)})
		}
		c := int(min(int64(len(ids)/k), s.per-s.cur.Tokens())) * k
		var lp []float32
		if logProbs != nil {
			lp, logProbs = logProbs[:c], logProbs[c:]
		}
		if err := s.cur.Write(ids[:c], lp); err != nil {
			return err // a data error: nothing of this call's remainder is written
		}
		ids = ids[c:]
		s.m.Tokens += int64(c / k)
		if s.cur.Tokens() == s.per {
			if err := s.finishShard(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *ShardWriter) finishShard() error {
	w := s.cur
	s.cur = nil
	if err := w.Close(); err != nil {
		s.err = err
		return err
	}
	sh := &s.m.Shards[len(s.m.Shards)-1]
	sh.Tokens = w.Tokens()
	sh.SHA256 = w.Digest()
	sh.HeaderCRC = binary.LittleEndian.Uint32(encodeHeader(s.f, w.header())[60:])
	return nil
}

// Close finishes the last shard and writes the manifest.
func (s *ShardWriter) Close() error {
	if s.closed {
		return s.err
	}
	s.closed = true
	if s.err != nil {
		s.Abort()
		return s.err
	}
	if s.cur != nil {
		if err := s.finishShard(); err != nil {
			return err
		}
	}
	b, err := json.MarshalIndent(s.m, "", "  ")
	if err == nil {
		err = atomicfile.Write(filepath.Join(s.dir, ManifestName), append(b, '\n'))
	}
	if err != nil {
		s.err = fmt.Errorf("cache: %s: manifest: %w", s.dir, err)
	}
	return s.err
}

// Abort discards the shard being written; finished shards stay, but no
// manifest is written.
func (s *ShardWriter) Abort() {
	s.closed = true
	if s.cur != nil {
		s.cur.Abort()
		s.cur = nil
	}
	if s.err == nil {
		s.err = errors.New("cache: aborted")
	}
}

// Corpus streams the blocks of a sharded cache in order, across shards,
// holding one shard's map open at a time.
type Corpus struct {
	dir   string
	m     Manifest
	cur   *Reader
	shard int   // index of the next shard to open
	start int64 // first token of the current shard within the corpus
}

// OpenCorpus reads the manifest at path and checks, before any data is
// read, every shard's cheap invariants: that it exists, that its header
// matches the manifest (format, token count, index, content digest and
// header checksum), and that its size is the one its header implies. A
// missing, truncated, swapped or replaced shard, or token counts that do
// not add up, is an error naming the shard (errors.Is(err, ErrCorrupt) for
// all but a missing file). Corpus.Verify reads everything.
func OpenCorpus(path string) (*Corpus, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, corruptf("cache: manifest %s: %v", path, err)
	}
	if m.Version != version {
		return nil, corruptf("cache: manifest %s: version %d, this reader knows %d (re-create the cache)", path, m.Version, version)
	}
	if err := m.Format.validate(); err != nil {
		return nil, corruptf("cache: manifest %s: %v", path, err)
	}
	dir := filepath.Dir(path)
	var total int64
	for i, sh := range m.Shards {
		if err := checkShard(dir, m.Format, i, sh); err != nil {
			return nil, fmt.Errorf("cache: manifest %s: shard %d: %w", path, i, err)
		}
		if total += sh.Tokens; total < 0 || total > 1<<62 {
			return nil, corruptf("cache: manifest %s: shard %d: token count overflows", path, i)
		}
	}
	if total != m.Tokens {
		return nil, corruptf("cache: manifest %s: shards hold %d tokens, manifest says %d", path, total, m.Tokens)
	}
	return &Corpus{dir: dir, m: m}, nil
}

func checkShard(dir string, f Format, i int, sh Shard) error {
	if sh.File == "" || filepath.IsAbs(sh.File) || filepath.Base(sh.File) != sh.File {
		return corruptf("bad file name %q", sh.File)
	}
	if sh.Index != i {
		return corruptf("%s: index %d in the manifest, listed at %d", sh.File, sh.Index, i)
	}
	digest, err := hex.DecodeString(sh.SHA256)
	if err != nil || len(digest) != sha256.Size {
		return corruptf("%s: sha256 %q is not a SHA-256 in hex", sh.File, sh.SHA256)
	}
	file, err := os.Open(filepath.Join(dir, sh.File))
	if err != nil {
		return err
	}
	defer file.Close()
	var h [headerSize]byte
	if _, err := io.ReadFull(file, h[:]); err != nil {
		return corruptf("%s: header: %v", sh.File, err)
	}
	got, hd, err := decodeHeader(h[:])
	switch {
	case err != nil:
		return corruptf("%s: %v", sh.File, err)
	case got != f:
		return corruptf("%s: format %+v, manifest says %+v", sh.File, got, f)
	case hd.tokens != sh.Tokens:
		return corruptf("%s: %d tokens, manifest says %d", sh.File, hd.tokens, sh.Tokens)
	case int64(hd.index) != int64(i):
		return corruptf("%s: header says it is shard %d, the manifest lists it as shard %d", sh.File, hd.index, i)
	case !bytes.Equal(hd.digest[:], digest[:digestSize]):
		return corruptf("%s: content digest %x, manifest says %x: another file of the same format", sh.File, hd.digest, digest[:digestSize])
	case binary.LittleEndian.Uint32(h[60:]) != sh.HeaderCRC:
		return corruptf("%s: header checksum %08x, manifest says %08x", sh.File, binary.LittleEndian.Uint32(h[60:]), sh.HeaderCRC)
	}
	fi, err := file.Stat()
	if err != nil {
		return err
	}
	if want := f.fileSize(hd.tokens); fi.Size() != want {
		return corruptf("%s: %d bytes, its header implies %d (truncated or extended)", sh.File, fi.Size(), want)
	}
	return nil
}

// Verify reads every shard whole and checks every block's checksum, ids
// and log-probs, and each shard's content against the SHA-256 the manifest
// records — the check that catches a shard whose blocks were rewritten
// under an intact header. It returns the first failure, naming the shard,
// and does not move Next's position.
func (c *Corpus) Verify() error {
	for i, sh := range c.m.Shards {
		r, err := Open(filepath.Join(c.dir, sh.File))
		if err != nil {
			return fmt.Errorf("cache: shard %d: %w", i, err)
		}
		sum, err := r.verify()
		r.Close()
		if err != nil {
			return fmt.Errorf("cache: shard %d: %w", i, err)
		}
		if got := hex.EncodeToString(sum[:]); got != sh.SHA256 {
			return corruptf("cache: shard %d (%s): content SHA-256 %s, manifest says %s", i, sh.File, got, sh.SHA256)
		}
	}
	return nil
}

// Manifest returns the corpus manifest.
func (c *Corpus) Manifest() Manifest { return c.m }

// Next returns the corpus's next block, with Start counted from the
// corpus's first token, and io.EOF after the last. Each shard's content is
// checked against its digest as Reader.Next does: a forged shard is an
// error naming it at its last block, which is not returned.
func (c *Corpus) Next() (Block, error) {
	for {
		if c.cur != nil {
			b, err := c.cur.Next()
			if err == nil {
				b.Start += c.start
				return b, nil
			}
			if err != io.EOF {
				return Block{}, fmt.Errorf("cache: shard %d: %w", c.shard-1, err)
			}
			c.start += c.cur.Tokens()
			c.cur.Close()
			c.cur = nil
		}
		if c.shard >= len(c.m.Shards) {
			return Block{}, io.EOF
		}
		sh := c.m.Shards[c.shard]
		r, err := Open(filepath.Join(c.dir, sh.File))
		if err != nil {
			return Block{}, fmt.Errorf("cache: shard %d: %w", c.shard, err)
		}
		if r.Format() != c.m.Format || r.Tokens() != sh.Tokens || r.Index() != c.shard || hex.EncodeToString(r.hd.digest[:]) != sh.SHA256[:2*digestSize] {
			r.Close()
			return Block{}, corruptf("cache: shard %d (%s) changed since the corpus was opened", c.shard, sh.File)
		}
		c.cur = r
		c.shard++
	}
}

// Close releases the open shard.
func (c *Corpus) Close() error {
	if c.cur == nil {
		return nil
	}
	err := c.cur.Close()
	c.cur = nil
	return err
}

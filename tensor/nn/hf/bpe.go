package hf

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"
)

// bpe is the BPE model of a tokenizer.json: a vocabulary and a ranked list
// of merges. A word (one pre-token) starts as one symbol per character (per
// byte for byte-level tokenizers) and the adjacent pair of lowest rank is
// merged until no pair has a rank, exactly as the tokenizers crate does: a
// heap of candidate merges ordered by (rank, position), stale candidates
// skipped when popped, so a word of n symbols costs O(n log n) instead of
// the O(n²) rescan.
type bpe struct {
	vocab  map[string]int32
	merges map[uint64]merge // key: left id << 32 | right id

	// byteLevel: the words are raw bytes; byteID maps each byte to the id
	// of its byte-level character and rawVocab holds the vocabulary keyed
	// by the bytes the tokens stand for (for ignore_merges).
	byteLevel bool
	byteID    [256]int32
	rawVocab  map[string]int32

	byteFallback bool
	fallbackID   [256]int32 // <0xXX> tokens, -1 when absent
	unk          int32      // -1 without unk_token
	fuseUnk      bool
	ignoreMerges bool

	// chunkSep, when set, is the SentencePiece space "▁" and no merge joins
	// a token that ends in another character to one that starts with it:
	// no merge then crosses the boundary before a "▁" that follows another
	// character, so the word is merged chunk by chunk, each chunk cached,
	// with the same result. Llama 2 and Mistral layouts feed the model the
	// whole text as one word; this turns it back into words.
	chunkSep string

	cache wordCache
}

// wordCache maps words to their ids. Reads of a warm cache — the steady
// state, from any number of goroutines — look up an immutable snapshot
// map without a lock; new words wait in a small map under a mutex until
// they are published in a new snapshot, which happens after a number of
// additions proportional to the snapshot, so the copying stays linear
// overall. It holds at most cacheMax words.
type wordCache struct {
	snap    atomic.Pointer[map[string][]int32]
	mu      sync.Mutex
	pending map[string][]int32
	size    int // words in the snapshot
}

func (c *wordCache) get(word string) ([]int32, bool) {
	if m := c.snap.Load(); m != nil {
		if ids, ok := (*m)[word]; ok {
			return ids, true
		}
	}
	c.mu.Lock()
	ids, ok := c.pending[word]
	c.mu.Unlock()
	return ids, ok
}

func (c *wordCache) put(word string, ids []int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.size+len(c.pending) >= cacheMax {
		return
	}
	if c.pending == nil {
		c.pending = make(map[string][]int32)
	}
	c.pending[strings.Clone(word)] = ids
	if len(c.pending) < max(256, c.size/4) && c.size+len(c.pending) < cacheMax {
		return
	}
	m := make(map[string][]int32, c.size+len(c.pending))
	if old := c.snap.Load(); old != nil {
		for k, v := range *old {
			m[k] = v
		}
	}
	for k, v := range c.pending {
		m[k] = v
	}
	c.snap.Store(&m)
	c.size = len(m)
	c.pending = nil
}

type merge struct{ rank, id int32 }

// cacheMax bounds the number of cached words, and cacheWordMax the length
// of a word worth caching; the tokenizers crate uses similar limits.
const (
	cacheMax     = 1 << 16
	cacheWordMax = 256
)

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// symbol is one node of the doubly linked list a word is merged in.
type symbol struct {
	id         int32
	prev, next int32 // indices, -1 at the ends
	gone       bool
}

// candidate is a possible merge of the symbol at pos with its successor.
type candidate struct {
	rank, pos, id int32
}

// scratch holds the buffers of one tokenize call, pooled so that the hot
// path does not allocate.
type bpeScratch struct {
	syms []symbol
	heap []candidate
	ids  []int32
}

var scratchPool = sync.Pool{New: func() any { return new(bpeScratch) }}

// tokenize appends the ids of word to dst.
func (m *bpe) tokenize(dst []int32, word string) []int32 {
	if m.chunkSep != "" {
		lo := 0
		for i := 1; i < len(word); i++ {
			if strings.HasPrefix(word[i:], m.chunkSep) && !strings.HasSuffix(word[:i], m.chunkSep) && utf8.RuneStart(word[i]) {
				dst = m.tokenizeWord(dst, word[lo:i])
				lo = i
			}
		}
		return m.tokenizeWord(dst, word[lo:])
	}
	return m.tokenizeWord(dst, word)
}

// tokenizeWord appends the ids of word to dst, through the cache.
func (m *bpe) tokenizeWord(dst []int32, word string) []int32 {
	if len(word) == 0 {
		return dst
	}
	cacheable := len(word) <= cacheWordMax
	if cacheable {
		if ids, ok := m.cache.get(word); ok {
			return append(dst, ids...)
		}
	}
	n := len(dst)
	dst = m.word(dst, word)
	if cacheable {
		m.cache.put(word, slices.Clone(dst[n:]))
	}
	return dst
}

func (m *bpe) word(dst []int32, word string) []int32 {
	if m.ignoreMerges {
		v := m.vocab
		if m.byteLevel {
			v = m.rawVocab
		}
		if id, ok := v[word]; ok {
			return append(dst, id)
		}
	}
	s := scratchPool.Get().(*bpeScratch)
	defer scratchPool.Put(s)
	syms := s.syms[:0]
	push := func(id int32) {
		syms = append(syms, symbol{id: id, prev: int32(len(syms)) - 1, next: int32(len(syms)) + 1})
	}
	if m.byteLevel {
		for i := 0; i < len(word); i++ {
			if id := m.byteID[word[i]]; id >= 0 {
				push(id)
			} else if m.unk >= 0 && !(m.fuseUnk && len(syms) > 0 && syms[len(syms)-1].id == m.unk) {
				push(m.unk)
			}
		}
	} else {
		lastUnk := false
		for i := 0; i < len(word); {
			_, size := utf8.DecodeRuneInString(word[i:])
			ch := word[i : i+size]
			i += size
			if id, ok := m.vocab[ch]; ok {
				push(id)
				lastUnk = false
				continue
			}
			if m.byteFallback && m.hasFallback(ch) {
				for j := 0; j < len(ch); j++ {
					push(m.fallbackID[ch[j]])
				}
				lastUnk = false
				continue
			}
			if m.unk >= 0 && !(m.fuseUnk && lastUnk) {
				push(m.unk)
			}
			lastUnk = m.unk >= 0
		}
	}
	if len(syms) == 0 {
		s.syms = syms
		return dst
	}
	syms[len(syms)-1].next = -1

	h := s.heap[:0]
	for i := 0; i+1 < len(syms); i++ {
		if mg, ok := m.merges[pairKey(syms[i].id, syms[i+1].id)]; ok {
			h = heapPush(h, candidate{mg.rank, int32(i), mg.id})
		}
	}
	for len(h) > 0 {
		var c candidate
		c, h = heapPop(h)
		a := &syms[c.pos]
		if a.gone || a.next < 0 {
			continue
		}
		b := &syms[a.next]
		// The pair may have changed since the candidate was pushed.
		if mg, ok := m.merges[pairKey(a.id, b.id)]; !ok || mg.id != c.id || mg.rank != c.rank {
			continue
		}
		a.id = c.id
		b.gone = true
		a.next = b.next
		if a.next >= 0 {
			syms[a.next].prev = c.pos
			if mg, ok := m.merges[pairKey(a.id, syms[a.next].id)]; ok {
				h = heapPush(h, candidate{mg.rank, c.pos, mg.id})
			}
		}
		if a.prev >= 0 {
			p := &syms[a.prev]
			if mg, ok := m.merges[pairKey(p.id, a.id)]; ok {
				h = heapPush(h, candidate{mg.rank, a.prev, mg.id})
			}
		}
	}
	for i := int32(0); i >= 0; i = syms[i].next {
		dst = append(dst, syms[i].id)
	}
	s.syms, s.heap = syms, h
	return dst
}

// hasFallback reports whether every byte of ch has a <0xXX> token: the
// tokenizers crate falls back to bytes only then, and to unk otherwise.
func (m *bpe) hasFallback(ch string) bool {
	for j := 0; j < len(ch); j++ {
		if m.fallbackID[ch[j]] < 0 {
			return false
		}
	}
	return true
}

func candLess(a, b candidate) bool {
	return a.rank < b.rank || a.rank == b.rank && a.pos < b.pos
}

func heapPush(h []candidate, c candidate) []candidate {
	h = append(h, c)
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !candLess(h[i], h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
	return h
}

func heapPop(h []candidate) (candidate, []candidate) {
	top := h[0]
	n := len(h) - 1
	h[0] = h[n]
	h = h[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		j := l
		if r := l + 1; r < n && candLess(h[r], h[l]) {
			j = r
		}
		if !candLess(h[j], h[i]) {
			break
		}
		h[i], h[j] = h[j], h[i]
		i = j
	}
	return top, h
}

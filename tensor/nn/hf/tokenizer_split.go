package hf

import (
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
)

// A splitter finds the non-overlapping matches of a pattern in a string,
// left to right, as byte ranges appended to dst.
type splitter interface {
	matches(dst [][2]int, s string) [][2]int
}

// The patterns of the pre-tokenizers that nearly every byte-level model
// uses. Go's regexp (RE2) has neither the lookahead \s+(?!\S) nor, in this
// form, the case-insensitive group, so each has a hand-written matcher
// below, tested against the general engine (regexp2) in tokenizer_test.go.
const (
	// gpt2Pattern is the ByteLevel pre-tokenizer's own pattern (GPT-2,
	// RoBERTa, SmolLM, …).
	gpt2Pattern = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
	// llama3Pattern is Llama 3's Split pattern: numbers in groups of at
	// most three digits, contractions in any case.
	llama3Pattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	// qwen2Pattern is Qwen2's (and Qwen2.5's, Qwen3's): one digit a token.
	qwen2Pattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

// newRegexSplitter returns the matcher of an Oniguruma pattern (the engine
// the tokenizers crate compiles Split and Replace patterns with): a
// hand-written one for the patterns above, regexp2 for any other.
func newRegexSplitter(pattern string) (splitter, error) {
	switch pattern {
	case gpt2Pattern:
		return gpt2Splitter{}, nil
	case llama3Pattern:
		return llamaSplitter{maxDigits: 3}, nil
	case qwen2Pattern:
		return llamaSplitter{maxDigits: 1}, nil
	case o200kPattern:
		return o200kSplitter{}, nil
	}
	return newRegexp2Splitter(pattern)
}

func newRegexp2Splitter(pattern string) (*regexp2Splitter, error) {
	re, err := regexp2.Compile(pattern, regexp2.None)
	if err != nil {
		return nil, fmt.Errorf("pattern %q: %v", pattern, err)
	}
	// The patterns of tokenizers are linear in practice; the timeout turns
	// a pathological one into an error instead of a hang.
	re.MatchTimeout = 10 * time.Second
	return &regexp2Splitter{re: re}, nil
}

// regexp2Splitter runs a pattern through regexp2, a backtracking engine
// with .NET syntax, whose \s, \p{L}, \p{N}, lookaround and inline flags
// agree with Oniguruma's for the patterns tokenizers ship.
type regexp2Splitter struct{ re *regexp2.Regexp }

func (r *regexp2Splitter) matches(dst [][2]int, s string) [][2]int {
	if s == "" {
		return dst
	}
	runes := []rune(s)
	// regexp2 reports rune offsets; off maps them to byte offsets.
	off := make([]int, len(runes)+1)
	b := 0
	for i, c := range runes {
		off[i] = b
		if c == utf8.RuneError {
			// An invalid byte decodes to U+FFFD but spans one byte.
			_, size := utf8.DecodeRuneInString(s[b:])
			b += size
		} else {
			b += utf8.RuneLen(c)
		}
	}
	off[len(runes)] = b
	m, err := r.re.FindRunesMatch(runes)
	for err == nil && m != nil {
		if m.Length > 0 {
			dst = append(dst, [2]int{off[m.Index], off[m.Index+m.Length]})
		}
		m, err = r.re.FindNextMatch(m)
	}
	return dst
}

// literalSplitter matches a fixed string (a Split or Replace pattern given
// as {"String": …}).
type literalSplitter string

func (l literalSplitter) matches(dst [][2]int, s string) [][2]int {
	if l == "" {
		return dst
	}
	for i := 0; ; {
		j := strings.Index(s[i:], string(l))
		if j < 0 {
			return dst
		}
		dst = append(dst, [2]int{i + j, i + j + len(l)})
		i += j + len(l)
	}
}

// Character classes of the patterns, with Oniguruma's Unicode meanings:
// \s is White_Space, \p{L} a letter, \p{N} a number.
const (
	clsOther = iota
	clsLetter
	clsNumber
	clsSpace
)

// asciiClass holds the class of each ASCII byte.
var asciiClass = func() (t [128]uint8) {
	for c := range 128 {
		r := rune(c)
		switch {
		case unicode.IsLetter(r):
			t[c] = clsLetter
		case unicode.IsNumber(r):
			t[c] = clsNumber
		case unicode.Is(unicode.White_Space, r):
			t[c] = clsSpace
		default:
			t[c] = clsOther
		}
	}
	return t
}()

// class returns the class of the character at the start of s and its
// length in bytes. An invalid byte counts as one character of class
// other, as U+FFFD would.
func charClass(s string) (uint8, int) {
	if c := s[0]; c < utf8.RuneSelf {
		return asciiClass[c], 1
	}
	r, size := utf8.DecodeRuneInString(s)
	switch {
	case unicode.IsLetter(r):
		return clsLetter, size
	case unicode.IsNumber(r):
		return clsNumber, size
	case unicode.Is(unicode.White_Space, r):
		return clsSpace, size
	}
	return clsOther, size
}

// run returns the end of the run of characters of class c that starts at i.
func classRun(s string, i int, c uint8) int {
	for i < len(s) {
		k, size := charClass(s[i:])
		if k != c {
			break
		}
		i += size
	}
	return i
}

// spaceRun matches \s+(?!\S)|\s+ at i, which is a whitespace character:
// the whole run when it ends the text or is one character long, else the
// run less its last character (which then starts the next piece).
func spaceRun(s string, i int) int {
	end := classRun(s, i, clsSpace)
	if end == len(s) {
		return end
	}
	_, first := charClass(s[i:])
	if i+first == end {
		return end
	}
	_, last := utf8.DecodeLastRuneInString(s[:end])
	return end - last
}

// contraction matches 's 't 're 've 'm 'll 'd at i (s[i] is an apostrophe),
// case-insensitively in ASCII if fold, and returns the match length or 0.
func contraction(s string, i int, fold bool) int {
	lower := func(k int) byte {
		if i+k >= len(s) {
			return 0
		}
		c := s[i+k]
		if fold && 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		return c
	}
	switch lower(1) {
	case 's', 't', 'm', 'd':
		return 2
	case 'r', 'v':
		if lower(2) == 'e' {
			return 3
		}
	case 'l':
		if lower(2) == 'l' {
			return 3
		}
	}
	return 0
}

// A stepper is a splitter whose pattern matches at every position (each
// character is a letter, a number, whitespace or other, and each of these
// starts some alternative), so that the text splits into consecutive
// matches: next returns the end of the match that starts at i < len(s).
// Iterating with next spares the slice of matches.
type stepper interface {
	splitter
	next(s string, i int) int
}

func stepMatches(st stepper, dst [][2]int, s string) [][2]int {
	for i := 0; i < len(s); {
		end := st.next(s, i)
		dst = append(dst, [2]int{i, end})
		i = end
	}
	return dst
}

// gpt2Splitter matches gpt2Pattern.
type gpt2Splitter struct{}

func (g gpt2Splitter) matches(dst [][2]int, s string) [][2]int { return stepMatches(g, dst, s) }

func (gpt2Splitter) next(s string, i int) int {
	if s[i] == '\'' {
		if n := contraction(s, i, false); n > 0 {
			return i + n
		}
	}
	c, _ := charClass(s[i:])
	j := i
	if s[i] == ' ' && i+1 < len(s) {
		// " ?X+": the space joins a following run of letters, numbers or
		// others.
		if k, _ := charClass(s[i+1:]); k != clsSpace {
			c, j = k, i+1
		}
	}
	if c != clsSpace {
		return classRun(s, j, c)
	}
	return spaceRun(s, i)
}

// llamaSplitter matches llama3Pattern (maxDigits 3) and qwen2Pattern
// (maxDigits 1).
type llamaSplitter struct{ maxDigits int }

func (l llamaSplitter) matches(dst [][2]int, s string) [][2]int { return stepMatches(l, dst, s) }

func (l llamaSplitter) next(s string, i int) int {
	if s[i] == '\'' {
		if n := contraction(s, i, true); n > 0 {
			return i + n
		}
	}
	c, size := charClass(s[i:])
	if c == clsLetter {
		return classRun(s, i, clsLetter)
	}
	// [^\r\n\p{L}\p{N}]?\p{L}+: one character that is neither a line
	// break, a letter nor a number, then letters.
	if c != clsNumber && s[i] != '\r' && s[i] != '\n' && i+size < len(s) {
		if k, _ := charClass(s[i+size:]); k == clsLetter {
			return classRun(s, i+size, clsLetter)
		}
	}
	return numberOtherSpace(s, i, l.maxDigits, "\r\n")
}

// numberOtherSpace matches the alternatives that Llama 3's, Qwen2's and
// o200k's patterns end with, at i, which starts no word:
// \p{N}{1,maxDigits}| ?[^\s\p{L}\p{N}]+[trail]*|\s*[\r\n]+|\s+(?!\S)|\s+.
func numberOtherSpace(s string, i, maxDigits int, trail string) int {
	c, size := charClass(s[i:])
	if c == clsNumber {
		j := i + size
		for n := 1; n < maxDigits && j < len(s); n++ {
			k, sz := charClass(s[j:])
			if k != clsNumber {
				break
			}
			j += sz
		}
		return j
	}
	j := i
	if s[i] == ' ' && i+1 < len(s) {
		if k, _ := charClass(s[i+1:]); k == clsOther {
			j = i + 1
		}
	}
	if k, _ := charClass(s[j:]); k == clsOther {
		j = classRun(s, j, clsOther)
		for j < len(s) && strings.IndexByte(trail, s[j]) >= 0 {
			j++
		}
		return j
	}
	// A whitespace character. "\s*[\r\n]+": the run up to its last line
	// break, if it has one.
	end := classRun(s, i, clsSpace)
	for k := end - 1; k >= i; k-- {
		if s[k] == '\r' || s[k] == '\n' {
			return k + 1
		}
	}
	return spaceRun(s, i)
}

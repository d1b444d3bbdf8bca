package hf

import (
	"unicode"
	"unicode/utf8"
)

// o200kPattern is the pre-tokenizer pattern of OpenAI's o200k BPE (GPT-4o)
// as transformers converts tiktoken files: words split at case changes
// (an upper-case run, then lower-case letters), contractions glued to the
// word, numbers in groups of three, punctuation runs with the line breaks
// and slashes after them.
const o200kPattern = `[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`

// o200kSplitter matches o200kPattern.
type o200kSplitter struct{}

func (o o200kSplitter) matches(dst [][2]int, s string) [][2]int { return stepMatches(o, dst, s) }

// upperish is [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}], lowerish
// [\p{Ll}\p{Lm}\p{Lo}\p{M}]; the two overlap on Lm, Lo and M.
func upperish(r rune) bool {
	if r < utf8.RuneSelf {
		return 'A' <= r && r <= 'Z'
	}
	return unicode.In(r, unicode.Lu, unicode.Lt, unicode.Lm, unicode.Lo, unicode.M)
}

func lowerish(r rune) bool {
	if r < utf8.RuneSelf {
		return 'a' <= r && r <= 'z'
	}
	return unicode.In(r, unicode.Ll, unicode.Lm, unicode.Lo, unicode.M)
}

// runOf returns the end of the run of characters satisfying f from i.
func runOf(s string, i int, f func(rune) bool) int {
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		if !f(r) {
			break
		}
		i += size
	}
	return i
}

// prefixChar reports whether the character at i may be the optional
// [^\r\n\p{L}\p{N}] that starts the two word alternatives, and its size.
func prefixChar(s string, i int) (int, bool) {
	r, size := utf8.DecodeRuneInString(s[i:])
	if r == '\r' || r == '\n' || unicode.IsLetter(r) || unicode.IsNumber(r) {
		return 0, false
	}
	return size, true
}

// word1 matches [\p{Lu}…]*[\p{Ll}…]+ at j and returns its end or -1. The
// greedy upper-case run gives characters back until the lower-case run
// can start: it ends at the lower-case run after the upper-case one, or
// else one past the last character of the upper-case run that is also
// lower-case.
func word1(s string, j int) int {
	k := runOf(s, j, upperish)
	if k < len(s) {
		if r, _ := utf8.DecodeRuneInString(s[k:]); lowerish(r) {
			return runOf(s, k, lowerish)
		}
	}
	for t := k; t > j; {
		r, size := utf8.DecodeLastRuneInString(s[j:t])
		if lowerish(r) {
			return t
		}
		t -= size
	}
	return -1
}

// word2 matches [\p{Lu}…]+[\p{Ll}…]* at j and returns its end or -1.
func word2(s string, j int) int {
	k := runOf(s, j, upperish)
	if k == j {
		return -1
	}
	return runOf(s, k, lowerish)
}

func (o200kSplitter) next(s string, i int) int {
	size, pre := prefixChar(s, i)
	for _, word := range []func(string, int) int{word1, word2} {
		end := -1
		if pre {
			end = word(s, i+size)
		}
		if end < 0 {
			end = word(s, i)
		}
		if end >= 0 {
			if end < len(s) && s[end] == '\'' {
				end += contraction(s, end, true)
			}
			return end
		}
	}
	return numberOtherSpace(s, i, 3, "\r\n/")
}

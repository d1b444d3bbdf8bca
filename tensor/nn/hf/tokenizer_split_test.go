package hf

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// splitAlphabet mixes the characters the three patterns tell apart:
// letters of several scripts and cases, numbers of each category, each
// kind of whitespace, line breaks, apostrophes and the letters of the
// contractions, punctuation, a combining mark, an emoji, a format
// character and an invalid byte.
var splitAlphabet = []string{
	"a", "Z", "é", "ß", "中", "ſ", "K", "1", "٣", "½", "Ⅻ",
	" ", " ", " ", "\t", "\n", "\r", "\r\n", "\u00a0", "\u3000", "\u2028", "\u0085", "\u000b", "\u000c",
	"'", "'", "s", "S", "t", "r", "R", "e", "E", "v", "m", "l", "L", "d", "D",
	"!", ".", ",", "\u0301", "😀", "\u200b", "\xff",
	"ǅ", "ʰ", "ا", "\u0903", "/", "A", "b", "Σ", "σ", "'S", "'ll",
}

// hand-written matcher ↔ the general engine on the same pattern.
var splitPatterns = []struct {
	name    string
	pattern string
	hand    splitter
}{
	{"gpt2", gpt2Pattern, gpt2Splitter{}},
	{"llama3", llama3Pattern, llamaSplitter{maxDigits: 3}},
	{"qwen2", qwen2Pattern, llamaSplitter{maxDigits: 1}},
	{"o200k", o200kPattern, o200kSplitter{}},
}

var splitRegexps = func() []*regexp2Splitter {
	var res []*regexp2Splitter
	for _, p := range splitPatterns {
		re, err := newRegexp2Splitter(p.pattern)
		if err != nil {
			panic(err)
		}
		res = append(res, re)
	}
	return res
}()

func checkSplit(t *testing.T, s string) {
	t.Helper()
	for i, p := range splitPatterns {
		want := splitRegexps[i].matches(nil, s)
		got := p.hand.matches(nil, s)
		if !slices.Equal(got, want) {
			t.Fatalf("%s on %q:\n got %v\nwant %v", p.name, s, pieces(s, got), pieces(s, want))
		}
	}
}

func pieces(s string, ms [][2]int) []string {
	var out []string
	for _, m := range ms {
		out = append(out, s[m[0]:m[1]])
	}
	return out
}

func TestSplitMatchersEqualRegexp2(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 3000 {
		var b strings.Builder
		for range r.IntN(24) {
			b.WriteString(splitAlphabet[r.IntN(len(splitAlphabet))])
		}
		checkSplit(t, b.String())
	}
	g := loadGoldens(t)
	for _, s := range g.Texts {
		checkSplit(t, s)
	}
}

func FuzzSplitMatchers(f *testing.F) {
	for _, s := range []string{"", "I'm  here\r\n\n  x", "12345 'LL ſ", "a\u00a0 b\u3000\u3000c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkSplit(t, s)
	})
}

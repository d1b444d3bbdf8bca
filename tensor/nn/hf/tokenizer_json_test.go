package hf

import (
	"encoding/json"
	"maps"
	"slices"
	"testing"
)

// checkParse compares parseVocab and parseMerges with encoding/json on b.
func checkParse(t *testing.T, b []byte) {
	t.Helper()
	var wantV map[string]int32
	errV := json.Unmarshal(b, &wantV)
	gotV, err := parseVocab(b)
	if (err == nil) != (errV == nil) || err == nil && !maps.Equal(gotV, wantV) {
		t.Fatalf("vocab %q: %v, %v; encoding/json %v, %v", b, gotV, err, wantV, errV)
	}
	var strs []string
	var want [][2]string
	errM := json.Unmarshal(b, &strs)
	if errM == nil {
		want = splitMerges(strs)
	} else {
		errM = json.Unmarshal(b, &want)
	}
	got, err := parseMerges(b)
	if (err == nil) != (errM == nil) || err == nil && !slices.Equal(got, want) {
		t.Fatalf("merges %q: %q, %v; encoding/json %q, %v", b, got, err, want, errM)
	}
}

func TestParseVocabMerges(t *testing.T) {
	for _, s := range []string{
		`{}`, `[]`, ` { "a" : 1 , "b":2 } `, `{"a": 1, "a": 2}`, `{"\u0120the": 3, "\ud83d\ude00": 4, "\ud800x": 5, "\\\/\"\b\f\n\r\t": 6}`,
		`{"a": -1}`, `{"a": 1.0}`, `{"a": 1e3}`, `{"a": 01}`, `{"a": 99999999999}`, `{"a": 1,}`, `{"a" 1}`, `{"a": 1} x`,
		`["a b", "Ġ t"]`, `[["a", "b"], ["Ġ", "t"]]`, `["a b", ["c", "d"]]`, `[["a"]]`, `["ab"]`, `["a b",]`, `[1]`,
		"{\"\xff\": 1}", "[\"a\x01 b\"]", `{"a`, `[`, ``,
	} {
		checkParse(t, []byte(s))
	}
	// The fixtures' vocabularies and merges go through the scanner on every
	// LoadTokenizer of the golden tests.
}

func FuzzParseVocab(f *testing.F) {
	for _, s := range []string{`{"a": 1, "\u00e9": 2}`, `["a b", "c d"]`, `[["a", "b"]]`, `{"\ud83d\ude00": 4}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkParse(t, b)
	})
}

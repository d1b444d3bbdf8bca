package hf

import (
	"encoding/json"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// A model's vocabulary and merges are most of a tokenizer.json (280 000
// merges for Llama 3). parseVocab and parseMerges read them with a scanner
// for exactly their shapes, several times faster than encoding/json's
// reflection; anything else — malformed JSON included — goes to
// encoding/json, whose result and errors are the reference
// (FuzzParseVocab checks that both agree).

// jsonScanner reads a JSON text left to right.
type jsonScanner struct {
	b []byte
	i int
}

func (s *jsonScanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// byte consumes c after optional whitespace.
func (s *jsonScanner) byte(c byte) bool {
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// str reads a string.
func (s *jsonScanner) str() (string, bool) {
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return "", false
	}
	s.i++
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			v := s.b[start:s.i]
			s.i++
			if !utf8.Valid(v) {
				return "", false // encoding/json substitutes U+FFFD; let it
			}
			return string(v), true
		case c == '\\':
			return s.strEscaped(start)
		case c < 0x20:
			return "", false
		}
		s.i++
	}
	return "", false
}

// strEscaped finishes a string that has escapes, from its start.
func (s *jsonScanner) strEscaped(start int) (string, bool) {
	out := append([]byte(nil), s.b[start:s.i]...)
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			if !utf8.Valid(out) {
				return "", false
			}
			return string(out), true
		case c < 0x20:
			return "", false
		case c != '\\':
			out = append(out, c)
			s.i++
			continue
		}
		if s.i+1 >= len(s.b) {
			return "", false
		}
		e := s.b[s.i+1]
		s.i += 2
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := s.hex4()
			if !ok {
				return "", false
			}
			if utf16.IsSurrogate(r) {
				r = s.lowSurrogate(r)
			}
			out = utf8.AppendRune(out, r)
		default:
			return "", false
		}
	}
	return "", false
}

// lowSurrogate completes the high surrogate hi with a following \uXXXX
// low one, or returns U+FFFD for a lone half, as encoding/json does.
func (s *jsonScanner) lowSurrogate(hi rune) rune {
	if s.i+6 <= len(s.b) && s.b[s.i] == '\\' && s.b[s.i+1] == 'u' {
		save := s.i
		s.i += 2
		if lo, ok := s.hex4(); ok {
			if d := utf16.DecodeRune(hi, lo); d != utf8.RuneError {
				return d
			}
		}
		s.i = save
	}
	return utf8.RuneError
}

func (s *jsonScanner) hex4() (rune, bool) {
	if s.i+4 > len(s.b) {
		return 0, false
	}
	v, err := strconv.ParseUint(string(s.b[s.i:s.i+4]), 16, 32)
	if err != nil {
		return 0, false
	}
	s.i += 4
	return rune(v), true
}

// int32 reads a non-negative integer that fits an int32.
func (s *jsonScanner) int32() (int32, bool) {
	s.ws()
	start := s.i
	for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
		s.i++
	}
	n := s.i - start
	if n == 0 || n > 10 || n > 1 && s.b[start] == '0' {
		return 0, false
	}
	if s.i < len(s.b) && (s.b[s.i] == '.' || s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		return 0, false
	}
	v, err := strconv.ParseInt(string(s.b[start:s.i]), 10, 32)
	return int32(v), err == nil
}

func (s *jsonScanner) end() bool {
	s.ws()
	return s.i == len(s.b)
}

// parseVocab reads {"token": id, …}.
func parseVocab(raw []byte) (map[string]int32, error) {
	if v, ok := fastVocab(raw); ok {
		return v, nil
	}
	var v map[string]int32
	err := json.Unmarshal(raw, &v)
	return v, err
}

func fastVocab(raw []byte) (map[string]int32, bool) {
	s := &jsonScanner{b: raw}
	if !s.byte('{') {
		return nil, false
	}
	v := make(map[string]int32, len(raw)/16)
	if s.byte('}') {
		return v, s.end()
	}
	for {
		k, ok := s.str()
		if !ok || !s.byte(':') {
			return nil, false
		}
		id, ok := s.int32()
		if !ok {
			return nil, false
		}
		v[k] = id
		if s.byte('}') {
			return v, s.end()
		}
		if !s.byte(',') {
			return nil, false
		}
	}
}

// parseMerges reads ["a b", …] (tokenizers < 0.20) or [["a", "b"], …].
// A string merge that is not two tokens is returned whole in p[0] with an
// empty p[1] for the caller to report.
func parseMerges(raw []byte) ([][2]string, error) {
	if m, ok := fastMerges(raw); ok {
		return m, nil
	}
	var strs []string
	if err := json.Unmarshal(raw, &strs); err == nil {
		return splitMerges(strs), nil
	}
	var pairs [][2]string
	err := json.Unmarshal(raw, &pairs)
	return pairs, err
}

func splitMerges(strs []string) [][2]string {
	pairs := make([][2]string, len(strs))
	for i, str := range strs {
		a, b, ok := cutSpace(str)
		if !ok {
			a, b = str, ""
		}
		pairs[i] = [2]string{a, b}
	}
	return pairs
}

// cutSpace splits a merge "a b" at its space; tokens never contain one
// (byte-level ones write it Ġ, SentencePiece ones ▁).
func cutSpace(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == ' ' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func fastMerges(raw []byte) ([][2]string, bool) {
	s := &jsonScanner{b: raw}
	if !s.byte('[') {
		return nil, false
	}
	pairs := make([][2]string, 0, len(raw)/12)
	if s.byte(']') {
		return pairs, s.end()
	}
	s.ws()
	asPairs := s.i < len(s.b) && s.b[s.i] == '['
	for {
		if asPairs {
			if !s.byte('[') {
				return nil, false
			}
			a, ok1 := s.str()
			ok2 := s.byte(',')
			b, ok3 := s.str()
			if !ok1 || !ok2 || !ok3 || !s.byte(']') {
				return nil, false
			}
			pairs = append(pairs, [2]string{a, b})
		} else {
			str, ok := s.str()
			if !ok {
				return nil, false
			}
			a, b, ok := cutSpace(str)
			if !ok {
				a, b = str, ""
			}
			pairs = append(pairs, [2]string{a, b})
		}
		if s.byte(']') {
			return pairs, s.end()
		}
		if !s.byte(',') {
			return nil, false
		}
	}
}

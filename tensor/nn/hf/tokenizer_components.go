package hf

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// typed reads the "type" that every component of a tokenizer.json carries.
type typed struct {
	Type string `json:"type"`
}

// pattern is a Split or Replace pattern: {"String": …} or {"Regex": …}.
type pattern struct {
	String *string `json:"String"`
	Regex  *string `json:"Regex"`
}

func (p pattern) splitter() (splitter, error) {
	switch {
	case p.String != nil:
		return literalSplitter(*p.String), nil
	case p.Regex != nil:
		return newRegexSplitter(*p.Regex)
	}
	return nil, fmt.Errorf("pattern has neither String nor Regex")
}

func jsonNull(raw json.RawMessage) bool {
	s := strings.TrimSpace(string(raw))
	return s == "" || s == "null"
}

// ---- normalizers ----

// A normalizer rewrites a piece of text before pre-tokenization.
type normalizer func(s string) string

func parseNormalizer(raw json.RawMessage) (normalizer, error) {
	if jsonNull(raw) {
		return nil, nil
	}
	var c typed
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, err
	}
	switch c.Type {
	case "Sequence":
		var v struct{ Normalizers []json.RawMessage }
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, err
		}
		var seq []normalizer
		for i, r := range v.Normalizers {
			n, err := parseNormalizer(r)
			if err != nil {
				return nil, fmt.Errorf("Sequence[%d]: %w", i, err)
			}
			if n != nil {
				seq = append(seq, n)
			}
		}
		return func(s string) string {
			for _, n := range seq {
				s = n(s)
			}
			return s
		}, nil
	case "NFC":
		return norm.NFC.String, nil
	case "NFD":
		return norm.NFD.String, nil
	case "NFKC":
		return norm.NFKC.String, nil
	case "NFKD":
		return norm.NFKD.String, nil
	case "Lowercase":
		return lowercase, nil
	case "Prepend":
		var v struct{ Prepend string }
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, err
		}
		return func(s string) string {
			if s == "" {
				return s
			}
			return v.Prepend + s
		}, nil
	case "Replace":
		var v struct {
			Pattern pattern
			Content string
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, err
		}
		sp, err := v.Pattern.splitter()
		if err != nil {
			return nil, fmt.Errorf("Replace: %w", err)
		}
		return func(s string) string { return replaceAll(sp, s, v.Content) }, nil
	}
	return nil, fmt.Errorf("unsupported normalizer %q", c.Type)
}

// lowercase lowercases s character by character with the full Unicode
// mapping, as Rust's char::to_lowercase does for the crate's Lowercase
// normalizer: Go's simple mapping differs only for U+0130 (İ), whose full
// lowercase is "i\u0307" (the context-dependent final sigma is not applied
// by either).
func lowercase(s string) string {
	if strings.ContainsRune(s, '\u0130') {
		s = strings.ReplaceAll(s, "\u0130", "i\u0307")
	}
	return strings.ToLower(s)
}

func replaceAll(sp splitter, s, content string) string {
	if l, ok := sp.(literalSplitter); ok {
		if l == "" {
			return s
		}
		return strings.ReplaceAll(s, string(l), content)
	}
	ms := sp.matches(nil, s)
	if len(ms) == 0 {
		return s
	}
	var b strings.Builder
	last := 0
	for _, m := range ms {
		b.WriteString(s[last:m[0]])
		b.WriteString(content)
		last = m[1]
	}
	b.WriteString(s[last:])
	return b.String()
}

// ---- pre-tokenizers ----

// piece is a part of the text on its way to the model; first marks the
// piece that starts the input (Metaspace's prepend_scheme "first").
type piece struct {
	s     string
	first bool
}

// A preTokenizer splits each piece into smaller ones, appending to dst.
type preTokenizer interface {
	split(dst []piece, p piece) []piece
}

// parsePreTokenizer parses a pre-tokenizer. byteLevel reports a ByteLevel
// step, which must come last: the model then reads the pieces as bytes.
func parsePreTokenizer(raw json.RawMessage) (steps []preTokenizer, byteLevel bool, err error) {
	if jsonNull(raw) {
		return nil, false, nil
	}
	var c typed
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, false, err
	}
	switch c.Type {
	case "Sequence":
		var v struct{ Pretokenizers []json.RawMessage }
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, false, err
		}
		for i, r := range v.Pretokenizers {
			if byteLevel {
				return nil, false, fmt.Errorf("Sequence[%d]: a pre-tokenizer after ByteLevel is not supported", i)
			}
			s, bl, err := parsePreTokenizer(r)
			if err != nil {
				return nil, false, fmt.Errorf("Sequence[%d]: %w", i, err)
			}
			steps = append(steps, s...)
			byteLevel = bl
		}
		return steps, byteLevel, nil
	case "ByteLevel":
		var v struct {
			AddPrefixSpace bool  `json:"add_prefix_space"`
			UseRegex       *bool `json:"use_regex"`
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, false, err
		}
		if v.AddPrefixSpace {
			steps = append(steps, prefixSpace{})
		}
		if v.UseRegex == nil || *v.UseRegex {
			steps = append(steps, &splitPre{sp: gpt2Splitter{}, behavior: "Isolated"})
		}
		return steps, true, nil
	case "Split":
		var v struct {
			Pattern  pattern
			Behavior string
			Invert   bool
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, false, err
		}
		sp, err := v.Pattern.splitter()
		if err != nil {
			return nil, false, fmt.Errorf("Split: %w", err)
		}
		switch v.Behavior {
		case "Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous":
		default:
			return nil, false, fmt.Errorf("Split: unsupported behavior %q", v.Behavior)
		}
		return []preTokenizer{&splitPre{sp: sp, behavior: v.Behavior, invert: v.Invert}}, false, nil
	case "Metaspace":
		var v struct {
			Replacement    string
			PrependScheme  *string `json:"prepend_scheme"`
			AddPrefixSpace *bool   `json:"add_prefix_space"` // before tokenizers 0.19
			Split          *bool
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, false, err
		}
		if utf8.RuneCountInString(v.Replacement) != 1 {
			return nil, false, fmt.Errorf("Metaspace: replacement %q is not one character", v.Replacement)
		}
		m := metaspace{rep: v.Replacement, scheme: "always", splits: v.Split == nil || *v.Split}
		switch {
		case v.PrependScheme != nil:
			m.scheme = *v.PrependScheme
		case v.AddPrefixSpace != nil && !*v.AddPrefixSpace:
			m.scheme = "never"
		}
		switch m.scheme {
		case "always", "first", "never":
		default:
			return nil, false, fmt.Errorf("Metaspace: unsupported prepend_scheme %q", m.scheme)
		}
		return []preTokenizer{m}, false, nil
	case "Digits":
		var v struct {
			IndividualDigits bool `json:"individual_digits"`
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, false, err
		}
		b := "Contiguous"
		if v.IndividualDigits {
			b = "Isolated"
		}
		return []preTokenizer{&splitPre{sp: digitSplitter{}, behavior: b}}, false, nil
	}
	return nil, false, fmt.Errorf("unsupported pre-tokenizer %q", c.Type)
}

// prefixSpace is ByteLevel's add_prefix_space.
type prefixSpace struct{}

func (prefixSpace) split(dst []piece, p piece) []piece {
	if !strings.HasPrefix(p.s, " ") {
		p.s = " " + p.s
	}
	return append(dst, p)
}

// split is the Split pre-tokenizer: the matches of a pattern and the text
// between them become pieces as behavior says.
type splitPre struct {
	sp       splitter
	behavior string
	invert   bool
}

func (sp *splitPre) split(dst []piece, p piece) []piece {
	ms := sp.sp.matches(nil, p.s)
	// parts alternate: text between matches (delim false) and matches.
	type part struct {
		lo, hi int
		delim  bool
	}
	var parts []part
	last := 0
	for _, m := range ms {
		if m[0] > last {
			parts = append(parts, part{last, m[0], sp.invert})
		}
		parts = append(parts, part{m[0], m[1], !sp.invert})
		last = m[1]
	}
	if last < len(p.s) {
		parts = append(parts, part{last, len(p.s), sp.invert})
	}
	emit := func(lo, hi int) {
		if hi > lo {
			dst = append(dst, piece{s: p.s[lo:hi], first: p.first && lo == 0})
		}
	}
	switch sp.behavior {
	case "Isolated":
		for _, q := range parts {
			emit(q.lo, q.hi)
		}
	case "Removed":
		for _, q := range parts {
			if !q.delim {
				emit(q.lo, q.hi)
			}
		}
	case "MergedWithPrevious":
		lo := 0
		for i, q := range parts {
			if q.delim || i+1 == len(parts) || !parts[i+1].delim {
				emit(lo, q.hi)
				lo = q.hi
			}
		}
	case "MergedWithNext":
		// A delimiter joins the piece after it unless that is another
		// delimiter.
		lo := 0
		for i, q := range parts {
			if q.delim && i+1 < len(parts) && !parts[i+1].delim {
				continue
			}
			emit(lo, q.hi)
			lo = q.hi
		}
	case "Contiguous":
		lo := 0
		for i, q := range parts {
			if i+1 == len(parts) || parts[i+1].delim != q.delim {
				emit(lo, q.hi)
				lo = q.hi
			}
		}
	}
	return dst
}

// digitSplitter matches each numeric character (Rust's char::is_numeric).
type digitSplitter struct{}

func (digitSplitter) matches(dst [][2]int, s string) [][2]int {
	for i, r := range s {
		if unicode.IsNumber(r) {
			dst = append(dst, [2]int{i, i + utf8.RuneLen(r)})
		}
	}
	return dst
}

// metaspace replaces spaces by the replacement character (▁), prepends one
// as prepend_scheme says, and splits before each one if split.
type metaspace struct {
	rep    string
	scheme string
	splits bool
}

func (m metaspace) split(dst []piece, p piece) []piece {
	s := strings.ReplaceAll(p.s, " ", m.rep)
	if (m.scheme == "always" || m.scheme == "first" && p.first) && !strings.HasPrefix(s, m.rep) {
		s = m.rep + s
	}
	if !m.splits {
		return append(dst, piece{s: s, first: p.first})
	}
	lo := 0
	for {
		j := strings.Index(s[lo+min(1, len(s)-lo):], m.rep)
		if j < 0 {
			break
		}
		j += lo + min(1, len(s)-lo)
		if j > lo {
			dst = append(dst, piece{s: s[lo:j], first: p.first && lo == 0})
		}
		lo = j
	}
	if lo < len(s) {
		dst = append(dst, piece{s: s[lo:], first: p.first && lo == 0})
	}
	return dst
}

// ---- decoders ----

// A decoder turns the tokens of the ids into text pieces; the decoded text
// is their concatenation.
type decoder func(tokens []string) []string

func parseDecoder(raw json.RawMessage) (decoder, error) {
	if jsonNull(raw) {
		return nil, nil
	}
	var c typed
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, err
	}
	switch c.Type {
	case "Sequence":
		var v struct{ Decoders []json.RawMessage }
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, err
		}
		var seq []decoder
		for i, r := range v.Decoders {
			d, err := parseDecoder(r)
			if err != nil {
				return nil, fmt.Errorf("Sequence[%d]: %w", i, err)
			}
			if d != nil {
				seq = append(seq, d)
			}
		}
		return func(t []string) []string {
			for _, d := range seq {
				t = d(t)
			}
			return t
		}, nil
	case "ByteLevel":
		return decodeByteLevel, nil
	case "ByteFallback":
		return decodeByteFallback, nil
	case "Fuse":
		return func(t []string) []string { return []string{strings.Join(t, "")} }, nil
	case "Replace":
		var v struct {
			Pattern pattern
			Content string
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, err
		}
		sp, err := v.Pattern.splitter()
		if err != nil {
			return nil, fmt.Errorf("Replace: %w", err)
		}
		return func(t []string) []string {
			for i := range t {
				t[i] = replaceAll(sp, t[i], v.Content)
			}
			return t
		}, nil
	case "Strip":
		var v struct {
			Content     string
			Start, Stop int
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, err
		}
		if utf8.RuneCountInString(v.Content) != 1 {
			return nil, fmt.Errorf("Strip: content %q is not one character", v.Content)
		}
		return func(t []string) []string {
			for i := range t {
				t[i] = strip(t[i], v.Content, v.Start, v.Stop)
			}
			return t
		}, nil
	case "Metaspace":
		var v struct {
			Replacement    string
			PrependScheme  *string `json:"prepend_scheme"`
			AddPrefixSpace *bool   `json:"add_prefix_space"`
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, err
		}
		drop := !(v.PrependScheme != nil && *v.PrependScheme == "never" ||
			v.PrependScheme == nil && v.AddPrefixSpace != nil && !*v.AddPrefixSpace)
		// As the tokenizers crate does (tokenizers.js differs): in the
		// first token every replacement character is dropped, not only the
		// one the pre-tokenizer prepended.
		return func(t []string) []string {
			for i := range t {
				rep := " "
				if i == 0 && drop {
					rep = ""
				}
				t[i] = strings.ReplaceAll(t[i], v.Replacement, rep)
			}
			return t
		}, nil
	}
	return nil, fmt.Errorf("unsupported decoder %q", c.Type)
}

// strip removes up to start leading and stop trailing copies of c.
func strip(s, c string, start, stop int) string {
	for ; start > 0 && strings.HasPrefix(s, c); start-- {
		s = s[len(c):]
	}
	for ; stop > 0 && strings.HasSuffix(s, c); stop-- {
		s = s[:len(s)-len(c)]
	}
	return s
}

// decodeByteFallback turns runs of <0xXX> tokens into their bytes: the
// text they spell when it is valid UTF-8, else one U+FFFD per byte.
func decodeByteFallback(t []string) []string {
	out := t[:0:0]
	var run []byte
	flush := func() {
		if len(run) == 0 {
			return
		}
		if utf8.Valid(run) {
			out = append(out, string(run))
		} else {
			for range run {
				out = append(out, "\uFFFD")
			}
		}
		run = run[:0]
	}
	for _, tok := range t {
		if b, ok := fallbackByte(tok); ok {
			run = append(run, b)
			continue
		}
		flush()
		out = append(out, tok)
	}
	flush()
	return out
}

func fallbackByte(tok string) (byte, bool) {
	if len(tok) != 6 || tok[:3] != "<0x" || tok[5] != '>' {
		return 0, false
	}
	hi, ok1 := unhex(tok[3])
	lo, ok2 := unhex(tok[4])
	return hi<<4 | lo, ok1 && ok2
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// decodeByteLevel maps the characters of the tokens back to the bytes they
// stand for (a token with a character outside the byte alphabet, such as
// an added token, contributes its own UTF-8) and reads the bytes as UTF-8,
// an invalid sequence becoming U+FFFD.
func decodeByteLevel(t []string) []string {
	var b []byte
	for _, tok := range t {
		n := len(b)
		ok := true
		for _, r := range tok {
			if int(r) >= len(unicodeToByte) || unicodeToByte[r] < 0 {
				ok = false
				break
			}
			b = append(b, byte(unicodeToByte[r]))
		}
		if !ok {
			b = append(b[:n], tok...)
		}
	}
	return []string{lossy(b)}
}

// byteToUnicode is GPT-2's map from bytes to printable characters: the
// printable Latin-1 bytes stand for themselves, the others for 256, 257, ….
var byteToUnicode, unicodeToByte = func() (fwd [256]rune, back [324]int16) {
	for i := range back {
		back[i] = -1
	}
	n := 0
	for b := range 256 {
		if '!' <= b && b <= '~' || '¡' <= b && b <= '¬' || '®' <= b && b <= 'ÿ' {
			fwd[b] = rune(b)
		} else {
			fwd[b] = rune(256 + n)
			n++
		}
		back[fwd[b]] = int16(b)
	}
	return fwd, back
}()

// lossy reads b as UTF-8, replacing each maximal ill-formed subpart with
// one U+FFFD, as Rust's String::from_utf8_lossy and the WHATWG decoder do
// (Go's strings.ToValidUTF8 would fold a whole run into one).
func lossy(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var out strings.Builder
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r != utf8.RuneError || size > 1 {
			out.Write(b[i : i+size])
			i += size
			continue
		}
		out.WriteString("\uFFFD")
		i += 1 + validPrefix(b[i:])
	}
	return out.String()
}

// validPrefix returns how many continuation bytes after b[0] still form
// the prefix of a well-formed sequence (Unicode table 3-7).
func validPrefix(b []byte) int {
	lo, hi, n := byte(0x80), byte(0xBF), 0
	switch c := b[0]; {
	case 0xC2 <= c && c <= 0xDF:
		n = 1
	case c == 0xE0:
		lo, n = 0xA0, 2
	case c == 0xED:
		hi, n = 0x9F, 2
	case 0xE1 <= c && c <= 0xEF:
		n = 2
	case c == 0xF0:
		lo, n = 0x90, 3
	case 0xF1 <= c && c <= 0xF3:
		n = 3
	case c == 0xF4:
		hi, n = 0x8F, 3
	}
	k := 0
	for ; k < n && 1+k < len(b); k++ {
		c := b[1+k]
		if c < lo || c > hi {
			break
		}
		lo, hi = 0x80, 0xBF
	}
	return k
}

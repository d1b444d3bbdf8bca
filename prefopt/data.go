package prefopt

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// Pair is one preference example: a prompt, the preferred (chosen) and the
// dispreferred (rejected) response, and optionally how strongly the chosen
// one was preferred.
//
// As JSONL, one object per line (TRL's standard preference format, plus an
// optional level):
//
//	{"prompt": "…", "chosen": "…", "rejected": "…", "level": "slightly_better"}
//
// prompt, chosen and rejected are required strings; chosen and rejected
// must be non-empty. level is optional: absent, null or "" means Unlabeled;
// otherwise one of "significantly_better", "better", "slightly_better",
// "negligibly_better" (AFM's four levels, soft labels 0.95, 0.85, 0.75,
// 0.65). Other fields are ignored on reading, but no key may repeat and
// every string must be valid UTF-8.
type Pair struct {
	Prompt, Chosen, Rejected string
	Level                    Level
}

// Writer writes Pairs, or prompts for online RL, as JSONL: one object and
// one Write call to the underlying writer per line. Wrap the destination in
// a bufio.Writer for many small lines, and flush it when done.
type Writer struct {
	w     io.Writer
	lines int // lines written
}

// NewWriter returns a Writer that writes lines to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

type pairJSON struct {
	Prompt   string `json:"prompt"`
	Chosen   string `json:"chosen"`
	Rejected string `json:"rejected"`
	Level    Level  `json:"level,omitzero"`
}

// Write writes p as one line. A Pair the Reader would reject (empty chosen
// or rejected, an invalid level, invalid UTF-8 in a field — which JSON
// encoding would otherwise turn into U+FFFD silently) is an error and
// nothing is written; the UTF-8 error is a *LineError naming the line it
// would have been and the field.
func (w *Writer) Write(p Pair) error {
	if err := w.checkUTF8("prompt", p.Prompt, "chosen", p.Chosen, "rejected", p.Rejected); err != nil {
		return err
	}
	if p.Chosen == "" {
		return errors.New("prefopt: Writer: empty chosen response")
	}
	if p.Rejected == "" {
		return errors.New("prefopt: Writer: empty rejected response")
	}
	if p.Level != Unlabeled && !p.Level.Valid() {
		return fmt.Errorf("prefopt: Writer: invalid Level(%d)", uint8(p.Level))
	}
	return w.line(pairJSON{p.Prompt, p.Chosen, p.Rejected, p.Level})
}

// WritePrompt writes a prompt-only line, {"prompt": "…"}, the input format
// of online RL (see PromptReader). An empty prompt is an error.
func (w *Writer) WritePrompt(prompt string) error {
	if prompt == "" {
		return errors.New("prefopt: Writer: empty prompt")
	}
	if err := w.checkUTF8("prompt", prompt); err != nil {
		return err
	}
	return w.line(struct {
		Prompt string `json:"prompt"`
	}{prompt})
}

// checkUTF8 takes field names and values in turn and returns a *LineError
// for the first value that is not valid UTF-8 (JSON encoding would turn it
// into U+FFFD silently), naming the line it would have been written as.
func (w *Writer) checkUTF8(nameValue ...string) error {
	for i := 0; i+1 < len(nameValue); i += 2 {
		if !utf8.ValidString(nameValue[i+1]) {
			return &LineError{Line: w.lines + 1, Field: nameValue[i], Err: ErrInvalidUTF8}
		}
	}
	return nil
}

func (w *Writer) line(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("prefopt: Writer: %w", err)
	}
	if _, err = w.w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("prefopt: Writer: line %d: %w", w.lines+1, err)
	}
	w.lines++
	return nil
}

// LineError reports a bad line of JSONL input, or a Pair the Writer
// refused for its line. A reader that returned it has already moved past
// the line: call Next again to skip it, or stop.
type LineError struct {
	Line  int    // 1-based line number
	Field string // the offending field, "" if the line is not a JSON object
	Err   error
}

// Error reports the line and, for a bad field, the field.
func (e *LineError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("prefopt: line %d: %v", e.Line, e.Err)
	}
	return fmt.Sprintf("prefopt: line %d: field %q: %v", e.Line, e.Field, e.Err)
}

// Unwrap returns the underlying error, for errors.Is and errors.As.
func (e *LineError) Unwrap() error { return e.Err }

// Errors a LineError may wrap, for errors.Is.
var (
	ErrLineTooLong  = errors.New("line too long") // a line past the reader's maximum (SetMaxLine)
	ErrInvalidUTF8  = errors.New("invalid UTF-8") // a line that is not UTF-8
	ErrDuplicateKey = errors.New("duplicate key") // a JSON object naming a field twice
)

// DefaultMaxLine is the longest line, in bytes, a Reader or PromptReader
// accepts unless told otherwise (SetMaxLine): a line longer than that is a
// *LineError wrapping ErrLineTooLong, read past without being buffered,
// so a corrupt file cannot make the reader allocate without bound.
const DefaultMaxLine = 16 << 20

// lines reads JSONL objects line by line, skipping blank lines. A line
// ends at LF, CRLF or a lone CR; a UTF-8 byte-order mark before the first
// line is skipped.
type lines struct {
	r       *bufio.Reader
	line    int
	max     int    // longest line accepted; 0 means DefaultMaxLine
	buf     []byte // the current line
	started bool   // past the byte-order mark
	err     error  // sticky read error (io.EOF at the end)
}

// readLine returns the next line without its terminator, and whether it
// was longer than the limit (then it is not returned, only skipped). At
// the end of input it returns io.EOF; a read error is returned wrapped
// with the number of the line it interrupted.
func (l *lines) readLine() (line []byte, tooLong bool, err error) {
	limit := l.max
	if limit <= 0 {
		limit = DefaultMaxLine
	}
	l.buf = l.buf[:0]
	n := 0 // bytes of the line seen, kept or not
	for {
		if _, err := l.r.Peek(1); err != nil {
			if err == io.EOF && n > 0 {
				return l.buf, tooLong, nil // last line, no terminator
			}
			if err != io.EOF {
				err = fmt.Errorf("prefopt: line %d: read: %w", l.line+1, err)
			}
			return nil, false, err
		}
		if !l.started {
			l.started = true
			if bom, _ := l.r.Peek(3); string(bom) == "\xef\xbb\xbf" { // Peek(3) waits for 3 bytes
				l.r.Discard(3)
				continue
			}
		}
		data, _ := l.r.Peek(l.r.Buffered())
		end := len(data)
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			end = i
		}
		if i := bytes.IndexByte(data[:end], '\r'); i >= 0 {
			end = i
		}
		if !tooLong {
			if n+end > limit {
				tooLong = true
				l.buf = l.buf[:0]
			} else {
				if need := len(l.buf) + end; need > cap(l.buf) {
					// Double, so a long line costs O(its length) in
					// copies and allocations, not append's 1.25× steps.
					nb := make([]byte, len(l.buf), min(max(2*cap(l.buf), need), limit))
					copy(nb, l.buf)
					l.buf = nb
				}
				l.buf = append(l.buf, data[:end]...)
			}
		}
		n += end
		if end == len(data) {
			l.r.Discard(end)
			continue
		}
		term := data[end]
		l.r.Discard(end + 1)
		if term == '\r' {
			if nb, _ := l.r.Peek(1); len(nb) == 1 && nb[0] == '\n' {
				l.r.Discard(1)
			}
		}
		return l.buf, tooLong, nil
	}
}

// next returns the fields of the next non-blank line as raw JSON, in
// order. A line that is not one JSON object, repeats a key or holds
// invalid UTF-8 is a *LineError.
func (l *lines) next() (map[string]json.RawMessage, error) {
	for {
		if l.err != nil {
			return nil, l.err
		}
		b, tooLong, err := l.readLine()
		if err != nil {
			l.err = err
			return nil, err
		}
		l.line++
		if tooLong {
			max := l.max
			if max <= 0 {
				max = DefaultMaxLine
			}
			return nil, &LineError{Line: l.line, Err: fmt.Errorf("%w: over %d bytes (see SetMaxLine)", ErrLineTooLong, max)}
		}
		b = bytes.TrimSpace(b)
		if len(b) == 0 {
			continue
		}
		return l.object(b)
	}
}

// object decodes one JSON object into its fields, rejecting repeated keys
// (encoding/json would keep the last silently) and invalid UTF-8 (which it
// would turn into U+FFFD silently).
func (l *lines) object(b []byte) (map[string]json.RawMessage, error) {
	// Fast path: one Unmarshal, a count of the top-level keys (a repeat
	// leaves fewer in the map than in the text) and a UTF-8 check. Only a
	// line that fails them is walked token by token, to name the field.
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err == nil && m != nil && topLevelKeys(b) == len(m) && utf8.Valid(b) {
		return m, nil
	}
	return l.objectSlow(b)
}

// topLevelKeys counts the keys of the JSON object b (valid JSON), repeats
// included.
func topLevelKeys(b []byte) int {
	depth, keys := 0, 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '{', '[':
			depth++
		case '}', ']':
			depth--
		case '"':
			j := i + 1
			for ; j < len(b) && b[j] != '"'; j++ {
				if b[j] == '\\' {
					j++
				}
			}
			if depth == 1 {
				k := j + 1
				for k < len(b) && (b[k] == ' ' || b[k] == '\t' || b[k] == '\n' || b[k] == '\r') {
					k++
				}
				if k < len(b) && b[k] == ':' {
					keys++
				}
			}
			i = j
		}
	}
	return keys
}

// objectSlow is object's careful path: the fields in order, so the error
// names the first offending one.
func (l *lines) objectSlow(b []byte) (map[string]json.RawMessage, error) {
	bad := func(field string, err error) error { return &LineError{Line: l.line, Field: field, Err: err} }
	dec := json.NewDecoder(bytes.NewReader(b))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, bad("", err)
		}
		return nil, bad("", errors.New("not a JSON object"))
	}
	m := map[string]json.RawMessage{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, bad("", err)
		}
		key, _ := t.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, bad(key, err)
		}
		if _, dup := m[key]; dup {
			return nil, bad(key, ErrDuplicateKey)
		}
		if !utf8.Valid(raw) {
			return nil, bad(key, ErrInvalidUTF8)
		}
		m[key] = raw
	}
	if _, err := dec.Token(); err != nil {
		return nil, bad("", err)
	}
	if dec.InputOffset() != int64(len(b)) {
		return nil, bad("", errors.New("trailing data after the JSON object"))
	}
	if !utf8.Valid(b) {
		return nil, bad("", fmt.Errorf("%w in a key", ErrInvalidUTF8))
	}
	return m, nil
}

// str decodes required string field f.
func (l *lines) str(m map[string]json.RawMessage, f string, nonEmpty bool) (string, error) {
	raw, ok := m[f]
	if !ok {
		return "", &LineError{Line: l.line, Field: f, Err: errors.New("missing")}
	}
	var s *string
	if err := json.Unmarshal(raw, &s); err != nil || s == nil {
		return "", &LineError{Line: l.line, Field: f, Err: fmt.Errorf("want a string, have %.40s", raw)}
	}
	if nonEmpty && *s == "" {
		return "", &LineError{Line: l.line, Field: f, Err: errors.New("empty")}
	}
	return *s, nil
}

// Reader reads Pairs from JSONL (the format is described at Pair).
type Reader struct{ l lines }

// NewReader returns a Reader over r.
func NewReader(r io.Reader) *Reader { return &Reader{l: lines{r: bufio.NewReader(r)}} }

// Next returns the next pair. At the end of input it returns io.EOF. A bad
// line gives a *LineError naming the line and the field; the Reader is then
// positioned after that line, so the caller chooses: call Next again to
// skip the line, or stop. Blank lines are skipped.
//
// Lines end at LF, CRLF or a lone CR, and a UTF-8 byte-order mark at the
// start is skipped. A line that repeats a key (ErrDuplicateKey), holds
// invalid UTF-8 (ErrInvalidUTF8) or is longer than the limit
// (ErrLineTooLong, see SetMaxLine) is a *LineError. A read error from the
// underlying reader is returned wrapped with the number of the line it
// interrupted, and again on every later call.
func (r *Reader) Next() (Pair, error) {
	m, err := r.l.next()
	if err != nil {
		return Pair{}, err
	}
	var p Pair
	if p.Prompt, err = r.l.str(m, "prompt", false); err != nil {
		return Pair{}, err
	}
	if p.Chosen, err = r.l.str(m, "chosen", true); err != nil {
		return Pair{}, err
	}
	if p.Rejected, err = r.l.str(m, "rejected", true); err != nil {
		return Pair{}, err
	}
	if raw, ok := m["level"]; ok {
		var s *string
		if err := json.Unmarshal(raw, &s); err != nil {
			return Pair{}, &LineError{Line: r.l.line, Field: "level", Err: fmt.Errorf("want a string, have %.40s", raw)}
		}
		if s != nil {
			if err := p.Level.UnmarshalText([]byte(*s)); err != nil {
				return Pair{}, &LineError{Line: r.l.line, Field: "level", Err: err}
			}
		}
	}
	return p, nil
}

// Line returns the line number of the line last read.
func (r *Reader) Line() int { return r.l.line }

// SetMaxLine sets the longest line, in bytes, the Reader accepts (≤ 0
// restores DefaultMaxLine). A longer line is a *LineError wrapping
// ErrLineTooLong, and the Reader moves past it without buffering it.
func (r *Reader) SetMaxLine(n int) { r.l.max = n }

// PromptReader reads prompt-only JSONL, one {"prompt": "…"} object per line
// (other fields ignored), the input of online RL. Its Next follows
// Reader.Next: io.EOF at the end, a *LineError for a bad line, after which
// the caller may go on.
type PromptReader struct{ l lines }

// NewPromptReader returns a PromptReader over r.
func NewPromptReader(r io.Reader) *PromptReader {
	return &PromptReader{l: lines{r: bufio.NewReader(r)}}
}

// Next returns the next prompt, which must be a non-empty string.
func (r *PromptReader) Next() (string, error) {
	m, err := r.l.next()
	if err != nil {
		return "", err
	}
	return r.l.str(m, "prompt", true)
}

// Line returns the line number of the line last read.
func (r *PromptReader) Line() int { return r.l.line }

// SetMaxLine is Reader.SetMaxLine.
func (r *PromptReader) SetMaxLine(n int) { r.l.max = n }

// SetMaxLine is Reader.SetMaxLine.
func (r *UnpairedReader) SetMaxLine(n int) { r.l.max = n }

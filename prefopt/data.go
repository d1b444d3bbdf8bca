package prefopt

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
// 0.65). Other fields are ignored on reading.
type Pair struct {
	Prompt, Chosen, Rejected string
	Level                    Level
}

// Writer writes Pairs, or prompts for online RL, as JSONL: one object and
// one Write call to the underlying writer per line. Wrap the destination in
// a bufio.Writer for many small lines, and flush it when done.
type Writer struct {
	w io.Writer
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
// or rejected, an invalid level) is an error and nothing is written.
func (w *Writer) Write(p Pair) error {
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
	return w.line(struct {
		Prompt string `json:"prompt"`
	}{prompt})
}

func (w *Writer) line(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("prefopt: Writer: %w", err)
	}
	_, err = w.w.Write(append(b, '\n'))
	return err
}

// LineError reports a bad line of JSONL input. The reader that returned it
// has already moved past the line: call Next again to skip it, or stop.
type LineError struct {
	Line  int    // 1-based line number
	Field string // the offending field, "" if the line is not a JSON object
	Err   error
}

func (e *LineError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("prefopt: line %d: %v", e.Line, e.Err)
	}
	return fmt.Sprintf("prefopt: line %d: field %q: %v", e.Line, e.Field, e.Err)
}

func (e *LineError) Unwrap() error { return e.Err }

// lines reads JSONL objects line by line, skipping blank lines.
type lines struct {
	r    *bufio.Reader
	line int
	err  error // sticky read error (io.EOF at the end)
}

// next returns the fields of the next non-blank line as raw JSON.
func (l *lines) next() (map[string]json.RawMessage, error) {
	for {
		if l.err != nil {
			return nil, l.err
		}
		b, err := l.r.ReadBytes('\n')
		if err != nil {
			l.err = err
			if err != io.EOF {
				return nil, err
			}
		}
		if len(b) == 0 && err == io.EOF {
			return nil, io.EOF
		}
		l.line++
		b = bytes.TrimSpace(b)
		if len(b) == 0 {
			continue
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(b, &m); err != nil || m == nil {
			if err == nil {
				err = errors.New("not a JSON object")
			}
			return nil, &LineError{Line: l.line, Err: err}
		}
		return m, nil
	}
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

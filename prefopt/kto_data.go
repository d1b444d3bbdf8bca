package prefopt

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Unpaired is one example of unpaired preference data, KTO's input: a
// prompt, one completion and whether it is desirable.
//
// As JSONL, one object per line (TRL's unpaired preference format):
//
//	{"prompt": "…", "completion": "…", "label": true}
//
// prompt and completion are required strings, completion non-empty; label
// is a required JSON boolean (true: desirable). Other fields are ignored
// on reading.
type Unpaired struct {
	Prompt, Completion string
	Label              bool
}

// Unpair splits a preference pair into the two unpaired examples KTO can
// train on, the chosen response desirable and the rejected one not (TRL's
// unpair_preference_dataset). The level is dropped.
func Unpair(p Pair) [2]Unpaired {
	return [2]Unpaired{{p.Prompt, p.Chosen, true}, {p.Prompt, p.Rejected, false}}
}

// WriteUnpaired writes u as one line. An empty completion, or invalid
// UTF-8 in a field (a *LineError wrapping ErrInvalidUTF8), is an error and
// nothing is written.
func (w *Writer) WriteUnpaired(u Unpaired) error {
	if u.Completion == "" {
		return errors.New("prefopt: Writer: empty completion")
	}
	if err := w.checkUTF8("prompt", u.Prompt, "completion", u.Completion); err != nil {
		return err
	}
	return w.line(struct {
		Prompt     string `json:"prompt"`
		Completion string `json:"completion"`
		Label      bool   `json:"label"`
	}{u.Prompt, u.Completion, u.Label})
}

// UnpairedReader reads Unpaired examples from JSONL (the format is
// described at Unpaired). Its Next follows Reader.Next: io.EOF at the end,
// a *LineError naming the line and field for a bad line, after which the
// caller may go on.
type UnpairedReader struct{ l lines }

// NewUnpairedReader returns an UnpairedReader over r.
func NewUnpairedReader(r io.Reader) *UnpairedReader {
	return &UnpairedReader{l: lines{r: bufio.NewReader(r)}}
}

// Next returns the next example.
func (r *UnpairedReader) Next() (Unpaired, error) {
	m, err := r.l.next()
	if err != nil {
		return Unpaired{}, err
	}
	var u Unpaired
	if u.Prompt, err = r.l.str(m, "prompt", false); err != nil {
		return Unpaired{}, err
	}
	if u.Completion, err = r.l.str(m, "completion", true); err != nil {
		return Unpaired{}, err
	}
	raw, ok := m["label"]
	if !ok {
		return Unpaired{}, &LineError{Line: r.l.line, Field: "label", Err: errors.New("missing")}
	}
	var b *bool
	if err := json.Unmarshal(raw, &b); err != nil || b == nil {
		return Unpaired{}, &LineError{Line: r.l.line, Field: "label", Err: fmt.Errorf("want true or false, have %.40s", raw)}
	}
	u.Label = *b
	return u, nil
}

// Line returns the line number of the line last read.
func (r *UnpairedReader) Line() int { return r.l.line }

package recipe

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/posttrain/posttrain/prefopt"
	"github.com/posttrain/posttrain/tensor/nn/hf"
)

// Pair is a tokenized preference record: a prompt and two completions,
// the chosen one preferred. Line is the record's 1-based line in its
// JSONL source (0 when made in code), for error messages.
type Pair struct {
	Prompt, Chosen, Rejected []int32
	Level                    prefopt.Level // AFM's preference strength, for the soft-label reward loss
	Line                     int
}

// Example is a tokenized SFT record: a prompt (masked from the loss) and
// the completion the model learns to produce.
type Example struct {
	Prompt, Completion []int32
	Line               int
}

// Truncation says what to do with a prompt or completion longer than its
// limit.
type Truncation uint8

const (
	// Refuse makes a record over the limit an error naming it.
	Refuse Truncation = iota
	// KeepEnd drops tokens from the start: TRL's truncation of prompts,
	// which keeps the text next to the completion.
	KeepEnd
	// KeepStart drops tokens from the end: TRL's truncation of
	// completions.
	KeepStart
)

// Encoder turns JSONL records into token sequences through a tokenizer
// and its chat template, as TRL's trainers prepare their datasets.
//
// A record is plain text — {"prompt": "…", "chosen": "…", "rejected":
// "…"} or {"prompt": "…", "completion": "…"} — or conversational, with
// lists of {"role", "content"} messages: a "prompt" of messages and
// completions of assistant messages, a "messages" conversation (SFT: the
// last assistant turn is the completion), or "chosen" and "rejected"
// conversations alone (the prompt is all but their last turn, which must
// agree). Plain prompts and completions are encoded as they are, with EOS
// appended to completions (TRL's DPO does the same); conversations are
// rendered with the chat template as hf.Tokenizer.PromptCompletion
// renders them — the prompt with the generation prompt added (or its
// final assistant message continued), the completion as what the whole
// conversation adds after it — so the completion carries the template's
// own end-of-turn tokens.
type Encoder struct {
	Tokenizer *hf.Tokenizer
	// MaxPrompt and MaxCompletion bound the token counts (0: no bound);
	// PromptTruncation and CompletionTruncation say what happens past
	// them (Refuse by default).
	MaxPrompt, MaxCompletion               int
	PromptTruncation, CompletionTruncation Truncation
	// Chat holds extra template variables (tools, enable_thinking…).
	Chat hf.ChatOptions
}

// RecordError reports a bad record: its line and, when one field is at
// fault, the field.
type RecordError struct {
	Line  int
	Field string
	Err   error
}

// Error names the line and, if known, the field.
func (e *RecordError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("recipe: record at line %d: %v", e.Line, e.Err)
	}
	return fmt.Sprintf("recipe: record at line %d: field %q: %v", e.Line, e.Field, e.Err)
}

// Unwrap returns the underlying error, for errors.Is and errors.As.
func (e *RecordError) Unwrap() error { return e.Err }

// text is a field that is a string or a list of messages.
type text struct {
	s    string
	msgs []hf.Message
	chat bool
	set  bool
}

func (t *text) UnmarshalJSON(b []byte) error {
	t.set = true
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		t.set = false
		return nil
	}
	if err := json.Unmarshal(b, &t.s); err == nil {
		return nil
	}
	var msgs []hf.Message
	if err := json.Unmarshal(b, &msgs); err != nil {
		return errors.New("need a string or a list of {role, content} messages")
	}
	for i, m := range msgs {
		if m.Role == "" {
			return fmt.Errorf("message %d has no role", i)
		}
	}
	t.msgs, t.chat = msgs, true
	return nil
}

type record struct {
	Prompt     text          `json:"prompt"`
	Chosen     text          `json:"chosen"`
	Rejected   text          `json:"rejected"`
	Completion text          `json:"completion"`
	Messages   text          `json:"messages"`
	Level      prefopt.Level `json:"level"`
}

// each calls fn with every JSONL record of r and its line, skipping blank
// lines.
func each(r io.Reader, fn func(rec *record, line int) error) error {
	br := bufio.NewReader(r)
	for line := 1; ; line++ {
		b, err := br.ReadBytes('\n')
		if len(bytes.TrimSpace(b)) > 0 {
			var rec record
			d := json.NewDecoder(bytes.NewReader(b))
			if derr := d.Decode(&rec); derr != nil {
				field := ""
				var ute *json.UnmarshalTypeError
				if errors.As(derr, &ute) {
					field = ute.Field
				}
				return &RecordError{Line: line, Field: field, Err: derr}
			}
			if ferr := fn(&rec, line); ferr != nil {
				return ferr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("recipe: reading line %d: %w", line, err)
		}
	}
}

// ReadPairs reads preference records (see Encoder) from r.
func (e *Encoder) ReadPairs(r io.Reader) ([]Pair, error) {
	var out []Pair
	err := each(r, func(rec *record, line int) error {
		p, err := e.pair(rec, line)
		if err != nil {
			return err
		}
		out = append(out, p)
		return nil
	})
	return out, err
}

// ReadExamples reads SFT records (see Encoder) from r.
func (e *Encoder) ReadExamples(r io.Reader) ([]Example, error) {
	var out []Example
	err := each(r, func(rec *record, line int) error {
		x, err := e.example(rec, line)
		if err != nil {
			return err
		}
		out = append(out, x)
		return nil
	})
	return out, err
}

// EncodePair encodes one plain-text preference record.
func (e *Encoder) EncodePair(prompt, chosen, rejected string) (Pair, error) {
	rec := record{Prompt: text{s: prompt, set: true}, Chosen: text{s: chosen, set: true}, Rejected: text{s: rejected, set: true}}
	return e.pair(&rec, 0)
}

func (e *Encoder) pair(rec *record, line int) (Pair, error) {
	bad := func(field string, err error) error { return &RecordError{Line: line, Field: field, Err: err} }
	if !rec.Chosen.set {
		return Pair{}, bad("chosen", errors.New("missing"))
	}
	if !rec.Rejected.set {
		return Pair{}, bad("rejected", errors.New("missing"))
	}
	prompt := rec.Prompt
	chosen, rejected := rec.Chosen, rec.Rejected
	if !prompt.set {
		// Implicit prompt: the conversations' shared opening.
		if !chosen.chat || !rejected.chat {
			return Pair{}, bad("prompt", errors.New("missing (only conversational chosen/rejected may leave it implicit)"))
		}
		pc, cc, err := splitLast(chosen.msgs)
		if err != nil {
			return Pair{}, bad("chosen", err)
		}
		pr, rc, err := splitLast(rejected.msgs)
		if err != nil {
			return Pair{}, bad("rejected", err)
		}
		if !slices.EqualFunc(pc, pr, sameMessage) {
			return Pair{}, bad("rejected", errors.New("its conversation before the last turn differs from chosen's"))
		}
		prompt = text{msgs: pc, chat: true, set: true}
		chosen, rejected = text{msgs: cc, chat: true, set: true}, text{msgs: rc, chat: true, set: true}
	}
	p, err := e.prompt(prompt, chosen)
	if err != nil {
		return Pair{}, bad("prompt", err)
	}
	c, err := e.completion(prompt, chosen)
	if err != nil {
		return Pair{}, bad("chosen", err)
	}
	r, err := e.completion(prompt, rejected)
	if err != nil {
		return Pair{}, bad("rejected", err)
	}
	if p, err = e.truncPrompt(p); err != nil {
		return Pair{}, bad("prompt", err)
	}
	if c, err = e.truncCompletion(c); err != nil {
		return Pair{}, bad("chosen", err)
	}
	if r, err = e.truncCompletion(r); err != nil {
		return Pair{}, bad("rejected", err)
	}
	return Pair{Prompt: p, Chosen: c, Rejected: r, Level: rec.Level, Line: line}, nil
}

func (e *Encoder) example(rec *record, line int) (Example, error) {
	bad := func(field string, err error) error { return &RecordError{Line: line, Field: field, Err: err} }
	prompt, comp := rec.Prompt, rec.Completion
	field := "completion"
	if rec.Messages.set {
		if !rec.Messages.chat {
			return Example{}, bad("messages", errors.New("need a list of messages"))
		}
		pm, cm, err := splitLast(rec.Messages.msgs)
		if err != nil {
			return Example{}, bad("messages", err)
		}
		prompt, comp, field = text{msgs: pm, chat: true, set: true}, text{msgs: cm, chat: true, set: true}, "messages"
	}
	if !prompt.set {
		return Example{}, bad("prompt", errors.New("missing"))
	}
	if !comp.set {
		return Example{}, bad(field, errors.New("missing"))
	}
	p, err := e.prompt(prompt, comp)
	if err != nil {
		return Example{}, bad("prompt", err)
	}
	c, err := e.completion(prompt, comp)
	if err != nil {
		return Example{}, bad(field, err)
	}
	if p, err = e.truncPrompt(p); err != nil {
		return Example{}, bad("prompt", err)
	}
	if c, err = e.truncCompletion(c); err != nil {
		return Example{}, bad(field, err)
	}
	return Example{Prompt: p, Completion: c, Line: line}, nil
}

// splitLast splits a conversation before its last message, which must be
// the assistant's.
func splitLast(msgs []hf.Message) (prompt, last []hf.Message, err error) {
	if len(msgs) < 2 {
		return nil, nil, fmt.Errorf("a conversation of %d messages has no prompt and completion", len(msgs))
	}
	l := msgs[len(msgs)-1]
	if l.Role != "assistant" {
		return nil, nil, fmt.Errorf("the last message is the %s's, not the assistant's", l.Role)
	}
	return msgs[:len(msgs)-1], msgs[len(msgs)-1:], nil
}

func sameMessage(a, b hf.Message) bool {
	return a.Role == b.Role && a.Content == b.Content && bytes.Equal(a.Extra, b.Extra)
}

// prompt returns the prompt's ids; for a conversation, rendered as
// hf.Tokenizer.PromptCompletion renders it before completion c.
func (e *Encoder) prompt(p, c text) ([]int32, error) {
	if e.Tokenizer == nil {
		return nil, errors.New("the Encoder has no tokenizer")
	}
	s := p.s
	if p.chat {
		if len(p.msgs) == 0 {
			return nil, errors.New("no messages")
		}
		if !c.chat || len(c.msgs) == 0 {
			return nil, errors.New("a conversational prompt needs a conversational completion")
		}
		var err error
		if s, _, err = e.Tokenizer.PromptCompletion(p.msgs, c.msgs, e.Chat); err != nil {
			return nil, fmt.Errorf("chat template: %w", err)
		}
	}
	ids, err := e.Tokenizer.Encode(s)
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, errors.New("empty prompt")
	}
	return ids, nil
}

func (e *Encoder) completion(prompt, c text) ([]int32, error) {
	if prompt.chat != c.chat {
		return nil, errors.New("prompt and completion must both be text or both be messages")
	}
	if !c.chat {
		if c.s == "" {
			return nil, errors.New("empty completion")
		}
		ids, err := e.Tokenizer.Encode(c.s)
		if err != nil {
			return nil, err
		}
		if eos, ok := e.Tokenizer.EOS(); ok {
			ids = append(ids, eos)
		}
		return ids, nil
	}
	if len(c.msgs) == 0 {
		return nil, errors.New("empty completion")
	}
	for _, m := range c.msgs {
		if m.Content == "" {
			return nil, errors.New("empty completion")
		}
	}
	_, rest, err := e.Tokenizer.PromptCompletion(prompt.msgs, c.msgs, e.Chat)
	if err != nil {
		return nil, fmt.Errorf("chat template: %w", err)
	}
	if rest == "" {
		return nil, errors.New("empty completion after the chat template")
	}
	return e.Tokenizer.Encode(rest)
}

func (e *Encoder) truncPrompt(ids []int32) ([]int32, error) {
	return truncate(ids, e.MaxPrompt, e.PromptTruncation, "prompt")
}

func (e *Encoder) truncCompletion(ids []int32) ([]int32, error) {
	return truncate(ids, e.MaxCompletion, e.CompletionTruncation, "completion")
}

func truncate(ids []int32, limit int, t Truncation, what string) ([]int32, error) {
	if limit <= 0 || len(ids) <= limit {
		return ids, nil
	}
	switch t {
	case KeepEnd:
		return ids[len(ids)-limit:], nil
	case KeepStart:
		return ids[:limit], nil
	}
	return nil, fmt.Errorf("%s of %d tokens exceeds the limit of %d", what, len(ids), limit)
}

// Tokens returns the total token count of pairs: prompts counted twice
// (once per completion), as the model sees them.
func Tokens(pairs []Pair) int {
	n := 0
	for _, p := range pairs {
		n += 2*len(p.Prompt) + len(p.Chosen) + len(p.Rejected)
	}
	return n
}

// pairSeqs lays out pairs as 2·len(pairs) sequences: the chosen
// completions first, then the rejected ones.
func pairSeqs(pairs []Pair, pad int32) (Seqs, error) {
	ps := make([][]int32, 0, 2*len(pairs))
	cs := make([][]int32, 0, 2*len(pairs))
	for _, p := range pairs {
		ps = append(ps, p.Prompt)
		cs = append(cs, p.Chosen)
	}
	for _, p := range pairs {
		ps = append(ps, p.Prompt)
		cs = append(cs, p.Rejected)
	}
	return NewSeqs(ps, cs, pad)
}

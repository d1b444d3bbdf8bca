package prefopt

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestUnpairedRoundTrip(t *testing.T) {
	in := []Unpaired{
		{"What is 2+2?", "4", true},
		{"", "five\n\"quoted\"", false},
		{"ünïcode ✓", "a\tb", true},
	}
	var buf bytes.Buffer
	w := NewWriter(&buf)
	for _, u := range in {
		if err := w.WriteUnpaired(u); err != nil {
			t.Fatal(err)
		}
	}
	if got := strings.Count(buf.String(), "\n"); got != len(in) {
		t.Fatalf("%d lines, want %d", got, len(in))
	}
	r := NewUnpairedReader(&buf)
	for i, want := range in {
		got, err := r.Next()
		if err != nil || got != want {
			t.Fatalf("example %d: %+v, %v; want %+v", i, got, err, want)
		}
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("at end: %v", err)
	}
	if err := w.WriteUnpaired(Unpaired{Prompt: "p"}); err == nil {
		t.Error("empty completion written")
	}
}

// TRL's own example line, extra fields, and each kind of bad line with the
// field it names; the reader goes on after each.
func TestUnpairedReaderBadLines(t *testing.T) {
	in := strings.Join([]string{
		`{"prompt": "The sky is", "completion": " blue.", "label": true}`,
		`{"prompt": "p", "completion": "c", "label": false, "score": 0.3}`,
		`{"prompt": "p", "completion": "c"}`,
		`{"prompt": "p", "completion": "c", "label": 1}`,
		`{"prompt": "p", "completion": "c", "label": "true"}`,
		`{"prompt": "p", "completion": "c", "label": null}`,
		`{"prompt": "p", "completion": "", "label": true}`,
		`{"prompt": "p", "chosen": "c", "rejected": "r"}`,
		``,
		`[1]`,
		`{"prompt": 3, "completion": "c", "label": true}`,
		`{"prompt": "last", "completion": "ok", "label": false}`,
	}, "\n")
	r := NewUnpairedReader(strings.NewReader(in))
	want := []struct {
		line  int
		field string
		ok    *Unpaired
	}{
		{1, "", &Unpaired{"The sky is", " blue.", true}},
		{2, "", &Unpaired{"p", "c", false}},
		{3, "label", nil},
		{4, "label", nil},
		{5, "label", nil},
		{6, "label", nil},
		{7, "completion", nil},
		{8, "completion", nil},
		{10, "", nil},
		{11, "prompt", nil},
		{12, "", &Unpaired{"last", "ok", false}},
	}
	for _, w := range want {
		u, err := r.Next()
		if w.ok != nil {
			if err != nil || u != *w.ok {
				t.Fatalf("line %d: %+v, %v; want %+v", w.line, u, err, *w.ok)
			}
			continue
		}
		var le *LineError
		if !errors.As(err, &le) || le.Line != w.line || le.Field != w.field {
			t.Fatalf("line %d: error %v, want a LineError for field %q", w.line, err, w.field)
		}
		if r.Line() != w.line {
			t.Errorf("Line() = %d, want %d", r.Line(), w.line)
		}
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("at end: %v", err)
	}
}

func TestUnpair(t *testing.T) {
	got := Unpair(Pair{Prompt: "x", Chosen: "good", Rejected: "bad", Level: Better})
	want := [2]Unpaired{{"x", "good", true}, {"x", "bad", false}}
	if got != want {
		t.Errorf("Unpair = %+v, want %+v", got, want)
	}
}

func FuzzUnpairedReader(f *testing.F) {
	f.Add(`{"prompt": "a", "completion": "c", "label": true}` + "\n" + `{"label": 1}`)
	f.Add("\n\n{}\n[]\nnull\n\"s\"\n")
	f.Add(`{"prompt":"p","completion":"c","label":null,"label":false}`)
	f.Fuzz(func(t *testing.T, in string) {
		roundTrip(t, in, func(r io.Reader) func() (Unpaired, error) { return NewUnpairedReader(r).Next }, (*Writer).WriteUnpaired)
	})
}

package prefopt

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestPairRoundTrip(t *testing.T) {
	pairs := []Pair{
		{Prompt: "2+2?", Chosen: "4", Rejected: "5", Level: SignificantlyBetter},
		{Prompt: "", Chosen: "line\nbreak \"quoted\" ünïcode", Rejected: "b"},
		{Prompt: "p", Chosen: "c", Rejected: "r", Level: NegligiblyBetter},
	}
	var buf bytes.Buffer
	w := NewWriter(&buf)
	for _, p := range pairs {
		if err := w.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(buf.String(), "\n"); n != len(pairs) {
		t.Fatalf("%d lines for %d pairs:\n%s", n, len(pairs), buf.String())
	}
	if !strings.Contains(buf.String(), `"level":"significantly_better"`) || strings.Count(buf.String(), "level") != 2 {
		t.Errorf("levels not written as names, or written when unlabeled:\n%s", buf.String())
	}
	r := NewReader(&buf)
	for i, want := range pairs {
		got, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("pair %d = %+v, want %+v", i, got, want)
		}
	}
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("after the last pair: %v, want io.EOF", err)
	}
}

func TestWriterRejects(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	for _, p := range []Pair{
		{Prompt: "p", Rejected: "r"},
		{Prompt: "p", Chosen: "c"},
		{Prompt: "p", Chosen: "c", Rejected: "r", Level: 7},
	} {
		if err := w.Write(p); err == nil {
			t.Errorf("Write(%+v): no error", p)
		}
	}
	if err := w.WritePrompt(""); err == nil {
		t.Error("WritePrompt(\"\"): no error")
	}
	if buf.Len() != 0 {
		t.Errorf("rejected pairs were written: %q", buf.String())
	}
}

// Each bad line is reported with its line and field, and the reader goes
// on: the caller can skip it or stop.
func TestReaderBadLines(t *testing.T) {
	in := strings.Join([]string{
		`{"prompt": "a", "chosen": "c", "rejected": "r", "id": 7}`, // 1 ok, extra field ignored
		``,                               // 2 blank: skipped
		`{"prompt": "a", "chosen": "c"}`, // 3 missing rejected
		`{"prompt": "a", "chosen": 5, "rejected": "r"}`,                   // 4 chosen not a string
		`{"prompt": "a", "chosen": "c", "rejected": "r", "level": "meh"}`, // 5 bad level
		`not json`, // 6
		`{"prompt": "a", "chosen": "", "rejected": "r"}`,   // 7 empty chosen
		`{"prompt": null, "chosen": "c", "rejected": "r"}`, // 8 null prompt
		`[1, 2]`, // 9 not an object
		`{"prompt": "b", "chosen": "c", "rejected": "r", "level": null}`,     // 10 ok, unlabeled
		`{"prompt": "b", "chosen": "c", "rejected": "r", "level": "better"}`, // 11 ok, no final newline
	}, "\n")
	want := []struct {
		line  int
		field string
	}{{3, "rejected"}, {4, "chosen"}, {5, "level"}, {6, ""}, {7, "chosen"}, {8, "prompt"}, {9, ""}}
	r := NewReader(strings.NewReader(in))
	var good []Pair
	var bad []*LineError
	for {
		p, err := r.Next()
		if err == io.EOF {
			break
		}
		var le *LineError
		if errors.As(err, &le) {
			bad = append(bad, le)
			continue // skip
		}
		if err != nil {
			t.Fatal(err)
		}
		good = append(good, p)
	}
	if len(good) != 3 || good[1].Level != Unlabeled || good[2].Level != Better {
		t.Errorf("good pairs = %+v", good)
	}
	if len(bad) != len(want) {
		t.Fatalf("%d bad lines, want %d: %v", len(bad), len(want), bad)
	}
	for i, w := range want {
		if bad[i].Line != w.line || bad[i].Field != w.field {
			t.Errorf("bad line %d: got line %d field %q (%v), want line %d field %q", i, bad[i].Line, bad[i].Field, bad[i], w.line, w.field)
		}
		if !strings.Contains(bad[i].Error(), "line ") {
			t.Errorf("error %q does not name the line", bad[i])
		}
	}
	// Stopping at the first bad line is the caller's other choice.
	r = NewReader(strings.NewReader(in))
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); err == nil || r.Line() != 3 {
		t.Errorf("second Next: %v at line %d, want an error at line 3", err, r.Line())
	}
}

func TestPrompts(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	for _, p := range []string{"one", "two\nlines"} {
		if err := w.WritePrompt(p); err != nil {
			t.Fatal(err)
		}
	}
	buf.WriteString(`{"prompt": ""}` + "\n" + `{"text": "x"}` + "\n" + `{"prompt": "three", "meta": 1}`)
	r := NewPromptReader(&buf)
	var got []string
	var lines []int
	for {
		p, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			var le *LineError
			if !errors.As(err, &le) || le.Field != "prompt" {
				t.Fatalf("unexpected error %v", err)
			}
			lines = append(lines, le.Line)
			continue
		}
		got = append(got, p)
	}
	if len(got) != 3 || got[1] != "two\nlines" || got[2] != "three" {
		t.Errorf("prompts = %q", got)
	}
	if len(lines) != 2 || lines[0] != 3 || lines[1] != 4 {
		t.Errorf("bad lines = %v, want [3 4]", lines)
	}
}

type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n == 0 {
		f.n++
		return copy(p, `{"prompt":"a","chosen":"c","rejected":"r"}`+"\n"), nil
	}
	return 0, errors.New("disk on fire")
}

func TestReaderIOError(t *testing.T) {
	r := NewReader(&failingReader{})
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	for range 2 { // sticky
		if _, err := r.Next(); err == nil || !strings.Contains(err.Error(), "fire") {
			t.Errorf("read error: %v", err)
		}
	}
}

// Arbitrary input never panics or hangs; every pair read back writes and
// re-reads to itself.
func FuzzReader(f *testing.F) {
	f.Add(`{"prompt": "a", "chosen": "c", "rejected": "r", "level": "better"}` + "\n" + `{"prompt": 1}`)
	f.Add("\n\n{}\n[]\nnull\n\"s\"\n")
	f.Add(`{"prompt":"p","chosen":"c","rejected":"r","level":null,"level":"slightly_better"}`)
	f.Add("\xef\xbb\xbf" + `{"prompt":"p","chosen":"c","rejected":"r"}` + "\r" + `{"prompt":"p","chosen":"c","rejected":"r"}` + "\r\n")
	f.Add("{\"prompt\":\"p\",\"chosen\":\"c\xff\",\"rejected\":\"r\"}\r\r\n")
	f.Fuzz(func(t *testing.T, in string) {
		roundTrip(t, in, func(r io.Reader) func() (Pair, error) { return NewReader(r).Next }, (*Writer).Write)
	})
}

// roundTrip reads every record of in, each either a *LineError or a record
// that the Writer writes and a new reader reads back unchanged, and checks
// that the reader then ends at io.EOF: the body of the JSONL fuzz targets.
func roundTrip[T comparable](t *testing.T, in string, open func(io.Reader) func() (T, error), write func(*Writer, T) error) {
	t.Helper()
	next := open(strings.NewReader(in))
	for range strings.Count(in, "\n") + strings.Count(in, "\r") + 2 { // every line ends at LF, CR or CRLF
		rec, err := next()
		if err == io.EOF {
			return
		}
		if err != nil {
			var le *LineError
			if !errors.As(err, &le) {
				t.Fatalf("non-line error %v", err)
			}
			continue
		}
		var buf bytes.Buffer
		if err := write(NewWriter(&buf), rec); err != nil {
			t.Fatalf("read %+v, cannot write it: %v", rec, err)
		}
		back, err := open(&buf)()
		if err != nil || back != rec {
			t.Fatalf("%+v re-reads as %+v, %v", rec, back, err)
		}
	}
	if _, err := next(); err != io.EOF {
		t.Fatalf("reader did not reach EOF: %v", err)
	}
}

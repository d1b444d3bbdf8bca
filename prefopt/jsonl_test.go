package prefopt

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
)

func readAllPairs(t *testing.T, r *Reader) ([]Pair, []error) {
	t.Helper()
	var ps []Pair
	var errs []error
	for range 100 {
		p, err := r.Next()
		if err == io.EOF {
			return ps, errs
		}
		if err != nil {
			errs = append(errs, err)
			var le *LineError
			if !errors.As(err, &le) {
				return ps, errs
			}
			continue
		}
		ps = append(ps, p)
	}
	t.Fatal("no io.EOF after 100 lines")
	return nil, nil
}

const pairLine = `{"prompt":"p","chosen":"c","rejected":"r"}`

// The probe's cases: a BOM lost the first record; CR-only endings made
// one line.
func TestLineEndingsAndBOM(t *testing.T) {
	for name, in := range map[string]string{
		"LF":        pairLine + "\n" + pairLine + "\n" + pairLine + "\n",
		"CRLF":      pairLine + "\r\n" + pairLine + "\r\n" + pairLine,
		"CR":        pairLine + "\r" + pairLine + "\r" + pairLine + "\r",
		"mixed":     pairLine + "\r\n" + pairLine + "\r" + pairLine + "\n",
		"BOM":       "\xef\xbb\xbf" + pairLine + "\n" + pairLine + "\n" + pairLine,
		"BOM CRLF":  "\xef\xbb\xbf" + pairLine + "\r\n\r\n" + pairLine + "\r\n" + pairLine + "\r\n",
		"blank CRs": "\r\r" + pairLine + "\r\r\n" + pairLine + "\n\r" + pairLine,
	} {
		ps, errs := readAllPairs(t, NewReader(strings.NewReader(in)))
		if len(ps) != 3 || len(errs) != 0 {
			t.Errorf("%s: %d pairs, errors %v; want 3, none", name, len(ps), errs)
		}
		// The same, a byte per read: a BOM or CRLF split across reads.
		ps, errs = readAllPairs(t, NewReader(iotest.OneByteReader(strings.NewReader(in))))
		if len(ps) != 3 || len(errs) != 0 {
			t.Errorf("%s, a byte per read: %d pairs, errors %v; want 3, none", name, len(ps), errs)
		}
	}
	// Line numbers count CR-terminated lines too.
	r := NewReader(strings.NewReader(pairLine + "\r" + `{"prompt":"p"}` + "\r"))
	r.Next()
	var le *LineError
	if _, err := r.Next(); !errors.As(err, &le) || le.Line != 2 {
		t.Errorf("bad second CR line: %v", err)
	}
	// A BOM only counts at the very start.
	if _, errs := readAllPairs(t, NewReader(strings.NewReader(pairLine+"\n\xef\xbb\xbf"+pairLine))); len(errs) != 1 {
		t.Errorf("BOM mid-file: errors %v, want one", errs)
	}
}

func TestDuplicateKeysAndUTF8(t *testing.T) {
	for _, c := range []struct {
		in    string
		field string
		want  error
	}{
		{`{"prompt":"p","chosen":"c","rejected":"r","chosen":"x"}`, "chosen", ErrDuplicateKey},
		{`{"prompt":"p","chosen":"c","rejected":"r","level":null,"level":"better"}`, "level", ErrDuplicateKey},
		{`{"prompt":"p","chosen":"c","rejected":"r","pr\u006fmpt":"q"}`, "prompt", ErrDuplicateKey},
		{"{\"prompt\":\"p\",\"chosen\":\"c\xff\",\"rejected\":\"r\"}", "chosen", ErrInvalidUTF8},
		{"{\"prompt\":\"\xc3\",\"chosen\":\"c\",\"rejected\":\"r\"}", "prompt", ErrInvalidUTF8},
		{"{\"prompt\":\"p\",\"chosen\":\"c\",\"rejected\":\"r\",\"x\":{\"y\":\"\xed\xa0\x80\"}}", "x", ErrInvalidUTF8},
		{"{\"prompt\":\"p\",\"chosen\":\"c\",\"rejected\":\"r\",\"k\xff\":1}", "", ErrInvalidUTF8},
	} {
		r := NewReader(strings.NewReader(pairLine + "\n" + c.in + "\n" + pairLine + "\n"))
		ps, errs := readAllPairs(t, r)
		var le *LineError
		if len(errs) != 1 || !errors.As(errs[0], &le) || le.Line != 2 || le.Field != c.field || !errors.Is(errs[0], c.want) {
			t.Errorf("%q: errors %v, want line 2 field %q %v", c.in, errs, c.field, c.want)
		}
		if len(ps) != 2 {
			t.Errorf("%q: %d good pairs, want 2 (the reader goes on past a bad line)", c.in, len(ps))
		}
	}
}

func TestWriterInvalidUTF8(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	if err := w.Write(Pair{Prompt: "p", Chosen: "c", Rejected: "r"}); err != nil {
		t.Fatal(err)
	}
	err := w.Write(Pair{Prompt: "p", Chosen: "c", Rejected: "r\xff"})
	var le *LineError
	if !errors.As(err, &le) || le.Line != 2 || le.Field != "rejected" || !errors.Is(err, ErrInvalidUTF8) {
		t.Errorf("Write with invalid UTF-8: %v", err)
	}
	if err := w.WritePrompt("\xc3"); !errors.Is(err, ErrInvalidUTF8) {
		t.Errorf("WritePrompt with invalid UTF-8: %v", err)
	}
	if strings.Count(buf.String(), "\n") != 1 {
		t.Errorf("rejected pairs were written: %q", buf.String())
	}
}

// repeatReader yields a line of n bytes of 'x' then a newline and a good
// pair, without holding them in memory.
type repeatReader struct{ n, tail int }

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.n > 0 {
		k := min(len(p), r.n)
		for i := range k {
			p[i] = 'x'
		}
		r.n -= k
		return k, nil
	}
	rest := "\n" + pairLine + "\n"
	if r.tail >= len(rest) {
		return 0, io.EOF
	}
	k := copy(p, rest[r.tail:])
	r.tail += k
	return k, nil
}

// A line past the limit is an error naming it, read past without being
// buffered (the probe: a 200 MB line allocated 426 MB).
func TestLineTooLong(t *testing.T) {
	r := NewReader(&repeatReader{n: 1000})
	r.SetMaxLine(999)
	ps, errs := readAllPairs(t, r)
	var le *LineError
	if len(errs) != 1 || !errors.As(errs[0], &le) || le.Line != 1 || !errors.Is(errs[0], ErrLineTooLong) || len(ps) != 1 {
		t.Fatalf("1000-byte line, limit 999: pairs %d, errors %v", len(ps), errs)
	}
	r = NewReader(&repeatReader{n: 1000})
	r.SetMaxLine(1000)
	if _, errs := readAllPairs(t, r); len(errs) != 1 || errors.Is(errs[0], ErrLineTooLong) {
		t.Fatalf("1000-byte line at limit 1000: %v, want a JSON error, not too long", errs)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	ps, errs = readAllPairs(t, NewReader(&repeatReader{n: 3 * DefaultMaxLine}))
	runtime.ReadMemStats(&after)
	if len(errs) != 1 || !errors.Is(errs[0], ErrLineTooLong) || len(ps) != 1 {
		t.Fatalf("line past DefaultMaxLine: %d pairs, %v", len(ps), errs)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 3*DefaultMaxLine {
		t.Errorf("reading a %d-byte line allocated %d bytes", 3*DefaultMaxLine, got)
	}
}

// I/O errors carry the line they interrupted.
func TestReaderIOErrorLine(t *testing.T) {
	r := NewReader(&failingReader{})
	r.Next()
	_, err := r.Next()
	if err == nil || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), "fire") {
		t.Errorf("read error: %v", err)
	}
}

func TestUnpairedUTF8AndLimit(t *testing.T) {
	var buf bytes.Buffer
	if err := NewWriter(&buf).WriteUnpaired(Unpaired{Prompt: "p", Completion: "c\xff"}); !errors.Is(err, ErrInvalidUTF8) || buf.Len() != 0 {
		t.Errorf("WriteUnpaired with invalid UTF-8: %v, wrote %q", err, buf.String())
	}
	r := NewUnpairedReader(&repeatReader{n: 100})
	r.SetMaxLine(50)
	if _, err := r.Next(); !errors.Is(err, ErrLineTooLong) {
		t.Errorf("UnpairedReader past its limit: %v", err)
	}
}

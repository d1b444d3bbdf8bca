package itec

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/posttrain/posttrain/internal/atomicfile"
)

// A checkpoint directory holds state.json, the commit point, and data files
// that state.json lists with their SHA-256. Every file is written whole to a
// temporary name, synced and renamed into place; a data file is never
// rewritten once a committed state names it, so a run killed at any moment
// leaves the last committed state and its files intact. Labels are the
// exception that proves the rule: they are appended, one synced line each,
// to a log as they arrive, so not one human label is lost; the log becomes
// a checksummed data file when the label step commits.

const stateFile = "state.json"

// writeAtomic writes data to dir/name through a synced temporary file and a
// rename, and returns its SHA-256 in hex.
func writeAtomic(dir, name string, data []byte) (string, error) {
	if err := atomicfile.Write(filepath.Join(dir, name), data); err != nil {
		return "", fmt.Errorf("itec: checkpoint: writing %s: %w", name, err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]), nil
}

// readVerified reads dir/name and checks it against the SHA-256 in hex.
func readVerified(dir, name, sum string) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return nil, fmt.Errorf("itec: checkpoint: %w", err)
	}
	got := sha256.Sum256(b)
	if hex.EncodeToString(got[:]) != sum {
		return nil, fmt.Errorf("itec: checkpoint: %s does not match its checksum in %s: the file is corrupt or was changed", name, stateFile)
	}
	return b, nil
}

// jsonLines encodes each element of v as one JSON line.
func jsonLines[T any](v []T) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for _, x := range v {
		if err := enc.Encode(x); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}

// readLines decodes JSON lines; name is for error messages.
func readLines[T any](b []byte, name string) ([]T, error) {
	var out []T
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 64<<20)
	for line := 1; sc.Scan(); line++ {
		var x T
		if err := json.Unmarshal(sc.Bytes(), &x); err != nil {
			return nil, fmt.Errorf("itec: checkpoint: %s line %d: %w", name, line, err)
		}
		out = append(out, x)
	}
	return out, sc.Err()
}

// labelLog appends labels as they arrive, one synced JSON line each.
type labelLog struct{ f *os.File }

type loggedLabel struct {
	Index    int    `json:"i"`
	Prompt   string `json:"prompt"`
	Chosen   string `json:"chosen"`
	Rejected string `json:"rejected"`
	Level    string `json:"level"`
}

func openLabelLog(path string) (*labelLog, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("itec: label log: %w", err)
	}
	return &labelLog{f}, nil
}

func (l *labelLog) append(e loggedLabel) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if _, err := l.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("itec: label log: %w", err)
	}
	return l.f.Sync()
}

func (l *labelLog) close() error { return l.f.Close() }

// readLabelLog returns the logged labels by candidate index. A torn last
// line (the process died mid-write) is ignored; any other bad line is an
// error.
func readLabelLog(path string) (map[int]loggedLabel, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return map[int]loggedLabel{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("itec: label log: %w", err)
	}
	out := map[int]loggedLabel{}
	lines := bytes.Split(b, []byte("\n"))
	for i, ln := range lines {
		if len(ln) == 0 {
			continue
		}
		var e loggedLabel
		if err := json.Unmarshal(ln, &e); err != nil {
			if i == len(lines)-1 { // no newline after it: torn
				break
			}
			return nil, fmt.Errorf("itec: label log %s line %d: %w", filepath.Base(path), i+1, err)
		}
		out[e.Index] = e
	}
	return out, nil
}

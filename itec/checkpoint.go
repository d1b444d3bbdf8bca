package itec

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/posttrain/posttrain/internal/atomicfile"
)

// A checkpoint directory holds state.json, the commit point, and data files
// that state.json lists with their SHA-256. state.json carries the SHA-256
// of its own content too, and its invariants are checked on load. Every
// file is written whole to a temporary name, synced and renamed into place;
// a data file is never rewritten once a committed state names it, so a run
// killed at any moment leaves the last committed state and its files
// intact. Labels are the exception that proves the rule: they are appended
// to a log as they arrive, one synced and checksummed line each, so a
// label returned by the Labeler is durable before the next request is
// issued; the log becomes a checksummed data file when the label step
// commits.

// ErrCheckpoint reports a checkpoint that cannot be trusted: a file that
// does not match its checksum, a state.json whose content contradicts
// itself, or a label log with a damaged line. Errors that wrap it name the
// file (and line). Run never resumes from such a checkpoint.
var ErrCheckpoint = errors.New("itec: corrupt checkpoint")

const stateFile = "state.json"

// corrupt returns an error wrapping ErrCheckpoint.
func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCheckpoint, fmt.Sprintf(format, args...))
}

// writeAtomic writes data to dir/name through a synced temporary file and a
// rename, and returns its SHA-256 in hex.
func writeAtomic(dir, name string, data []byte) (string, error) {
	if err := atomicfile.Write(filepath.Join(dir, name), data); err != nil {
		return "", fmt.Errorf("itec: checkpoint: writing %s: %w", name, err)
	}
	return hexSum(data), nil
}

func hexSum(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// readVerified reads dir/name and checks it against the SHA-256 in hex.
func readVerified(dir, name, sum string) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return nil, fmt.Errorf("itec: checkpoint: %w", err)
	}
	if hexSum(b) != sum {
		return nil, corrupt("%s does not match its checksum in %s: the file is corrupt or was changed", name, stateFile)
	}
	return b, nil
}

// stateEnvelope is state.json on disk: the state's JSON and its SHA-256.
// The state is kept as raw bytes so that the checksum covers exactly the
// bytes in the file.
type stateEnvelope struct {
	SHA256 string          `json:"sha256"`
	State  json.RawMessage `json:"state"`
}

// encodeState returns state.json's bytes for st.
func encodeState(st *State) ([]byte, error) {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "{\"sha256\": %q,\n\"state\": ", hexSum(b))
	buf.Write(b)
	buf.WriteString("}\n")
	return buf.Bytes(), nil
}

// decodeState parses state.json and checks its checksum; the invariants
// are the caller's (run.validate).
func decodeState(b []byte) (State, error) {
	var env stateEnvelope
	if err := strictUnmarshal(b, &env); err != nil {
		return State{}, corrupt("%s: %v", stateFile, err)
	}
	if env.SHA256 == "" || env.State == nil {
		return State{}, corrupt("%s has no checksummed state (written by an older posttrain, or damaged)", stateFile)
	}
	if hexSum(env.State) != env.SHA256 {
		return State{}, corrupt("%s does not match its checksum: the file is corrupt or was changed", stateFile)
	}
	var st State
	if err := strictUnmarshal(env.State, &st); err != nil {
		return State{}, corrupt("%s: %v", stateFile, err)
	}
	return st, nil
}

// strictUnmarshal decodes one JSON value, refusing unknown fields and
// trailing data.
func strictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON value")
	}
	return nil
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
			return nil, corrupt("%s line %d: %v", name, line, err)
		}
		out = append(out, x)
	}
	return out, sc.Err()
}

// labelLog appends labels as they arrive, one synced line each. A line is
// the SHA-256 (hex) of its JSON, a space, the JSON and a newline, so a line
// damaged or edited into other valid JSON is detected.
type labelLog struct{ f *os.File }

type loggedLabel struct {
	Index    int    `json:"i"`
	Prompt   string `json:"prompt"`
	Chosen   string `json:"chosen"`
	Rejected string `json:"rejected"`
	Level    string `json:"level"`
}

// openLabelLog opens the log for appending. valid is the length of its
// intact prefix as readLabelLog found it: a torn last line beyond it (the
// process died mid-write) is cut off, so new lines start on a line of
// their own.
func openLabelLog(path string, valid int64) (*labelLog, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("itec: label log: %w", err)
	}
	fi, err := f.Stat()
	if err == nil && fi.Size() != valid {
		if err = f.Truncate(valid); err == nil {
			err = f.Sync()
		}
	}
	if err == nil {
		_, err = f.Seek(valid, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("itec: label log: %w", err)
	}
	// Make the log's directory entry durable before any label relies on it.
	if d, derr := os.Open(filepath.Dir(path)); derr == nil {
		d.Sync()
		d.Close()
	}
	return &labelLog{f}, nil
}

func (l *labelLog) append(e loggedLabel) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	line := make([]byte, 0, 64+1+len(b)+1)
	line = append(line, hexSum(b)...)
	line = append(line, ' ')
	line = append(line, b...)
	line = append(line, '\n')
	if _, err := l.f.Write(line); err != nil {
		return fmt.Errorf("itec: label log: %w", err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("itec: label log: %w", err)
	}
	return nil
}

func (l *labelLog) close() error { return l.f.Close() }

// readLabelLog returns the logged labels by candidate index, and the length
// of the log's intact prefix. A last line without its newline is torn (the
// process died mid-write; the label was never synced) and is ignored; any
// other line that does not match its checksum or does not parse is an
// error wrapping ErrCheckpoint.
func readLabelLog(path string) (map[int]loggedLabel, int64, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return map[int]loggedLabel{}, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("itec: label log: %w", err)
	}
	out := map[int]loggedLabel{}
	name := filepath.Base(path)
	var valid int64
	for line := 1; len(b) > 0; line++ {
		nl := bytes.IndexByte(b, '\n')
		if nl < 0 {
			break // torn
		}
		ln := b[:nl]
		b = b[nl+1:]
		if len(ln) < 65 || ln[64] != ' ' {
			return nil, 0, corrupt("label log %s line %d: not a checksummed line", name, line)
		}
		if hexSum(ln[65:]) != string(ln[:64]) {
			return nil, 0, corrupt("label log %s line %d does not match its checksum", name, line)
		}
		var e loggedLabel
		if err := strictUnmarshal(ln[65:], &e); err != nil {
			return nil, 0, corrupt("label log %s line %d: %v", name, line, err)
		}
		if _, dup := out[e.Index]; dup {
			return nil, 0, corrupt("label log %s line %d: candidate %d labeled twice", name, line, e.Index)
		}
		out[e.Index] = e
		valid += int64(nl + 1)
	}
	return out, valid, nil
}

package jetstream

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posttrain/posttrain/itec"
)

// dirLoader reads a member from a checkpoint directory: table.json's
// answer for every prompt, and the directory's file list after it.
type dirLoader struct {
	mu  *sync.Mutex
	got *[]string // table.json, then the file names
}

func (l dirLoader) Generator(_ context.Context, m Model) (itec.Generator, error) {
	b, err := os.ReadFile(filepath.Join(m.File, "table.json"))
	if err != nil {
		return nil, err
	}
	var names []string
	filepath.WalkDir(m.File, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(m.File, p)
			names = append(names, filepath.ToSlash(rel))
		}
		return nil
	})
	l.mu.Lock()
	*l.got = append([]string{string(b)}, names...)
	l.mu.Unlock()
	return echoGen{}, nil
}

func (dirLoader) Scorer(context.Context, Model) (itec.Scorer, error) { return nil, os.ErrInvalid }

// A checkpoint directory travels as one object and arrives whole.
func TestDirectoryCheckpoint(t *testing.T) {
	src := t.TempDir()
	for name, body := range map[string]string{"table.json": `{"a":1}`, "shards/model-00001.safetensors": "weights", "tokenizer.json": "{}"} {
		p := filepath.Join(src, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s := startServer(t, "")
	ex := open(t, connect(t, s), Options{Run: "dir"})
	var mu sync.Mutex
	var gotDir []string
	serve(t, connect(t, s), "dir", &Worker{Loader: dirLoader{&mu, &gotDir}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := ex.Generate(ctx, itec.GenerateTask{ID: "d/1", Member: itec.Member{Name: "hf", Ref: src}, Prompt: "p", Seeds: []uint64{1}}); err != nil {
		t.Fatal(err)
	}
	want := []string{`{"a":1}`, "shards/model-00001.safetensors", "table.json", "tokenizer.json"}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(gotDir, "|") != strings.Join(want, "|") {
		t.Fatalf("the worker's copy holds %q, want %q", gotDir, want)
	}
}

// The same directory packs to the same bytes whatever its files' times;
// a tar reaching outside its directory is refused.
func TestPackDir(t *testing.T) {
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "b"), []byte("2"), 0o644)
	os.WriteFile(filepath.Join(src, "a"), []byte("1"), 0o600)
	var one, two bytes.Buffer
	if err := packDir(src, &one); err != nil {
		t.Fatal(err)
	}
	old := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	os.Chtimes(filepath.Join(src, "a"), old, old)
	if err := packDir(src, &two); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(one.Bytes(), two.Bytes()) {
		t.Fatal("packing the same files twice gave different bytes")
	}
	for _, name := range []string{"../evil", "/etc/evil", "a/../../evil"} {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		tw.WriteHeader(&tar.Header{Name: name, Size: 1, Mode: 0o644, Typeflag: tar.TypeReg})
		tw.Write([]byte("x"))
		tw.Close()
		dst := filepath.Join(t.TempDir(), "out")
		if err := unpackDir(&buf, dst); err == nil || !strings.Contains(err.Error(), "not a plain file inside") {
			t.Errorf("entry %q: %v", name, err)
		}
		if _, err := os.Stat(dst); err == nil {
			t.Errorf("entry %q: the directory was created", name)
		}
	}
}

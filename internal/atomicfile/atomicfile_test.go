package atomicfile

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state.json")
	for _, s := range []string{"first", "second, longer"} {
		if err := Write(p, []byte(s)); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(p)
		if err != nil || string(b) != s {
			t.Fatalf("read %q, %v; want %q", b, err, s)
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("%d files left in the directory, want 1 (no temporaries)", len(ents))
	}
	// A destination that cannot be replaced (a directory) is an error, the
	// destination stays and no temporary file is left behind.
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sub, "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Write(sub, []byte("data")); err == nil {
		t.Fatal("writing over a non-empty directory succeeded")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Fatalf("%d entries after a failed write, want 2", len(ents))
	}
	if err := Write(filepath.Join(dir, "missing", "f"), nil); err == nil {
		t.Fatal("writing into a missing directory succeeded")
	}
}

// TestKillHelper is the process TestRemoveStale kills in the middle of a
// write.
func TestKillHelper(t *testing.T) {
	path := os.Getenv("ATOMICFILE_KILL_HELPER")
	if path == "" {
		t.Skip("helper process only")
	}
	WriteFunc(path, func(w io.Writer) error {
		w.Write([]byte("new, torn"))
		fmt.Println("writing")
		time.Sleep(time.Minute) // until killed
		return nil
	})
	os.Exit(1)
}

// A write killed before its rename leaves the destination as it was and a
// temporary file that IsTemp recognizes; RemoveStale removes it and
// nothing else.
func TestRemoveStale(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "js" || runtime.GOOS == "wasip1" || runtime.GOOS == "plan9" {
		t.Skip("no subprocess kill test here")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	if err := Write(path, []byte("old")); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillHelper$")
	cmd.Env = append(os.Environ(), "ATOMICFILE_KILL_HELPER="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	cmd.Process.Kill()
	cmd.Wait()
	if line != "writing\n" {
		t.Fatalf("helper: %q", line)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "old" {
		t.Fatalf("destination after a killed write: %q, %v; want %q", b, err, "old")
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var stale []string
	for _, e := range ents {
		if e.Name() != "state.json" {
			stale = append(stale, e.Name())
		}
	}
	if len(stale) != 1 || !IsTemp(stale[0]) || !strings.HasPrefix(stale[0], ".state.json.") {
		t.Fatalf("files left by the killed write: %q, want one temporary", stale)
	}

	// Files that are not provably ours stay: other shapes of name, a
	// directory and a symbolic link of our shape, and files below dir.
	keep := []string{
		"state.json",
		"state.json.atomicfile-1.tmp",    // no leading dot
		"..atomicfile-1.tmp",             // no NAME
		".x.atomicfile-.tmp",             // no digits
		".x.atomicfile-12a.tmp",          // not digits
		".x.atomicfile-12345678901.tmp",  // more than a uint32
		".x.atomicfile-1.tmp~",           // other suffix
		".x.tmp123",                      // another program's temporary
		".x.atomicfile-1.tmp.atomicfile", // our mark, not at the end
	}
	for _, n := range keep[1:] {
		if IsTemp(n) {
			t.Errorf("IsTemp(%q) = true", n)
		}
		if err := os.WriteFile(filepath.Join(dir, n), []byte("keep"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sub := filepath.Join(dir, ".d.atomicfile-7.tmp")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	below := filepath.Join(sub, ".y.atomicfile-8.tmp")
	if err := os.WriteFile(below, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(t.TempDir(), "target")
	if err := os.WriteFile(target, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := ".l.atomicfile-9.tmp"
	if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
		t.Fatal(err)
	}
	keep = append(keep, filepath.Base(sub), link)

	removed, err := RemoveStale(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0] != stale[0] {
		t.Fatalf("removed %q, want [%q]", removed, stale[0])
	}
	ents, _ = os.ReadDir(dir)
	var left []string
	for _, e := range ents {
		left = append(left, e.Name())
	}
	slices.Sort(left)
	slices.Sort(keep)
	if !slices.Equal(left, keep) {
		t.Fatalf("left %q, want %q", left, keep)
	}
	for _, p := range []string{below, target} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
	}
	if b, _ := os.ReadFile(path); string(b) != "old" {
		t.Fatalf("destination %q after RemoveStale", b)
	}
	if _, err := RemoveStale(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("RemoveStale of a missing directory succeeded")
	}
}

// A File streams over many writes and patches its start; the destination
// keeps its old content until Commit, and Abort leaves it so.
func TestFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "cache.ptc")
	require.NoError(t, Write(p, []byte("old")))

	f, err := Create(p)
	require.NoError(t, err)
	for _, s := range []string{"hhhh", "body-1,", "body-2"} {
		_, err := f.Write([]byte(s))
		require.NoError(t, err)
	}
	_, err = f.WriteAt([]byte("HEAD"), 0)
	require.NoError(t, err)
	_, err = f.Write([]byte(".")) // WriteAt did not move the append offset
	require.NoError(t, err)
	b, _ := os.ReadFile(p)
	assert.Equal(t, "old", string(b), "destination before Commit")
	temps, _ := filepath.Glob(filepath.Join(dir, ".cache.ptc.atomicfile-*.tmp"))
	require.Len(t, temps, 1, "the temporary file's name")
	assert.True(t, IsTemp(filepath.Base(temps[0])))

	require.NoError(t, f.Commit())
	b, _ = os.ReadFile(p)
	assert.Equal(t, "HEADbody-1,body-2.", string(b))
	ents, _ := os.ReadDir(dir)
	assert.Len(t, ents, 1, "a temporary file left after Commit")
	_, err = f.Write([]byte("late"))
	assert.Error(t, err, "Write after Commit")
	assert.Error(t, f.Commit(), "Commit twice")
	f.Abort() // a no-op after Commit
	b, _ = os.ReadFile(p)
	assert.Equal(t, "HEADbody-1,body-2.", string(b), "Abort after Commit")

	g, err := Create(p)
	require.NoError(t, err)
	_, err = g.Write([]byte("discarded"))
	require.NoError(t, err)
	g.Abort()
	b, _ = os.ReadFile(p)
	assert.Equal(t, "HEADbody-1,body-2.", string(b), "destination after Abort")
	ents, _ = os.ReadDir(dir)
	assert.Len(t, ents, 1, "a temporary file left after Abort")
	assert.Error(t, g.Commit(), "Commit after Abort")

	_, err = Create(filepath.Join(dir, "missing", "f"))
	assert.Error(t, err, "Create in a missing directory")
}

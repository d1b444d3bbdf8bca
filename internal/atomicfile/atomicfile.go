// Package atomicfile writes a file whole or not at all: the data goes to a
// temporary file in the same directory, which is synced, closed and renamed
// over the destination, and the directory is synced so the rename survives
// a crash. A reader therefore sees the old file or the new one, never a
// torn mix. Checkpoints, teacher caches, their manifests and model files
// all use it: Write for a byte slice, WriteFunc for a stream produced by
// one function, File for a file written over many calls.
//
// A process killed in the middle of a write leaves its temporary file
// behind (nothing runs at SIGKILL). The destination is untouched, so the
// leftover is harmless, and its name says what it is: for a destination
// named NAME it is ".NAME.atomicfile-DIGITS.tmp". RemoveStale deletes such
// leftovers from a directory its caller owns.
package atomicfile

import (
	"bufio"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// tempMark and tempSuffix frame the random digits of a temporary file's
// name: ".NAME" + tempMark + DIGITS + tempSuffix.
const (
	tempMark   = ".atomicfile-"
	tempSuffix = ".tmp"
)

// Write writes data to path atomically. On error the temporary file is
// removed and path is left as it was.
func Write(path string, data []byte) error {
	return WriteFunc(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WriteFunc writes what write produces to path atomically, streaming it
// to the temporary file, so a file larger than memory can be written
// whole or not at all. An error from write leaves path as it was.
func WriteFunc(path string, write func(w io.Writer) error) error {
	f, err := Create(path)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	err = write(bw)
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		f.Abort()
		return err
	}
	return f.Commit()
}

// File is a file being written atomically, for writers that WriteFunc's
// one callback does not fit: one that appends over many calls, as a
// cache fills batch by batch, or that patches what it wrote, as a header
// rewritten with the final counts. Its data goes to a temporary file
// beside the destination; Commit makes it the destination, whole, and
// Abort discards it. Until one of them is called the destination is
// untouched. A File is not safe for concurrent use.
type File struct {
	f    *os.File
	path string
	done bool
}

// Create starts an atomic write of path: a temporary file in path's
// directory, named as IsTemp recognizes.
func Create(path string) (*File, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+tempMark+"*"+tempSuffix)
	if err != nil {
		return nil, err
	}
	return &File{f: f, path: path}, nil
}

// errDone is returned by writes after Commit or Abort.
var errDone = errors.New("atomicfile: write after Commit or Abort")

// Write appends p to the temporary file.
func (f *File) Write(p []byte) (int, error) {
	if f.done {
		return 0, errDone
	}
	return f.f.Write(p)
}

// WriteAt writes p at offset off of the temporary file, as os.File's
// WriteAt does; it does not move the offset Write appends at.
func (f *File) WriteAt(p []byte, off int64) (int, error) {
	if f.done {
		return 0, errDone
	}
	return f.f.WriteAt(p, off)
}

// Commit syncs and closes the temporary file, renames it over the
// destination and syncs the directory so the rename survives a crash. On
// error the temporary file is removed and the destination is left as it
// was. Commit after Commit or Abort is an error.
func (f *File) Commit() error {
	if f.done {
		return errDone
	}
	f.done = true
	tmp := f.f.Name()
	err := f.f.Sync()
	if cerr := f.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, f.path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	// Make the rename itself durable; a directory that cannot be opened
	// or synced (some filesystems refuse) leaves the file written anyway.
	if d, err := os.Open(filepath.Dir(f.path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Abort closes and removes the temporary file, leaving the destination as
// it was. It does nothing after Commit or Abort, so a deferred Abort is a
// safe cleanup on every error path.
func (f *File) Abort() {
	if f.done {
		return
	}
	f.done = true
	f.f.Close()
	os.Remove(f.f.Name())
}

// IsTemp reports whether name (a base name, no directory) has the shape of
// this package's temporary files: ".NAME.atomicfile-DIGITS.tmp" with NAME
// not empty and 1 to 10 decimal digits (os.CreateTemp's random part, a
// uint32).
func IsTemp(name string) bool {
	if !strings.HasPrefix(name, ".") || !strings.HasSuffix(name, tempSuffix) {
		return false
	}
	mid := name[1 : len(name)-len(tempSuffix)]
	i := strings.LastIndex(mid, tempMark)
	if i <= 0 {
		return false
	}
	digits := mid[i+len(tempMark):]
	if len(digits) == 0 || len(digits) > 10 {
		return false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// RemoveStale removes from dir the temporary files that writes killed
// before their rename left behind, and returns the names it removed. It
// removes only regular files (not directories, not symbolic links) whose
// name IsTemp, and never looks below dir.
//
// A temporary file of a write still in progress looks exactly like a stale
// one, so call RemoveStale only while no write into dir can be under way:
// under an exclusive lock that every writer of dir takes, as itec.Run does
// for its checkpoint directory. An error names the first file that could
// not be removed; the others are removed all the same.
func RemoveStale(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var removed []string
	var first error
	for _, e := range ents {
		if !e.Type().IsRegular() || !IsTemp(e.Name()) {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			if first == nil {
				first = err
			}
			continue
		}
		removed = append(removed, e.Name())
	}
	return removed, first
}

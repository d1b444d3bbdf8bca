// Package atomicfile writes a file whole or not at all: the data goes to a
// temporary file in the same directory, which is synced, closed and renamed
// over the destination, and the directory is synced so the rename survives
// a crash. A reader therefore sees the old file or the new one, never a
// torn mix. Checkpoints, cache manifests and model files all use it.
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
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+tempMark+"*"+tempSuffix)
	if err != nil {
		return err
	}
	tmp := f.Name()
	bw := bufio.NewWriterSize(f, 1<<20)
	err = write(bw)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	// Make the rename itself durable; a directory that cannot be opened
	// or synced (some filesystems refuse) leaves the file written anyway.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
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

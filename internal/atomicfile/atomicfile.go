// Package atomicfile writes a file whole or not at all: the data goes to a
// temporary file in the same directory, which is synced, closed and renamed
// over the destination, and the directory is synced so the rename survives
// a crash. A reader therefore sees the old file or the new one, never a
// torn mix. Checkpoints, cache manifests and model files all use it.
package atomicfile

import (
	"bufio"
	"io"
	"os"
	"path/filepath"
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
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
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

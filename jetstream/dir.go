package jetstream

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// A checkpoint directory (a transformers checkpoint: config.json, the
// safetensors shards, tokenizer.json) travels as one object: a tar of its
// regular files in name order with no times or owners, so the same
// directory always packs to the same bytes and the same SHA-256.

// packDir writes dir's regular files, recursively, as a canonical tar.
func packDir(dir string, w io.Writer) error {
	var names []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, err := filepath.Rel(dir, p)
			if err != nil {
				return err
			}
			names = append(names, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(names)
	tw := tar.NewWriter(w)
	for _, n := range names {
		f, err := os.Open(filepath.Join(dir, filepath.FromSlash(n)))
		if err != nil {
			return err
		}
		fi, err := f.Stat()
		if err == nil {
			err = tw.WriteHeader(&tar.Header{Name: n, Size: fi.Size(), Mode: 0o644, Typeflag: tar.TypeReg, Format: tar.FormatPAX})
		}
		if err == nil {
			_, err = io.Copy(tw, f)
		}
		f.Close()
		if err != nil {
			return err
		}
	}
	return tw.Close()
}

// unpackDir extracts a tar written by packDir into dst, which must not
// exist: into a temporary directory beside it, renamed into place. Names
// that would land outside dst are refused.
func unpackDir(r io.Reader, dst string) error {
	tmp, err := os.MkdirTemp(filepath.Dir(dst), filepath.Base(dst)+".part")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		n := filepath.FromSlash(h.Name)
		if h.Typeflag != tar.TypeReg || !filepath.IsLocal(n) || strings.HasPrefix(h.Name, "/") {
			return fmt.Errorf("checkpoint directory entry %q is not a plain file inside it", h.Name)
		}
		p := filepath.Join(tmp, n)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		_, err = io.Copy(f, tr)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return os.Rename(tmp, dst)
}

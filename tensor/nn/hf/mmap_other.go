//go:build !linux

package hf

import "golang.org/x/exp/mmap"

// mapping is a read-only memory map of a checkpoint file
// (golang.org/x/exp/mmap); windows are copied out through ReadAt.
type mapping struct {
	*mmap.ReaderAt
}

// mappedInPlace reports that window copies into the scratch buffer.
const mappedInPlace = false

func openMapping(path string) (*mapping, error) {
	r, err := mmap.Open(path)
	if err != nil {
		return nil, err
	}
	return &mapping{r}, nil
}

func (m *mapping) window(off int64, n int, scratch []byte) []byte {
	b := scratch[:n]
	m.ReadAt(b, off)
	return b
}

func (m *mapping) release(off int64, n int) {}

//go:build linux

package hf

import (
	"fmt"
	"os"
	"syscall"
)

// mapping is a read-only memory map of a checkpoint file. On Linux the
// loader reads the mapped bytes in place and hands each converted window
// back to the kernel (MADV_DONTNEED), so a bf16 checkpoint never holds
// both its mapped bytes and its float32 copy resident: RSS stays at the
// float32 weights plus one window.
type mapping struct {
	data []byte
}

// mappedInPlace reports that window returns the mapped bytes themselves,
// so converting needs no scratch buffer.
const mappedInPlace = true

func openMapping(path string) (*mapping, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := st.Size()
	if size == 0 {
		return &mapping{}, nil
	}
	if size != int64(int(size)) || size < 0 {
		return nil, fmt.Errorf("file of %d bytes too large to map", size)
	}
	data, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap: %v", err)
	}
	return &mapping{data: data}, nil
}

func (m *mapping) Len() int { return len(m.data) }

func (m *mapping) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off > int64(len(m.data)) {
		return 0, fmt.Errorf("offset %d outside %d bytes", off, len(m.data))
	}
	n := copy(p, m.data[off:])
	if n < len(p) {
		return n, fmt.Errorf("short read at %d", off)
	}
	return n, nil
}

// window returns bytes [off, off+n) of the file; scratch is unused here.
func (m *mapping) window(off int64, n int, _ []byte) []byte { return m.data[off : off+int64(n)] }

// release tells the kernel the whole pages inside [off, off+n) are no
// longer needed, dropping them from the process's resident set.
func (m *mapping) release(off int64, n int) {
	pg := int64(os.Getpagesize())
	lo := (off + pg - 1) / pg * pg
	hi := (off + int64(n)) / pg * pg
	if hi > lo {
		syscall.Madvise(m.data[lo:hi], syscall.MADV_DONTNEED)
	}
}

func (m *mapping) Close() error {
	if m.data == nil {
		return nil
	}
	err := syscall.Munmap(m.data)
	m.data = nil
	return err
}

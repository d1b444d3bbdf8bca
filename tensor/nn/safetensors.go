package nn

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sort"
	"sync"

	"github.com/posttrain/posttrain/tensor"

	"github.com/posttrain/posttrain/internal/atomicfile"
)

// Tensor is a named tensor in a safetensors file.
type Tensor struct {
	Name  string
	Value *tensor.Dense
}

// maxHeader bounds the JSON header a reader accepts (the reference
// implementation's limit), so a corrupt length cannot ask for gigabytes.
const maxHeader = 100 << 20

type entry struct {
	Dtype   string `json:"dtype"`
	Shape   []int  `json:"shape"`
	Offsets [2]int `json:"data_offsets"`
}

// EncodeSafetensors returns the safetensors encoding of tensors (as F32,
// in the given order) and metadata: an 8-byte little-endian header
// length, a JSON header padded with spaces to a multiple of 8 bytes, then
// the raw little-endian data. SaveSafetensors writes the same bytes
// without holding them all in memory.
func EncodeSafetensors(tensors []Tensor, metadata map[string]string) ([]byte, error) {
	h, size, err := encodeHeader(tensors, metadata)
	if err != nil {
		return nil, err
	}
	out := make([]byte, len(h), size)
	copy(out, h)
	for _, t := range tensors {
		for _, v := range t.Value.Data() {
			out = binary.LittleEndian.AppendUint32(out, math.Float32bits(v))
		}
	}
	return out, nil
}

// encodeHeader returns the length prefix and padded JSON header of the
// encoding of tensors and metadata, and the size of the whole encoding.
func encodeHeader(tensors []Tensor, metadata map[string]string) ([]byte, int, error) {
	header := map[string]any{}
	if len(metadata) > 0 {
		header["__metadata__"] = metadata
	}
	off := 0
	for _, t := range tensors {
		if t.Name == "" || t.Name == "__metadata__" {
			return nil, 0, fmt.Errorf("nn: safetensors: bad tensor name %q", t.Name)
		}
		if _, dup := header[t.Name]; dup {
			return nil, 0, fmt.Errorf("nn: safetensors: duplicate tensor name %q", t.Name)
		}
		n := 4 * t.Value.Len()
		header[t.Name] = entry{Dtype: "F32", Shape: append([]int{}, t.Value.Shape()...), Offsets: [2]int{off, off + n}}
		off += n
	}
	h, err := json.Marshal(header)
	if err != nil {
		return nil, 0, fmt.Errorf("nn: safetensors: %v", err)
	}
	pad := (8 - len(h)%8) % 8
	out := make([]byte, 8, 8+len(h)+pad)
	binary.LittleEndian.PutUint64(out, uint64(len(h)+pad))
	out = append(out, h...)
	for range pad {
		out = append(out, ' ')
	}
	return out, len(out) + off, nil
}

// chunk is the size of the buffer data is converted through on its way
// to and from a file: large enough that the per-call costs vanish, small
// enough not to matter beside a model.
const chunk = 64 << 10

// chunks recycles conversion buffers: next to a model of gigabytes the
// garbage collector runs rarely, so a fresh buffer per tensor would pile
// up to tens of megabytes before it is reclaimed.
var chunks = sync.Pool{New: func() any { return new([chunk]byte) }}

// WriteF32 writes data to w as little-endian float32 values, the layout
// of safetensors F32 data, through a fixed 64 KiB buffer: a tensor of
// any size is written, or hashed, without a copy of it in memory.
func WriteF32(w io.Writer, data []float32) error {
	b := chunks.Get().(*[chunk]byte)
	defer chunks.Put(b)
	buf := b[:]
	for len(data) > 0 {
		n := min(len(data), chunk/4)
		for i, v := range data[:n] {
			binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
		}
		if _, err := w.Write(buf[:4*n]); err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

// SaveSafetensors writes tensors and metadata to path atomically: to a
// temporary file in the same directory, synced, then renamed over path,
// so a crash leaves either the old file or the new one. The file holds
// exactly EncodeSafetensors' bytes, streamed: the memory it needs beyond
// the tensors is a few buffers, whatever their size.
func SaveSafetensors(path string, tensors []Tensor, metadata map[string]string) error {
	h, _, err := encodeHeader(tensors, metadata)
	if err != nil {
		return err
	}
	err = atomicfile.WriteFunc(path, func(w io.Writer) error {
		if _, err := w.Write(h); err != nil {
			return err
		}
		for _, t := range tensors {
			if err := WriteF32(w, t.Value.Data()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("nn: safetensors: %v", err)
	}
	return nil
}

// LoadSafetensors reads a safetensors file; see DecodeSafetensors. It
// reads each tensor straight from the file into its float32 storage, so
// the memory it needs beyond the tensors is a small buffer.
func LoadSafetensors(path string) ([]Tensor, map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("nn: safetensors: %v", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("nn: safetensors: %v", err)
	}
	ts, md, err := decode(f, st.Size())
	if err != nil {
		return nil, nil, fmt.Errorf("%v (file %s)", err, path)
	}
	return ts, md, nil
}

// ReadTensorData reads the data of t from r, a safetensors file as
// ReadSafetensorsHeader described it, converting it into dst (of
// t.Len() elements) through a fixed 64 KiB buffer.
func ReadTensorData(r io.ReaderAt, t *TensorInfo, dst []float32) error {
	size := int64(dtypeSize[t.Dtype])
	if size == 0 {
		return fmt.Errorf("nn: safetensors: tensor %q: unsupported dtype %q", t.Name, t.Dtype)
	}
	if int64(len(dst))*size != t.End-t.Begin {
		return fmt.Errorf("nn: safetensors: tensor %q: %d bytes of data for %d elements", t.Name, t.End-t.Begin, len(dst))
	}
	b := chunks.Get().(*[chunk]byte)
	defer chunks.Put(b)
	buf := b[:]
	per := chunk / int(size)
	for off := t.Begin; len(dst) > 0; {
		n := min(len(dst), per)
		raw := buf[:n*int(size)]
		if _, err := r.ReadAt(raw, off); err != nil {
			return fmt.Errorf("nn: safetensors: tensor %q: %v", t.Name, err)
		}
		DecodeTensorData(dst[:n], raw, t.Dtype)
		dst, off = dst[n:], off+int64(len(raw))
	}
	return nil
}

var dtypeSize = map[string]int{"F32": 4, "F16": 2, "BF16": 2, "F64": 8}

// maxTensors bounds the entries of one header, so that a header of
// millions of empty tensors is refused before it costs gigabytes.
const maxTensors = 1 << 17

// TensorInfo describes one tensor of a safetensors file: dtype, shape and
// the byte range [Begin, End) of its data, counted from the start of the
// file.
type TensorInfo struct {
	Name       string
	Dtype      string
	Shape      []int
	Begin, End int64
}

// Len returns the number of elements.
func (t *TensorInfo) Len() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// ReadSafetensorsHeader reads and validates the header of a safetensors
// file of size bytes through r: header length and JSON, dtypes (F32, F16,
// BF16, F64), shapes against byte ranges, and that the tensors tile the
// data section exactly, without gaps, overlaps or bytes past the end (a
// truncated file fails here). It returns the tensors in the order of
// their data and the metadata; an error names the tensor and the field at
// fault. It reads only the header, so the data may stay on disk or in a
// memory map.
func ReadSafetensorsHeader(r io.ReaderAt, size int64) ([]TensorInfo, map[string]string, error) {
	var lb [8]byte
	if size < 8 {
		return nil, nil, fmt.Errorf("nn: safetensors: %d bytes is too short for the header length", size)
	}
	if _, err := r.ReadAt(lb[:], 0); err != nil {
		return nil, nil, fmt.Errorf("nn: safetensors: reading the header length: %v", err)
	}
	hl := binary.LittleEndian.Uint64(lb[:])
	if hl > maxHeader || hl > uint64(size-8) {
		return nil, nil, fmt.Errorf("nn: safetensors: header length %d exceeds the file (%d bytes) or the %d-byte limit", hl, size, maxHeader)
	}
	hb := make([]byte, hl)
	if _, err := r.ReadAt(hb, 8); err != nil {
		return nil, nil, fmt.Errorf("nn: safetensors: reading the header: %v", err)
	}
	if !bytes.HasPrefix(hb, []byte("{")) {
		return nil, nil, fmt.Errorf("nn: safetensors: header does not start with '{'")
	}
	base := 8 + int64(hl)
	dataLen := size - base
	raw, err := headerEntries(hb)
	if err != nil {
		return nil, nil, err
	}
	var md map[string]string
	items := make([]TensorInfo, 0, len(raw))
	for _, kv := range raw {
		name, msg := kv.name, kv.msg
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &md); err != nil {
				return nil, nil, fmt.Errorf("nn: safetensors: __metadata__ must map strings to strings: %v", err)
			}
			continue
		}
		var e entry
		dec := json.NewDecoder(bytes.NewReader(msg))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			return nil, nil, fmt.Errorf("nn: safetensors: tensor %q: %v", name, err)
		}
		size, ok := dtypeSize[e.Dtype]
		if !ok {
			return nil, nil, fmt.Errorf("nn: safetensors: tensor %q: unsupported dtype %q", name, e.Dtype)
		}
		if e.Shape == nil {
			return nil, nil, fmt.Errorf("nn: safetensors: tensor %q: missing shape", name)
		}
		n := 1
		for _, d := range e.Shape {
			if d < 0 || (d > 0 && n > math.MaxInt32/d) {
				return nil, nil, fmt.Errorf("nn: safetensors: tensor %q: bad shape %v", name, e.Shape)
			}
			n *= d
		}
		lo, hi := int64(e.Offsets[0]), int64(e.Offsets[1])
		if lo < 0 || hi < lo || hi > dataLen {
			return nil, nil, fmt.Errorf("nn: safetensors: tensor %q: data_offsets %v outside data of %d bytes (file truncated?)", name, e.Offsets, dataLen)
		}
		if hi-lo != int64(n)*int64(size) {
			return nil, nil, fmt.Errorf("nn: safetensors: tensor %q: %s shape %v needs %d bytes, data_offsets %v give %d", name, e.Dtype, e.Shape, n*size, e.Offsets, hi-lo)
		}
		items = append(items, TensorInfo{Name: name, Dtype: e.Dtype, Shape: e.Shape, Begin: base + lo, End: base + hi})
	}
	sort.Slice(items, func(i, j int) bool {
		a, b := items[i], items[j]
		if a.Begin != b.Begin {
			return a.Begin < b.Begin
		}
		return a.End < b.End
	})
	at := base
	for _, it := range items {
		if it.Begin != at {
			return nil, nil, fmt.Errorf("nn: safetensors: tensor %q starts at byte %d, expected %d (gap or overlap)", it.Name, it.Begin-base, at-base)
		}
		at = it.End
	}
	if at != size {
		return nil, nil, fmt.Errorf("nn: safetensors: %d trailing bytes after the last tensor", size-at)
	}
	return items, md, nil
}

// DecodeSafetensors parses a safetensors encoding into float32 tensors,
// in the order of their data, and its metadata. F32, F16, BF16 and F64
// are read (converted to float32). It validates the whole file as
// ReadSafetensorsHeader does; an error names the tensor and the field at
// fault.
func DecodeSafetensors(b []byte) ([]Tensor, map[string]string, error) {
	return decode(bytes.NewReader(b), int64(len(b)))
}

// decode validates the safetensors file of size bytes behind r and reads
// its tensors.
func decode(r io.ReaderAt, size int64) ([]Tensor, map[string]string, error) {
	infos, md, err := ReadSafetensorsHeader(r, size)
	if err != nil {
		return nil, nil, err
	}
	out := make([]Tensor, 0, len(infos))
	for i := range infos {
		it := &infos[i]
		t := tensor.New(slices.Clone(it.Shape)...)
		if err := ReadTensorData(r, it, t.Data()); err != nil {
			return nil, nil, err
		}
		out = append(out, Tensor{Name: it.Name, Value: t})
	}
	return out, md, nil
}

// DecodeTensorData converts raw little-endian data of dtype (F32, F16,
// BF16 or F64) into dst, one element per len(dst). It panics if raw is
// shorter than len(dst) elements.
func DecodeTensorData(dst []float32, raw []byte, dtype string) {
	var u [512]uint16
	switch dtype {
	case "F32":
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
	case "F64":
		for i := range dst {
			dst[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:])))
		}
	case "F16", "BF16":
		for i := 0; i < len(dst); i += len(u) {
			n := min(len(u), len(dst)-i)
			for j := range n {
				u[j] = binary.LittleEndian.Uint16(raw[2*(i+j):])
			}
			if dtype == "F16" {
				tensor.FromF16(dst[i:i+n], u[:n])
			} else {
				tensor.FromBF16(dst[i:i+n], u[:n])
			}
		}
	default:
		panic("nn: DecodeTensorData: unsupported dtype " + dtype)
	}
}

// DtypeSize returns the bytes per element of a safetensors dtype this
// package reads, or 0.
func DtypeSize(dtype string) int { return dtypeSize[dtype] }

type rawEntry struct {
	name string
	msg  json.RawMessage
}

// headerEntries splits the header object into its entries in file order,
// rejecting duplicate names (which a plain map would silently merge).
func headerEntries(hb []byte) ([]rawEntry, error) {
	dec := json.NewDecoder(bytes.NewReader(hb))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("nn: safetensors: header JSON is not an object")
	}
	seen := map[string]bool{}
	var out []rawEntry
	for dec.More() {
		if len(out) > maxTensors {
			return nil, fmt.Errorf("nn: safetensors: header holds more than %d entries", maxTensors)
		}
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("nn: safetensors: header JSON: %v", err)
		}
		name := tok.(string) // object keys are always strings
		var msg json.RawMessage
		if err := dec.Decode(&msg); err != nil {
			return nil, fmt.Errorf("nn: safetensors: header JSON at %q: %v", name, err)
		}
		if seen[name] {
			return nil, fmt.Errorf("nn: safetensors: duplicate entry %q in header", name)
		}
		seen[name] = true
		out = append(out, rawEntry{name, msg})
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("nn: safetensors: header JSON: %v", err)
	}
	if rest := bytes.TrimRight(hb[dec.InputOffset():], " "); len(rest) != 0 {
		return nil, fmt.Errorf("nn: safetensors: %d bytes after the header object", len(rest))
	}
	return out, nil
}

package nn

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"sort"

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
// the raw little-endian data.
func EncodeSafetensors(tensors []Tensor, metadata map[string]string) ([]byte, error) {
	header := map[string]any{}
	if len(metadata) > 0 {
		header["__metadata__"] = metadata
	}
	off := 0
	for _, t := range tensors {
		if t.Name == "" || t.Name == "__metadata__" {
			return nil, fmt.Errorf("nn: safetensors: bad tensor name %q", t.Name)
		}
		if _, dup := header[t.Name]; dup {
			return nil, fmt.Errorf("nn: safetensors: duplicate tensor name %q", t.Name)
		}
		n := 4 * t.Value.Len()
		header[t.Name] = entry{Dtype: "F32", Shape: append([]int{}, t.Value.Shape()...), Offsets: [2]int{off, off + n}}
		off += n
	}
	h, err := json.Marshal(header)
	if err != nil {
		return nil, fmt.Errorf("nn: safetensors: %v", err)
	}
	for len(h)%8 != 0 {
		h = append(h, ' ')
	}
	out := make([]byte, 8, 8+len(h)+off)
	binary.LittleEndian.PutUint64(out, uint64(len(h)))
	out = append(out, h...)
	for _, t := range tensors {
		for _, v := range t.Value.Data() {
			out = binary.LittleEndian.AppendUint32(out, math.Float32bits(v))
		}
	}
	return out, nil
}

// SaveSafetensors writes tensors and metadata to path atomically: to a
// temporary file in the same directory, synced, then renamed over path,
// so a crash leaves either the old file or the new one.
func SaveSafetensors(path string, tensors []Tensor, metadata map[string]string) (err error) {
	b, err := EncodeSafetensors(tensors, metadata)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(path, b); err != nil {
		return fmt.Errorf("nn: safetensors: %v", err)
	}
	return nil
}

// LoadSafetensors reads a safetensors file; see DecodeSafetensors.
func LoadSafetensors(path string) ([]Tensor, map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("nn: safetensors: %v", err)
	}
	ts, md, err := DecodeSafetensors(b)
	if err != nil {
		return nil, nil, fmt.Errorf("%v (file %s)", err, path)
	}
	return ts, md, nil
}

var dtypeSize = map[string]int{"F32": 4, "F16": 2, "BF16": 2, "F64": 8}

// DecodeSafetensors parses a safetensors encoding into float32 tensors,
// in the order of their data, and its metadata. F32, F16, BF16 and F64
// are read (converted to float32). It validates the whole file: header
// length and JSON, dtypes, shapes against byte ranges, and that the
// tensors tile the data section exactly, without gaps or overlaps; an
// error names the tensor and the field at fault.
func DecodeSafetensors(b []byte) ([]Tensor, map[string]string, error) {
	if len(b) < 8 {
		return nil, nil, fmt.Errorf("nn: safetensors: %d bytes is too short for the header length", len(b))
	}
	hl := binary.LittleEndian.Uint64(b)
	if hl > maxHeader || hl > uint64(len(b)-8) {
		return nil, nil, fmt.Errorf("nn: safetensors: header length %d exceeds the file (%d bytes) or the %d-byte limit", hl, len(b), maxHeader)
	}
	hb := b[8 : 8+hl]
	if !bytes.HasPrefix(hb, []byte("{")) {
		return nil, nil, fmt.Errorf("nn: safetensors: header does not start with '{'")
	}
	data := b[8+hl:]
	raw, err := headerEntries(hb)
	if err != nil {
		return nil, nil, err
	}
	var md map[string]string
	type item struct {
		name string
		e    entry
	}
	var items []item
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
		lo, hi := e.Offsets[0], e.Offsets[1]
		if lo < 0 || hi < lo || hi > len(data) {
			return nil, nil, fmt.Errorf("nn: safetensors: tensor %q: data_offsets %v outside data of %d bytes", name, e.Offsets, len(data))
		}
		if hi-lo != n*size {
			return nil, nil, fmt.Errorf("nn: safetensors: tensor %q: %s shape %v needs %d bytes, data_offsets %v give %d", name, e.Dtype, e.Shape, n*size, e.Offsets, hi-lo)
		}
		items = append(items, item{name, e})
	}
	sort.Slice(items, func(i, j int) bool {
		a, b := items[i].e.Offsets, items[j].e.Offsets
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		return a[1] < b[1]
	})
	at := 0
	out := make([]Tensor, 0, len(items))
	for _, it := range items {
		lo, hi := it.e.Offsets[0], it.e.Offsets[1]
		if lo != at {
			return nil, nil, fmt.Errorf("nn: safetensors: tensor %q starts at byte %d, expected %d (gap or overlap)", it.name, lo, at)
		}
		at = hi
		out = append(out, Tensor{Name: it.name, Value: decodeData(data[lo:hi], it.e)})
	}
	if at != len(data) {
		return nil, nil, fmt.Errorf("nn: safetensors: %d trailing bytes after the last tensor", len(data)-at)
	}
	return out, md, nil
}

func decodeData(b []byte, e entry) *tensor.Dense {
	shape := slices.Clone(e.Shape)
	t := tensor.New(shape...)
	d := t.Data()
	switch e.Dtype {
	case "F32":
		for i := range d {
			d[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
	case "F64":
		for i := range d {
			d[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:])))
		}
	case "F16", "BF16":
		u := make([]uint16, len(d))
		for i := range u {
			u[i] = binary.LittleEndian.Uint16(b[2*i:])
		}
		if e.Dtype == "F16" {
			tensor.FromF16(d, u)
		} else {
			tensor.FromBF16(d, u)
		}
	}
	return t
}

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

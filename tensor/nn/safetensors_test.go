package nn

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/posttrain/posttrain/tensor"
)

// TestSafetensorsFixture reads a file written by hand in Python
// (testdata/gen_golden.py), not by this package.
func TestSafetensorsFixture(t *testing.T) {
	var want struct {
		Order    []string          `json:"order"`
		Metadata map[string]string `json:"metadata"`
		Tensors  map[string]struct {
			Shape []int     `json:"shape"`
			Data  []float64 `json:"data"`
		} `json:"tensors"`
	}
	b, err := os.ReadFile("testdata/fixture.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	ts, md, err := LoadSafetensors("testdata/fixture.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	if !maps(md, want.Metadata) {
		t.Errorf("metadata %v, want %v", md, want.Metadata)
	}
	var order []string
	for _, tt := range ts {
		order = append(order, tt.Name)
		w := want.Tensors[tt.Name]
		if !slices.Equal(tt.Value.Shape(), w.Shape) {
			t.Errorf("%s: shape %v, want %v", tt.Name, tt.Value.Shape(), w.Shape)
			continue
		}
		for i, v := range tt.Value.Data() {
			if float64(v) != w.Data[i] {
				t.Errorf("%s[%d] = %v, want %v", tt.Name, i, v, w.Data[i])
			}
		}
	}
	if !slices.Equal(order, want.Order) {
		t.Errorf("order %v, want %v", order, want.Order)
	}
}

func maps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestSafetensorsRoundTrip(t *testing.T) {
	special := []float32{0, float32(math.Copysign(0, -1)), float32(math.Inf(1)), float32(math.Inf(-1)),
		math.Float32frombits(0x7fc00001), math.Float32frombits(1), math.MaxFloat32, -1.5}
	ts := []Tensor{
		{"z.special", tensor.FromSlice(special, 2, 4)},
		{"a.scalar", tensor.FromSlice([]float32{7}, []int{}...)},
		{"m.empty", tensor.New(3, 0)},
	}
	path := filepath.Join(t.TempDir(), "x.safetensors")
	if err := SaveSafetensors(path, ts, map[string]string{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	got, md, err := LoadSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	if md["k"] != "v" {
		t.Fatalf("metadata %v", md)
	}
	sameTensors(t, got, ts)
	raw, _ := os.ReadFile(path)
	if hl := binary.LittleEndian.Uint64(raw); hl%8 != 0 {
		t.Errorf("header length %d not padded to 8", hl)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the checkpoint", len(entries))
	}
	if err := SaveSafetensors(filepath.Join(t.TempDir(), "no", "such", "dir", "x"), ts, nil); err == nil {
		t.Error("saving into a missing directory succeeded")
	}
	if _, err := EncodeSafetensors([]Tensor{ts[0], ts[0]}, nil); err == nil || !strings.Contains(err.Error(), "duplicate") {
		t.Errorf("duplicate names: %v", err)
	}
}

func encodeRaw(header string, data []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	return append(append(b, header...), data...)
}

func TestSafetensorsErrors(t *testing.T) {
	d8 := make([]byte, 8)
	huge := binary.LittleEndian.AppendUint64(nil, 1<<40)
	for _, tc := range []struct {
		name string
		file []byte
		want string
	}{
		{"short", []byte{1, 2}, "too short"},
		{"length past file", append(huge, '{', '}'), "header length"},
		{"not object", encodeRaw(`[1]`, nil), "does not start with '{'"},
		{"bad json", encodeRaw(`{"a":`, nil), "header JSON"},
		{"dtype", encodeRaw(`{"a":{"dtype":"I8","shape":[2],"data_offsets":[0,2]}}`, d8[:2]), `tensor "a": unsupported dtype "I8"`},
		{"size", encodeRaw(`{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, d8), `tensor "a": F32 shape [3] needs 12 bytes`},
		{"offsets", encodeRaw(`{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`, d8), `tensor "a": data_offsets [0 16] outside`},
		{"negative dim", encodeRaw(`{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,0]}}`, nil), "bad shape"},
		{"no shape", encodeRaw(`{"a":{"dtype":"F32","data_offsets":[0,0]}}`, nil), "missing shape"},
		{"unknown field", encodeRaw(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}}`, d8[:4]), `tensor "a"`},
		{"gap", encodeRaw(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, d8), "gap or overlap"},
		{"overlap", encodeRaw(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, d8), `"b" starts at byte 4, expected 8`},
		{"trailing", encodeRaw(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, d8), "4 trailing bytes"},
		{"duplicate", encodeRaw(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, d8), `duplicate entry "a"`},
		{"metadata", encodeRaw(`{"__metadata__":{"k":1}}`, nil), "__metadata__"},
		{"after object", encodeRaw(`{}x`, nil), "after the header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := DecodeSafetensors(tc.file)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func FuzzDecodeSafetensors(f *testing.F) {
	b, _ := os.ReadFile("testdata/fixture.safetensors")
	f.Add(b)
	f.Add(encodeRaw(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)))
	f.Fuzz(func(t *testing.T, b []byte) {
		ts, md, err := DecodeSafetensors(b)
		if err != nil {
			return
		}
		enc, err := EncodeSafetensors(ts, md)
		if err != nil {
			return // e.g. names the encoder refuses
		}
		back, _, err := DecodeSafetensors(enc)
		if err != nil || len(back) != len(ts) {
			t.Fatalf("re-encoding failed: %v", err)
		}
	})
}

// streamTensors are odd shapes, empty ones and some larger than the
// 64 KiB conversion buffer, so that every chunk boundary is crossed.
func streamTensors() []Tensor {
	shapes := [][]int{{3, 7001}, {}, {0}, {5, 0, 2}, {16384}, {5, 3, 1}, {1, 16385}, {2}}
	ts := make([]Tensor, len(shapes))
	x := uint32(1)
	for i, sh := range shapes {
		v := tensor.New(sh...)
		for j := range v.Data() {
			x = x*1664525 + 1013904223
			v.Data()[j] = math.Float32frombits(x) // every bit pattern, NaNs included
		}
		ts[i] = Tensor{Name: fmt.Sprintf("t%d.%v", i, sh), Value: v}
	}
	return ts
}

// TestSaveSafetensorsStream: the streamed file is EncodeSafetensors'
// bytes exactly, its data section is the tensors' little-endian bits in
// order, and neither saving nor loading copies the data in memory.
func TestSaveSafetensorsStream(t *testing.T) {
	ts := streamTensors()
	md := map[string]string{"sha256": strings.Repeat("ab", 32), "odd": "x"}
	path := filepath.Join(t.TempDir(), "s.safetensors")
	if err := SaveSafetensors(path, ts, md); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want, err := EncodeSafetensors(ts, md)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("streamed file (%d bytes) differs from EncodeSafetensors (%d bytes)", len(got), len(want))
	}
	hl := binary.LittleEndian.Uint64(got)
	data := got[8+hl:]
	for _, x := range ts {
		for j, v := range x.Value.Data() {
			if b := binary.LittleEndian.Uint32(data[4*j:]); b != math.Float32bits(v) {
				t.Fatalf("%s[%d]: bits %x on disk, want %x", x.Name, j, b, math.Float32bits(v))
			}
		}
		data = data[4*x.Value.Len():]
	}
	if len(data) != 0 {
		t.Fatalf("%d bytes after the last tensor", len(data))
	}
	back, md2, err := LoadSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	if !maps(md, md2) {
		t.Fatalf("metadata %v", md2)
	}
	sameTensors(t, back, ts)

	// Memory: a 16 MiB tensor costs saving far less than its size, and
	// loading little more than the tensor it returns.
	big := []Tensor{{"big", tensor.New(4 << 20)}}
	alloc := func(f func()) uint64 {
		var a, b runtime.MemStats
		runtime.ReadMemStats(&a)
		f()
		runtime.ReadMemStats(&b)
		return b.TotalAlloc - a.TotalAlloc
	}
	bigPath := filepath.Join(t.TempDir(), "big.safetensors")
	if n := alloc(func() {
		if err := SaveSafetensors(bigPath, big, nil); err != nil {
			t.Fatal(err)
		}
	}); n > 4<<20 {
		t.Errorf("saving 16 MiB allocated %d bytes", n)
	}
	if n := alloc(func() {
		if _, _, err := LoadSafetensors(bigPath); err != nil {
			t.Fatal(err)
		}
	}); n > 16<<20+4<<20 {
		t.Errorf("loading 16 MiB allocated %d bytes", n)
	}
}

// TestReadTensorData: reading through the buffer, chunk by chunk, equals
// converting the whole data at once, for every dtype; a destination of
// the wrong length or a short file is an error naming the tensor.
func TestReadTensorData(t *testing.T) {
	const n = 40000 // several chunks of every dtype
	for _, dtype := range []string{"F32", "F16", "BF16", "F64"} {
		size := DtypeSize(dtype)
		raw := make([]byte, 16+n*size)
		x := uint32(7)
		for i := range raw {
			x = x*1664525 + 1013904223
			raw[i] = byte(x >> 24)
		}
		info := &TensorInfo{Name: "w", Dtype: dtype, Shape: []int{n}, Begin: 16, End: int64(16 + n*size)}
		want := make([]float32, n)
		DecodeTensorData(want, raw[16:], dtype)
		got := make([]float32, n)
		if err := ReadTensorData(bytes.NewReader(raw), info, got); err != nil {
			t.Fatalf("%s: %v", dtype, err)
		}
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("%s[%d]: %x, want %x", dtype, i, math.Float32bits(got[i]), math.Float32bits(want[i]))
			}
		}
		if err := ReadTensorData(bytes.NewReader(raw), info, got[1:]); err == nil || !strings.Contains(err.Error(), `"w"`) {
			t.Errorf("%s: short destination: %v", dtype, err)
		}
		if err := ReadTensorData(bytes.NewReader(raw[:len(raw)-1]), info, got); err == nil || !strings.Contains(err.Error(), `"w"`) {
			t.Errorf("%s: truncated data: %v", dtype, err)
		}
	}
}

// TestWriteF32: the bytes are the values' little-endian bits, across
// buffer boundaries, and a writer's error comes back.
func TestWriteF32(t *testing.T) {
	d := streamTensors()[0].Value.Data()
	var b bytes.Buffer
	if err := WriteF32(&b, d); err != nil {
		t.Fatal(err)
	}
	if b.Len() != 4*len(d) {
		t.Fatalf("%d bytes for %d values", b.Len(), len(d))
	}
	for i, v := range d {
		if binary.LittleEndian.Uint32(b.Bytes()[4*i:]) != math.Float32bits(v) {
			t.Fatalf("value %d", i)
		}
	}
	if err := WriteF32(failWriter{}, d); err == nil {
		t.Error("a failing writer's error was lost")
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, os.ErrClosed }

// sameTensors fails unless got holds want's names, shapes and bits, in
// order.
func sameTensors(t *testing.T, got, want []Tensor) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d tensors, want %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Name != w.Name || !slices.Equal(g.Value.Shape(), w.Value.Shape()) {
			t.Fatalf("tensor %d: %s %v, want %s %v", i, g.Name, g.Value.Shape(), w.Name, w.Value.Shape())
		}
		for j, v := range w.Value.Data() {
			if math.Float32bits(g.Value.Data()[j]) != math.Float32bits(v) {
				t.Fatalf("%s[%d]: bits %x, want %x", w.Name, j, math.Float32bits(g.Value.Data()[j]), math.Float32bits(v))
			}
		}
	}
}

package hf

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"

	"github.com/posttrain/posttrain/internal/atomicfile"
	"github.com/posttrain/posttrain/tensor"
	"github.com/posttrain/posttrain/tensor/nn"
)

// ShardSize is the size above which SaveModel splits the weights into
// shards with an index, as transformers' save_pretrained does.
const ShardSize = 5_000_000_000

// SaveModel writes m to dir (created if needed) as transformers writes
// a checkpoint: config.json and model.safetensors, or shards of at most
// ShardSize bytes with model.safetensors.index.json, under transformers'
// tensor names, as F32 so that a round trip is bit-exact. Each file is
// written atomically (internal/atomicfile) and carries the SHA-256 of its
// data in its __metadata__, which LoadModel verifies.
func SaveModel(m *nn.Model, dir string) error { return SaveModelWith(m, dir, SaveOptions{}) }

// SaveOptions adjusts SaveModelWith.
type SaveOptions struct {
	// ShardSize bounds the tensor bytes of one file; 0 means ShardSize.
	// A tensor larger than the bound gets a shard of its own.
	ShardSize int64
	// Dtype is the stored type: "F32" (the default; bit-exact), "BF16"
	// or "F16" (rounded to nearest even, half the size; F16 fails on
	// weights beyond its range).
	Dtype string
}

// SaveModelWith is SaveModel with options.
func SaveModelWith(m *nn.Model, dir string, o SaveOptions) error {
	if m == nil {
		return fmt.Errorf("hf: SaveModel: nil model")
	}
	if m.Frozen() {
		return fmt.Errorf("hf: SaveModel: %w", nn.ErrFrozen)
	}
	shard := o.ShardSize
	if shard <= 0 {
		shard = ShardSize
	}
	dtype := o.Dtype
	if dtype == "" {
		dtype = "F32"
	}
	size := int64(nn.DtypeSize(dtype))
	if dtype == "F64" || size == 0 {
		return fmt.Errorf("hf: SaveModel: dtype %q not supported (have F32, BF16, F16)", dtype)
	}
	cb, err := writeConfig(m.Config, dtype)
	if err != nil {
		return fmt.Errorf("hf: SaveModel: %v", err)
	}
	var ts []nn.Tensor
	for _, p := range m.Params() {
		d := p.Var.Value.Data()
		if i := nn.NonFinite(d); i >= 0 {
			return fmt.Errorf("hf: SaveModel: tensor %q element %d is %v", fromNN(p.Name), i, d[i])
		}
		if dtype == "F16" {
			for i, v := range d {
				if math.Abs(float64(v)) >= 65520 {
					return fmt.Errorf("hf: SaveModel: tensor %q element %d is %v, beyond F16's range", fromNN(p.Name), i, v)
				}
			}
		}
		ts = append(ts, nn.Tensor{Name: fromNN(p.Name), Value: p.Var.Value})
	}
	var groups [][]nn.Tensor
	var used int64
	for _, t := range ts {
		n := size * int64(t.Value.Len())
		if len(groups) == 0 || (used+n > shard && used > 0) {
			groups = append(groups, nil)
			used = 0
		}
		groups[len(groups)-1] = append(groups[len(groups)-1], t)
		used += n
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("hf: SaveModel: %v", err)
	}
	if len(groups) == 1 {
		if err := writeShard(filepath.Join(dir, singleFile), groups[0], dtype); err != nil {
			return err
		}
		if err := removeStale(filepath.Join(dir, indexFile)); err != nil {
			return err
		}
	} else {
		wm := map[string]string{}
		var total int64
		for i, g := range groups {
			name := fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, len(groups))
			if err := writeShard(filepath.Join(dir, name), g, dtype); err != nil {
				return err
			}
			for _, t := range g {
				wm[t.Name] = name
				total += size * int64(t.Value.Len())
			}
		}
		ib, err := json.MarshalIndent(map[string]any{"metadata": map[string]any{"total_size": total}, "weight_map": wm}, "", "  ")
		if err != nil {
			return fmt.Errorf("hf: SaveModel: %v", err)
		}
		if err := atomicfile.Write(filepath.Join(dir, indexFile), ib); err != nil {
			return fmt.Errorf("hf: SaveModel: %v", err)
		}
		if err := removeStale(filepath.Join(dir, singleFile)); err != nil {
			return err
		}
	}
	if err := atomicfile.Write(filepath.Join(dir, configFile), cb); err != nil {
		return fmt.Errorf("hf: SaveModel: %v", err)
	}
	return nil
}

// removeStale removes a file of the other layout left by an earlier save,
// which would otherwise shadow or contradict the new one.
func removeStale(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("hf: SaveModel: %v", err)
	}
	return nil
}

// hashKey is the __metadata__ entry with the SHA-256 of a shard's data.
const hashKey = "posttrain.sha256"

// writeShard streams tensors as one safetensors file of dtype, with
// {"format": "pt"} (which transformers requires) and the data's SHA-256
// in the metadata.
func writeShard(path string, ts []nn.Tensor, dtype string) error {
	h := sha256.New()
	if err := writeData(h, ts, dtype); err != nil {
		return fmt.Errorf("hf: SaveModel: %v", err)
	}
	type entry struct {
		Dtype   string   `json:"dtype"`
		Shape   []int    `json:"shape"`
		Offsets [2]int64 `json:"data_offsets"`
	}
	header := map[string]any{"__metadata__": map[string]string{"format": "pt", hashKey: hex.EncodeToString(h.Sum(nil))}}
	var off int64
	size := int64(nn.DtypeSize(dtype))
	for _, t := range ts {
		n := size * int64(t.Value.Len())
		header[t.Name] = entry{dtype, t.Value.Shape(), [2]int64{off, off + n}}
		off += n
	}
	hb, err := json.Marshal(header)
	if err != nil {
		return fmt.Errorf("hf: SaveModel: %v", err)
	}
	for len(hb)%8 != 0 {
		hb = append(hb, ' ')
	}
	err = atomicfile.WriteFunc(path, func(w io.Writer) error {
		var lb [8]byte
		binary.LittleEndian.PutUint64(lb[:], uint64(len(hb)))
		if _, err := w.Write(lb[:]); err != nil {
			return err
		}
		if _, err := w.Write(hb); err != nil {
			return err
		}
		return writeData(w, ts, dtype)
	})
	if err != nil {
		return fmt.Errorf("hf: SaveModel: %v", err)
	}
	return nil
}

// writeData writes the tensors' data as dtype, little-endian.
func writeData(w io.Writer, ts []nn.Tensor, dtype string) error {
	bw := bufio.NewWriterSize(w, 1<<16)
	var u [1024]uint16
	var b [4096]byte
	for _, t := range ts {
		d := t.Value.Data()
		for len(d) > 0 {
			var out []byte
			switch dtype {
			case "F32":
				n := min(len(d), len(b)/4)
				for i, v := range d[:n] {
					binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
				}
				out, d = b[:4*n], d[n:]
			default:
				n := min(len(d), len(u))
				if dtype == "BF16" {
					tensor.ToBF16(u[:n], d[:n])
				} else {
					tensor.ToF16(u[:n], d[:n])
				}
				for i, v := range u[:n] {
					binary.LittleEndian.PutUint16(b[2*i:], v)
				}
				out, d = b[:2*n], d[n:]
			}
			if _, err := bw.Write(out); err != nil {
				return err
			}
		}
	}
	return bw.Flush()
}

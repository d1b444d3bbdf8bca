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
	"github.com/posttrain/posttrain/tensor/nn"
)

// ShardSize is the size above which SaveModel splits the weights into
// shards with an index, as transformers' save_pretrained does.
const ShardSize = 5 << 30

// SaveModel writes m to dir (created if needed) as transformers writes
// a checkpoint: config.json and model.safetensors, or shards of at most
// ShardSize bytes with model.safetensors.index.json, under transformers'
// tensor names, as F32 so that a round trip is bit-exact. Each file is
// written atomically (internal/atomicfile) and carries the SHA-256 of its
// data in its __metadata__, which LoadModel verifies.
func SaveModel(m *nn.Model, dir string) error { return SaveModelShards(m, dir, ShardSize) }

// SaveModelShards is SaveModel with shards of at most shard bytes of
// tensor data (a tensor larger than that gets a shard of its own).
func SaveModelShards(m *nn.Model, dir string, shard int64) error {
	if m == nil {
		return fmt.Errorf("hf: SaveModel: nil model")
	}
	cb, err := writeConfig(m.Config)
	if err != nil {
		return fmt.Errorf("hf: SaveModel: %v", err)
	}
	var ts []nn.Tensor
	for _, p := range m.Params() {
		for i, v := range p.Var.Value.Data() {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return fmt.Errorf("hf: SaveModel: tensor %q element %d is %v", fromNN(p.Name), i, v)
			}
		}
		ts = append(ts, nn.Tensor{Name: fromNN(p.Name), Value: p.Var.Value})
	}
	var groups [][]nn.Tensor
	var size int64
	for _, t := range ts {
		n := 4 * int64(t.Value.Len())
		if len(groups) == 0 || (size+n > shard && size > 0) {
			groups = append(groups, nil)
			size = 0
		}
		groups[len(groups)-1] = append(groups[len(groups)-1], t)
		size += n
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("hf: SaveModel: %v", err)
	}
	if len(groups) == 1 {
		if err := writeShard(filepath.Join(dir, singleFile), groups[0]); err != nil {
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
			if err := writeShard(filepath.Join(dir, name), g); err != nil {
				return err
			}
			for _, t := range g {
				wm[t.Name] = name
				total += 4 * int64(t.Value.Len())
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

// writeShard streams tensors as one F32 safetensors file, with
// {"format": "pt"} (which transformers requires) and the data's SHA-256
// in the metadata.
func writeShard(path string, ts []nn.Tensor) error {
	h := sha256.New()
	if err := writeData(h, ts); err != nil {
		return fmt.Errorf("hf: SaveModel: %v", err)
	}
	type entry struct {
		Dtype   string   `json:"dtype"`
		Shape   []int    `json:"shape"`
		Offsets [2]int64 `json:"data_offsets"`
	}
	header := map[string]any{"__metadata__": map[string]string{"format": "pt", hashKey: hex.EncodeToString(h.Sum(nil))}}
	var off int64
	for _, t := range ts {
		n := 4 * int64(t.Value.Len())
		header[t.Name] = entry{"F32", t.Value.Shape(), [2]int64{off, off + n}}
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
		return writeData(w, ts)
	})
	if err != nil {
		return fmt.Errorf("hf: SaveModel: %v", err)
	}
	return nil
}

func writeData(w io.Writer, ts []nn.Tensor) error {
	bw := bufio.NewWriterSize(w, 1<<16)
	var b [4]byte
	for _, t := range ts {
		for _, v := range t.Value.Data() {
			binary.LittleEndian.PutUint32(b[:], math.Float32bits(v))
			if _, err := bw.Write(b[:]); err != nil {
				return err
			}
		}
	}
	return bw.Flush()
}

package hf

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/posttrain/posttrain/internal/parallel"
	"github.com/posttrain/posttrain/tensor"
	"github.com/posttrain/posttrain/tensor/nn"
)

const (
	configFile = "config.json"
	singleFile = "model.safetensors"
	indexFile  = "model.safetensors.index.json"
	// generationFile may add end-of-sequence ids to config.json's.
	generationFile = "generation_config.json"
	// maxIndex bounds the index file; a large model's is ~100 KB.
	maxIndex = 64 << 20
)

// LoadModel reads a transformers checkpoint directory: config.json and
// either model.safetensors or the shards model.safetensors.index.json
// names, with F32, BF16, F16 (or F64) weights. The end-of-sequence ids
// that stop generation are config.json's eos_token_id and those of
// generation_config.json, if there is one. The files are memory
// mapped and each weight is converted to float32 once, straight into the
// model. Architectures other than Llama, Mistral and Qwen2 causal LMs are
// refused by name, as are settings the decoder does not implement.
//
// Every tensor the config implies must be present with its shape, and
// finite; no other tensor may be present (but for a tied checkpoint's
// copy of lm_head.weight and rotary inv_freq buffers, which transformers
// ignores too). Errors name the file and the tensor. The whole checkpoint
// is validated before any weight is allocated.
func LoadModel(dir string) (*nn.Model, error) { return LoadModelWith(dir, LoadOptions{}) }

// LoadOptions adjusts LoadModelWith.
type LoadOptions struct {
	// Dtype is the precision the model holds its matrices in: "" or
	// "F32" widens every weight to float32 (a model that trains);
	// "BF16" keeps the matrices — embedding, projections, head — in
	// bfloat16, as nn.Model.FreezeBF16 would leave them, reading a
	// bfloat16 checkpoint's words as they are and rounding other dtypes
	// to nearest even, so the model takes the checkpoint's own size and
	// decodes reading half the bytes. Norms and biases stay float32. Such
	// a model is frozen: inference only.
	Dtype string
}

// LoadModelWith is LoadModel with options.
func LoadModelWith(dir string, o LoadOptions) (*nn.Model, error) {
	switch o.Dtype {
	case "", "F32", "BF16":
	default:
		return nil, fmt.Errorf("hf: LoadModel: dtype %q not supported (have F32, BF16)", o.Dtype)
	}
	half := o.Dtype == "BF16"
	cb, err := readSmall(filepath.Join(dir, configFile), maxConfig)
	if err != nil {
		return nil, fmt.Errorf("hf: LoadModel: %v", err)
	}
	cfg, err := parseConfig(cb)
	if err != nil {
		return nil, fmt.Errorf("hf: LoadModel: %s: %v", filepath.Join(dir, configFile), err)
	}
	// generation_config.json, when present, may name more end-of-sequence
	// tokens (instruct models end turns with their own).
	gpath := filepath.Join(dir, generationFile)
	if gb, err := readSmall(gpath, maxConfig); err == nil {
		var g struct {
			EOS json.RawMessage `json:"eos_token_id"`
		}
		if err := json.Unmarshal(gb, &g); err != nil {
			return nil, fmt.Errorf("hf: LoadModel: %s: %v", gpath, err)
		}
		eos, err := parseEOS(g.EOS)
		if err != nil {
			return nil, fmt.Errorf("hf: LoadModel: %s: %v", gpath, err)
		}
		for _, e := range eos {
			if !slices.Contains(cfg.EOS, e) {
				cfg.EOS = append(cfg.EOS, e)
			}
		}
		if err := cfg.Validate(); err != nil {
			return nil, fmt.Errorf("hf: LoadModel: %s: %v", gpath, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("hf: LoadModel: %v", err)
	}
	shards, err := openShards(dir)
	if err != nil {
		return nil, fmt.Errorf("hf: LoadModel: %v", err)
	}
	defer func() {
		for _, s := range shards {
			s.m.Close()
		}
	}()
	// The number of layers is the one size that multiplies the tensors a
	// config implies: a checkpoint without the last layer fails here,
	// before a list of millions of names is made for a corrupt config.
	if l := cfg.Layers; l > 0 {
		last := fmt.Sprintf("model.layers.%d.input_layernorm.weight", l-1)
		if !slices.ContainsFunc(shards, func(s *shard) bool {
			return slices.ContainsFunc(s.infos, func(t nn.TensorInfo) bool { return t.Name == last })
		}) {
			return nil, fmt.Errorf("hf: LoadModel: %s: no tensor %q (config.json has %d layers)", dir, last, l)
		}
	}
	specs, err := cfg.Specs()
	if err != nil {
		return nil, fmt.Errorf("hf: LoadModel: %s: %v", filepath.Join(dir, configFile), err)
	}
	// Match every tensor of every shard with a parameter, by name and
	// shape, before allocating anything.
	found := map[string]src{}
	for _, s := range shards {
		for _, t := range s.infos {
			if ignored(t.Name, cfg) {
				continue
			}
			name, ok := toNN(t.Name)
			if !ok {
				return nil, fmt.Errorf("hf: LoadModel: %s: unexpected tensor %q", s.path, t.Name)
			}
			if prev, dup := found[name]; dup {
				return nil, fmt.Errorf("hf: LoadModel: tensor %q in both %s and %s", t.Name, prev.shard.path, s.path)
			}
			found[name] = src{s, t}
		}
	}
	for _, p := range specs {
		f, ok := found[p.Name]
		if !ok {
			return nil, fmt.Errorf("hf: LoadModel: %s: no tensor %q (config.json implies it)", dir, fromNN(p.Name))
		}
		if !slices.Equal(f.info.Shape, p.Shape) {
			return nil, fmt.Errorf("hf: LoadModel: %s: tensor %q has shape %v, config.json implies %v", f.shard.path, f.info.Name, f.info.Shape, p.Shape)
		}
		delete(found, p.Name)
	}
	if len(found) > 0 {
		names := make([]string, 0, len(found))
		for n := range found {
			names = append(names, n)
		}
		sort.Strings(names)
		f := found[names[0]]
		return nil, fmt.Errorf("hf: LoadModel: %s: unexpected tensor %q (config.json does not use it)", f.shard.path, f.info.Name)
	}
	for _, s := range shards {
		for _, t := range s.infos {
			if !ignored(t.Name, cfg) {
				found[must(toNN(t.Name))] = src{s, t}
			}
		}
	}
	// Convert on every core, a tensor at a time; each tensor goes to its
	// own slot, and the first failure in parameter order is reported, so
	// the outcome does not depend on the scheduling.
	ts := make([]nn.Tensor, len(specs))
	mats := make([]nn.TensorBF16, len(specs))
	errs := make([]error, len(specs))
	parallel.Run(len(specs), 0, &convertLoop{specs: specs, found: found, ts: ts, mats: mats, errs: errs, half: half})
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	var m *nn.Model
	if half {
		ts = slices.DeleteFunc(ts, func(t nn.Tensor) bool { return t.Value == nil })
		mats = slices.DeleteFunc(mats, func(t nn.TensorBF16) bool { return t.Value == nil })
		m, err = nn.FromTensorsBF16(cfg, ts, mats)
	} else {
		m, err = nn.FromTensors(cfg, ts)
	}
	if err != nil {
		return nil, fmt.Errorf("hf: LoadModel: %s: %v", dir, err)
	}
	return m, nil
}

func must(s string, _ bool) string { return s }

// convertWindow is the number of elements converted between releases of
// the mapped pages: 4 MiB of float32.
const convertWindow = 1 << 20

// convert fills dst from the tensor's bytes in m, a window at a time,
// releasing each window's pages once converted, and rejects NaN and Inf.
func convert(dst []float32, m *mapping, t nn.TensorInfo, scratch []byte) error {
	size := int64(nn.DtypeSize(t.Dtype))
	for i := 0; i < len(dst); i += convertWindow {
		n := min(convertWindow, len(dst)-i)
		off := t.Begin + int64(i)*size
		raw := m.window(off, n*int(size), scratch)
		out := dst[i : i+n]
		nn.DecodeTensorData(out, raw, t.Dtype)
		m.release(off, n*int(size))
		if j := nn.NonFinite(out); j >= 0 {
			return fmt.Errorf("element %d is %v", i+j, out[j])
		}
	}
	return nil
}

// convertBF16 is convert for a matrix held in bfloat16: each window is
// decoded to float32 in wide, checked, and rounded to bfloat16, which
// gives a bfloat16 checkpoint's words back unchanged.
func convertBF16(dst []uint16, wide []float32, m *mapping, t nn.TensorInfo, scratch []byte) error {
	size := int64(nn.DtypeSize(t.Dtype))
	for i := 0; i < len(dst); i += convertWindow {
		n := min(convertWindow, len(dst)-i)
		off := t.Begin + int64(i)*size
		out := wide[:n]
		nn.DecodeTensorData(out, m.window(off, n*int(size), scratch), t.Dtype)
		m.release(off, n*int(size))
		if j := nn.NonFinite(out); j >= 0 {
			return fmt.Errorf("element %d is %v", i+j, out[j])
		}
		tensor.ToBF16(dst[i:i+n], out)
	}
	return nil
}

// verify checks the SHA-256 of the data section that SaveModel records
// in the metadata, when there is one.
func verify(m *mapping, infos []nn.TensorInfo, md map[string]string) error {
	want, ok := md[hashKey]
	if !ok || len(infos) == 0 {
		return nil
	}
	h := sha256.New()
	scratch := make([]byte, 4*convertWindow)
	for off := infos[0].Begin; off < int64(m.Len()); off += int64(len(scratch)) {
		n := int(min(int64(len(scratch)), int64(m.Len())-off))
		h.Write(m.window(off, n, scratch))
		m.release(off, n)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("data SHA-256 %s does not match the %s recorded in the header: the file changed after it was written", got, want)
	}
	return nil
}

// shard is one opened safetensors file with its validated header.
type shard struct {
	path  string
	m     *mapping
	infos []nn.TensorInfo
}

// openShards maps model.safetensors, or every shard the index names and
// checks the index against the shards' headers.
func openShards(dir string) (shards []*shard, err error) {
	defer func() {
		if err != nil {
			for _, s := range shards {
				s.m.Close()
			}
			shards = nil
		}
	}()
	open := func(path string) (*shard, error) {
		m, err := openMapping(path)
		if err != nil {
			return nil, err
		}
		infos, md, err := nn.ReadSafetensorsHeader(m, int64(m.Len()))
		if err == nil {
			err = verify(m, infos, md)
		}
		if err != nil {
			m.Close()
			return nil, fmt.Errorf("%s: %v", path, err)
		}
		return &shard{path, m, infos}, nil
	}
	// Like transformers, prefer model.safetensors when both layouts exist.
	s, err := open(filepath.Join(dir, singleFile))
	if err == nil {
		return []*shard{s}, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	ipath := filepath.Join(dir, indexFile)
	ib, err := readSmall(ipath, maxIndex)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: neither %s nor %s", dir, singleFile, indexFile)
	}
	if err != nil {
		return nil, err
	}
	wm, files, err := parseIndex(ib)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", ipath, err)
	}
	for _, f := range files {
		s, err := open(filepath.Join(dir, f))
		if err != nil {
			return shards, fmt.Errorf("%s names shard %q: %v", ipath, f, err)
		}
		shards = append(shards, s)
	}
	for i, s := range shards {
		for _, t := range s.infos {
			if want, ok := wm[t.Name]; !ok || want != files[i] {
				return shards, fmt.Errorf("%s: tensor %q is not in %s under this shard", s.path, t.Name, ipath)
			}
			delete(wm, t.Name)
		}
	}
	for name, f := range wm {
		return shards, fmt.Errorf("%s: tensor %q is missing from shard %s", ipath, name, filepath.Join(dir, f))
	}
	return shards, nil
}

// parseIndex reads model.safetensors.index.json: the weight map and the
// shard files it names, sorted. Shard names must be plain file names.
func parseIndex(b []byte) (map[string]string, []string, error) {
	var idx struct {
		Metadata  map[string]any    `json:"metadata"`
		WeightMap map[string]string `json:"weight_map"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&idx); err != nil {
		return nil, nil, err
	}
	if len(idx.WeightMap) == 0 {
		return nil, nil, fmt.Errorf("empty weight_map")
	}
	seen := map[string]bool{}
	var files []string
	for name, f := range idx.WeightMap {
		if f == "" || f != filepath.Base(f) || f == "." || f == ".." || strings.ContainsAny(f, `/\`) {
			return nil, nil, fmt.Errorf("tensor %q: shard name %q is not a plain file name", name, f)
		}
		if !seen[f] {
			seen[f] = true
			files = append(files, f)
		}
	}
	sort.Strings(files)
	return idx.WeightMap, files, nil
}

// readSmall reads a file of at most limit bytes.
func readSmall(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("%s: %d bytes exceeds the %d-byte limit", path, st.Size(), limit)
	}
	b := make([]byte, st.Size())
	if _, err := f.ReadAt(b, 0); err != nil && st.Size() > 0 {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return b, nil
}

// ignored reports the tensors transformers skips on load: rotary
// inv_freq buffers of older Llama checkpoints, and lm_head.weight when
// the head is tied to the embedding.
func ignored(name string, c nn.Config) bool {
	return strings.HasSuffix(name, ".rotary_emb.inv_freq") || (c.Tied && name == "lm_head.weight")
}

// The parameters' names in transformers and in package nn.
var (
	toHF = map[string]string{
		"norm1.weight": "input_layernorm.weight", "norm2.weight": "post_attention_layernorm.weight",
		"attn.q.weight": "self_attn.q_proj.weight", "attn.k.weight": "self_attn.k_proj.weight",
		"attn.v.weight": "self_attn.v_proj.weight", "attn.o.weight": "self_attn.o_proj.weight",
		"attn.q.bias": "self_attn.q_proj.bias", "attn.k.bias": "self_attn.k_proj.bias",
		"attn.v.bias": "self_attn.v_proj.bias", "attn.o.bias": "self_attn.o_proj.bias",
		"mlp.gate.weight": "mlp.gate_proj.weight", "mlp.up.weight": "mlp.up_proj.weight",
		"mlp.down.weight": "mlp.down_proj.weight",
	}
	fromHFLayer = func() map[string]string {
		m := map[string]string{}
		for k, v := range toHF {
			m[v] = k
		}
		return m
	}()
	topHF = map[string]string{"embed.weight": "model.embed_tokens.weight", "norm.weight": "model.norm.weight", "head.weight": "lm_head.weight"}
)

// fromNN returns the transformers name of an nn parameter name.
func fromNN(name string) string {
	if n, ok := topHF[name]; ok {
		return n
	}
	rest, ok := strings.CutPrefix(name, "layers.")
	if !ok {
		return name
	}
	i, sub, ok := strings.Cut(rest, ".")
	if !ok {
		return name
	}
	return "model.layers." + i + "." + toHF[sub]
}

// toNN returns the nn name of a transformers tensor name.
func toNN(name string) (string, bool) {
	for k, v := range topHF {
		if v == name {
			return k, true
		}
	}
	rest, ok := strings.CutPrefix(name, "model.layers.")
	if !ok {
		return "", false
	}
	i, sub, ok := strings.Cut(rest, ".")
	if !ok {
		return "", false
	}
	if n, err := strconv.Atoi(i); err != nil || n < 0 || strconv.Itoa(n) != i {
		return "", false
	}
	s, ok := fromHFLayer[sub]
	if !ok {
		return "", false
	}
	return "layers." + i + "." + s, true
}

// src is where a parameter's tensor lives: its shard and its entry there.
type src struct {
	shard *shard
	info  nn.TensorInfo
}

// convertLoop converts one tensor per chunk on posttrain's worker pool,
// with a conversion window kept per worker.
type convertLoop struct {
	specs []nn.ParamSpec
	found map[string]src
	ts    []nn.Tensor
	mats  []nn.TensorBF16 // the matrices, when half
	errs  []error
	half  bool // hold the matrices in bfloat16
}

var (
	convertKey = parallel.NewKey[[]byte]()
	wideKey    = parallel.NewKey[[]float32]() // one window widened, for convertBF16
)

// Chunk converts tensor i.
func (l *convertLoop) Chunk(i int, w *parallel.Worker) {
	var scratch []byte
	if !mappedInPlace {
		sp := parallel.Scratch(w, convertKey)
		if len(*sp) < convertWindow*8 {
			*sp = make([]byte, convertWindow*8)
		}
		scratch = *sp
	}
	p := l.specs[i]
	f := l.found[p.Name]
	if l.half && len(p.Shape) == 2 {
		wp := parallel.Scratch(w, wideKey)
		if len(*wp) < convertWindow {
			*wp = make([]float32, convertWindow)
		}
		d := tensor.NewBF16(p.Shape...)
		if err := convertBF16(d.Data(), *wp, f.shard.m, f.info, scratch); err != nil {
			l.errs[i] = fmt.Errorf("hf: LoadModel: %s: tensor %q %v", f.shard.path, f.info.Name, err)
		}
		l.mats[i] = nn.TensorBF16{Name: p.Name, Value: d}
		return
	}
	d := tensor.New(p.Shape...)
	if err := convert(d.Data(), f.shard.m, f.info, scratch); err != nil {
		l.errs[i] = fmt.Errorf("hf: LoadModel: %s: tensor %q %v", f.shard.path, f.info.Name, err)
	}
	l.ts[i] = nn.Tensor{Name: p.Name, Value: d}
}

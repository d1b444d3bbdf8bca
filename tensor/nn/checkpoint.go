package nn

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/posttrain/posttrain/tensor"
	"github.com/posttrain/posttrain/tensor/autograd"
)

const formatName = "posttrain.TinyLM"

// hashKey is the metadata entry holding the checkpoint's SHA-256.
const hashKey = "sha256"

func (c Config) metadata() map[string]string {
	md := map[string]string{
		"format":   formatName,
		"vocab":    strconv.Itoa(c.Vocab),
		"d_model":  strconv.Itoa(c.DModel),
		"layers":   strconv.Itoa(c.Layers),
		"heads":    strconv.Itoa(c.Heads),
		"kv_heads": strconv.Itoa(c.KVHeads),
		"head_dim": strconv.Itoa(c.HeadDim),
		"context":  strconv.Itoa(c.Context),
		"hidden":   strconv.Itoa(c.Hidden),
		"eps":      strconv.FormatFloat(c.Eps, 'g', -1, 64),
		"rope":     strconv.FormatFloat(c.RoPE, 'g', -1, 64),
		"qkv_bias": strconv.FormatBool(c.QKVBias),
		"o_bias":   strconv.FormatBool(c.OBias),
		"tied":     strconv.FormatBool(c.Tied),
	}
	if s := c.Scaling; s.Type != "" {
		md["rope_scaling"] = fmt.Sprintf("%s,%s,%s,%s,%d", s.Type, fl(s.Factor), fl(s.LowFreqFactor), fl(s.HighFreqFactor), s.OriginalContext)
	}
	if len(c.EOS) > 0 {
		ids := make([]string, len(c.EOS))
		for i, e := range c.EOS {
			ids[i] = strconv.Itoa(int(e))
		}
		md["eos"] = strings.Join(ids, ",")
	}
	return md
}

func fl(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }

func configFrom(md map[string]string) (Config, error) {
	if md["format"] != formatName {
		return Config{}, fmt.Errorf("nn: checkpoint metadata format %q, want %q", md["format"], formatName)
	}
	var c Config
	ints := []struct {
		key      string
		dst      *int
		optional bool
	}{{"vocab", &c.Vocab, false}, {"d_model", &c.DModel, false}, {"layers", &c.Layers, false}, {"heads", &c.Heads, false},
		{"kv_heads", &c.KVHeads, true}, {"head_dim", &c.HeadDim, true}, {"context", &c.Context, false}, {"hidden", &c.Hidden, false}}
	for _, f := range ints {
		s, ok := md[f.key]
		if !ok && f.optional {
			continue
		}
		v, err := strconv.Atoi(s)
		if err != nil {
			return Config{}, fmt.Errorf("nn: checkpoint metadata %q: %v", f.key, err)
		}
		*f.dst = v
	}
	floats := []struct {
		key string
		dst *float64
	}{{"eps", &c.Eps}, {"rope", &c.RoPE}}
	for _, f := range floats {
		v, err := strconv.ParseFloat(md[f.key], 64)
		if err != nil {
			return Config{}, fmt.Errorf("nn: checkpoint metadata %q: %v", f.key, err)
		}
		*f.dst = v
	}
	bools := []struct {
		key string
		dst *bool
	}{{"qkv_bias", &c.QKVBias}, {"o_bias", &c.OBias}, {"tied", &c.Tied}}
	for _, f := range bools {
		s, ok := md[f.key]
		if !ok {
			continue
		}
		v, err := strconv.ParseBool(s)
		if err != nil {
			return Config{}, fmt.Errorf("nn: checkpoint metadata %q: %v", f.key, err)
		}
		*f.dst = v
	}
	if s, ok := md["rope_scaling"]; ok {
		f := strings.Split(s, ",")
		if len(f) != 5 {
			return Config{}, fmt.Errorf("nn: checkpoint metadata \"rope_scaling\": %q is not type,factor,low,high,context", s)
		}
		c.Scaling.Type = f[0]
		var err [4]error
		c.Scaling.Factor, err[0] = strconv.ParseFloat(f[1], 64)
		c.Scaling.LowFreqFactor, err[1] = strconv.ParseFloat(f[2], 64)
		c.Scaling.HighFreqFactor, err[2] = strconv.ParseFloat(f[3], 64)
		c.Scaling.OriginalContext, err[3] = strconv.Atoi(f[4])
		for _, e := range err {
			if e != nil {
				return Config{}, fmt.Errorf("nn: checkpoint metadata \"rope_scaling\": %v", e)
			}
		}
	}
	if s, ok := md["eos"]; ok {
		for _, f := range strings.Split(s, ",") {
			v, err := strconv.ParseInt(f, 10, 32)
			if err != nil {
				return Config{}, fmt.Errorf("nn: checkpoint metadata \"eos\": %v", err)
			}
			c.EOS = append(c.EOS, int32(v))
		}
	}
	c = c.withDefaults()
	return c, c.validate()
}

// checksum returns the hex SHA-256 of the metadata (but for its own
// entry), as sorted key=value lines, followed by the tensors' float32
// data in order: a change to the weights or to a config value that keeps
// every shape (heads, context, eps) shows up as a mismatch.
func checksum(md map[string]string, ts []Tensor) string {
	h := sha256.New()
	keys := make([]string, 0, len(md))
	for k := range md {
		if k != hashKey {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(h, "%q=%q\n", k, md[k])
	}
	var buf [4096]byte
	for _, t := range ts {
		d := t.Value.Data()
		for len(d) > 0 {
			n := min(len(d), len(buf)/4)
			for i, v := range d[:n] {
				binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
			}
			h.Write(buf[:4*n])
			d = d[n:]
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Save writes the model's weights and config to path in the safetensors
// format (atomically; see SaveSafetensors). The config travels in the
// header's __metadata__, with a SHA-256 of the config and the weights
// that LoadTinyLM verifies.
func (m *Model) Save(path string) error {
	if m.frozen != nil {
		return fmt.Errorf("nn: Save: %w", ErrFrozen)
	}
	var ts []Tensor
	for _, p := range m.Params() {
		ts = append(ts, Tensor{Name: p.Name, Value: p.Var.Value})
	}
	md := m.Config.metadata()
	md[hashKey] = checksum(md, ts)
	return SaveSafetensors(path, ts, md)
}

// LoadTinyLM reads a model written by Save. It returns an error naming
// any tensor that is missing, unexpected, of the wrong shape or not
// finite, and for a checksum that does not match the contents.
func LoadTinyLM(path string) (*Model, error) {
	ts, md, err := LoadSafetensors(path)
	if err != nil {
		return nil, err
	}
	cfg, err := configFrom(md)
	if err != nil {
		return nil, fmt.Errorf("%v (file %s)", err, path)
	}
	m, err := FromTensors(cfg, ts)
	if err != nil {
		return nil, fmt.Errorf("%v (file %s)", err, path)
	}
	if want, ok := md[hashKey]; ok {
		if got := checksum(md, ts); got != want {
			return nil, fmt.Errorf("nn: checkpoint %s: SHA-256 %s does not match the recorded %s: the file was changed after it was written", path, got, want)
		}
	}
	return m, nil
}

// FromTensors returns a model of config cfg whose parameters are the
// tensors ts, named as Params names them; the model takes ownership of
// their storage. Every tensor must be present, of the shape cfg implies
// and finite, and no other tensor may be given: the error names the
// first that is not. Nothing is allocated for the weights, so a config
// whose sizes disagree with the tensors fails cheaply.
func FromTensors(cfg Config, ts []Tensor) (*Model, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	byName := make(map[string]Tensor, len(ts))
	for _, t := range ts {
		if _, dup := byName[t.Name]; dup {
			return nil, fmt.Errorf("nn: checkpoint has tensor %q twice", t.Name)
		}
		byName[t.Name] = t
	}
	// The layer count is the one size that multiplies the parameters:
	// check the last layer is there before listing them all.
	if l := cfg.Layers; l > 0 {
		if last := fmt.Sprintf("layers.%d.norm1.weight", l-1); byName[last].Value == nil {
			return nil, fmt.Errorf("nn: checkpoint lacks tensor %q (config has %d layers)", last, l)
		}
	}
	ss := cfg.specs()
	for _, s := range ss {
		t, ok := byName[s.name]
		if !ok {
			return nil, fmt.Errorf("nn: checkpoint lacks tensor %q", s.name)
		}
		if !slices.Equal(t.Value.Shape(), s.shape) {
			return nil, fmt.Errorf("nn: checkpoint tensor %q has shape %v, model needs %v", s.name, t.Value.Shape(), s.shape)
		}
	}
	if len(byName) != len(ss) {
		for _, s := range ss {
			delete(byName, s.name)
		}
		names := make([]string, 0, len(byName))
		for n := range byName {
			names = append(names, n)
		}
		sort.Strings(names)
		return nil, fmt.Errorf("nn: checkpoint has unexpected tensor %q", names[0])
	}
	for _, s := range ss {
		d := byName[s.name].Value.Data()
		if i := NonFinite(d); i >= 0 {
			return nil, fmt.Errorf("nn: checkpoint tensor %q element %d is %v", s.name, i, d[i])
		}
	}
	return build(cfg, func(s spec) *autograd.Var { return autograd.Param(byName[s.name].Value) }), nil
}

// NonFinite returns the index of the first NaN or ±Inf in x, or −1. It
// screens blocks with a SIMD dot product (non-finite whenever an element
// is) and scans only the blocks that fail.
func NonFinite(x []float32) int {
	const block = 4096
	for i := 0; i < len(x); i += block {
		b := x[i:min(i+block, len(x))]
		if s := tensor.Dot(b, b); !math.IsNaN(float64(s)) && !math.IsInf(float64(s), 0) {
			continue
		}
		for j, v := range b {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return i + j
			}
		}
	}
	return -1
}

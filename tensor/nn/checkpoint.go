package nn

import (
	"fmt"
	"slices"
	"strconv"
)

const formatName = "posttrain.TinyLM"

func (c Config) metadata() map[string]string {
	return map[string]string{
		"format":  formatName,
		"vocab":   strconv.Itoa(c.Vocab),
		"d_model": strconv.Itoa(c.DModel),
		"layers":  strconv.Itoa(c.Layers),
		"heads":   strconv.Itoa(c.Heads),
		"context": strconv.Itoa(c.Context),
		"hidden":  strconv.Itoa(c.Hidden),
		"eps":     strconv.FormatFloat(c.Eps, 'g', -1, 64),
		"rope":    strconv.FormatFloat(c.RoPE, 'g', -1, 64),
	}
}

func configFrom(md map[string]string) (Config, error) {
	if md["format"] != formatName {
		return Config{}, fmt.Errorf("nn: checkpoint metadata format %q, want %q", md["format"], formatName)
	}
	var c Config
	ints := []struct {
		key string
		dst *int
	}{{"vocab", &c.Vocab}, {"d_model", &c.DModel}, {"layers", &c.Layers}, {"heads", &c.Heads}, {"context", &c.Context}, {"hidden", &c.Hidden}}
	for _, f := range ints {
		v, err := strconv.Atoi(md[f.key])
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
	return c, c.validate()
}

// Save writes the model's weights and config to path in the safetensors
// format (atomically; see SaveSafetensors). The config travels in the
// header's __metadata__.
func (m *TinyLM) Save(path string) error {
	var ts []Tensor
	for _, p := range m.Params() {
		ts = append(ts, Tensor{Name: p.Name, Value: p.Var.Value})
	}
	return SaveSafetensors(path, ts, m.Config.metadata())
}

// LoadTinyLM reads a model written by Save. It returns an error naming
// any tensor that is missing, unexpected, or of the wrong shape.
func LoadTinyLM(path string) (*TinyLM, error) {
	ts, md, err := LoadSafetensors(path)
	if err != nil {
		return nil, err
	}
	cfg, err := configFrom(md)
	if err != nil {
		return nil, fmt.Errorf("%v (file %s)", err, path)
	}
	m, err := NewTinyLM(cfg, 0)
	if err != nil {
		return nil, err
	}
	if err := m.setWeights(ts); err != nil {
		return nil, fmt.Errorf("%v (file %s)", err, path)
	}
	return m, nil
}

// setWeights copies tensors into the parameters of the same names.
func (m *TinyLM) setWeights(ts []Tensor) error {
	byName := map[string]Tensor{}
	for _, t := range ts {
		byName[t.Name] = t
	}
	ps := m.Params()
	src := make([]Tensor, len(ps))
	for i, p := range ps {
		t, ok := byName[p.Name]
		if !ok {
			return fmt.Errorf("nn: checkpoint lacks tensor %q", p.Name)
		}
		if !slices.Equal(t.Value.Shape(), p.Var.Value.Shape()) {
			return fmt.Errorf("nn: checkpoint tensor %q has shape %v, model needs %v", p.Name, t.Value.Shape(), p.Var.Value.Shape())
		}
		src[i] = t
		delete(byName, p.Name)
	}
	for name := range byName {
		return fmt.Errorf("nn: checkpoint has unexpected tensor %q", name)
	}
	for i, p := range ps {
		copy(p.Var.Value.Data(), src[i].Value.Data())
	}
	return nil
}

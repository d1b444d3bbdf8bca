package nn

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/posttrain/posttrain/tensor/autograd"
)

// gqaModel is a tiny model with every option of the general decoder on:
// grouped-query attention, an explicit head size, q/k/v and output
// biases, a tied head and llama3 RoPE scaling.
func gqaModel(t testing.TB) *Model {
	t.Helper()
	m, err := NewModel(Config{Vocab: 11, DModel: 12, Layers: 2, Heads: 3, KVHeads: 1, HeadDim: 6, Context: 8, Hidden: 10,
		QKVBias: true, OBias: true, Tied: true, RoPE: 500,
		Scaling: Scaling{Type: "llama3", Factor: 4, LowFreqFactor: 1, HighFreqFactor: 2, OriginalContext: 8}}, 3)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, p := range m.Params() {
		if strings.HasSuffix(p.Name, ".bias") || strings.Contains(p.Name, "norm") {
			for i := range p.Var.Value.Data() {
				p.Var.Value.Data()[i] = float32(rng.NormFloat64()*0.3) + map[bool]float32{true: 1}[strings.Contains(p.Name, "norm")]
			}
		} else {
			for i := range p.Var.Value.Data() {
				p.Var.Value.Data()[i] *= 20 // N(0, 0.4): attention far from uniform
			}
		}
	}
	return m
}

// TestGQAGradients checks the gradients of the general decoder against
// finite differences, through every parameter.
func TestGQAGradients(t *testing.T) {
	m := gqaModel(t)
	if len(m.Params()) != 1+2*13+1 { // tied: no head.weight
		t.Fatalf("%d params", len(m.Params()))
	}
	var ins []*autograd.Var
	for _, p := range m.Params() {
		ins = append(ins, p.Var)
	}
	toks := []int32{1, 5, 9, 2, 0, 10, 3, 3, 7, 4}
	err := autograd.GradCheckWith(func(tp *autograd.Tape) *autograd.Var {
		out, err := m.Forward(tp, toks, 2)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}, ins, autograd.GradCheckOptions{Tol: 2e-2, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
}

// TestGQADecoder checks KV-cache decoding, token by token and in a
// prefill, against the full forward with every option on.
func TestGQADecoder(t *testing.T) {
	m := gqaModel(t)
	toks := []int32{1, 5, 9, 2, 0, 10, 3, 3}
	full, err := m.Logits(toks)
	if err != nil {
		t.Fatal(err)
	}
	v := m.Config.Vocab
	d := m.NewDecoder()
	for i, tok := range toks {
		got, _ := d.Step(tok)
		for j := range got {
			if want := full.Data()[i*v+j]; math.Abs(float64(got[j]-want)) > 1e-5*max(1, math.Abs(float64(want))) {
				t.Fatalf("position %d logit %d: %v, full %v", i, j, got[j], want)
			}
		}
	}
	d.Reset()
	got, _ := d.Prefill(0, toks)
	for j := range got {
		if want := full.Data()[(len(toks)-1)*v+j]; math.Abs(float64(got[j]-want)) > 1e-5*max(1, math.Abs(float64(want))) {
			t.Fatalf("prefill logit %d: %v, full %v", j, got[j], want)
		}
	}
}

// TestCheckpointTampering covers checkpoints that keep every shape but
// change the model, non-finite weights, and tiny files with enormous
// sizes in their metadata.
func TestCheckpointTampering(t *testing.T) {
	m := gqaModel(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "m.safetensors")
	if err := m.Save(path); err != nil {
		t.Fatal(err)
	}
	back, err := LoadTinyLM(path)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(back.Params()[3].Var.Value.Data(), m.Params()[3].Var.Value.Data()) || !back.Config.Tied || back.Head.W != back.Embed.W {
		t.Fatal("round trip changed the model")
	}
	ts, md, _ := LoadSafetensors(path)
	bad := filepath.Join(dir, "bad.safetensors")
	for _, tc := range []struct{ key, val, want string }{
		{"heads", "6", "shape"},      // changes q's shape
		{"context", "4", "SHA-256"},  // keeps every shape: only the checksum tells
		{"rope", "10000", "SHA-256"}, // likewise
		{"eps", "+Inf", "bad Eps"},
	} {
		md2 := map[string]string{}
		for k, v := range md {
			md2[k] = v
		}
		md2[tc.key] = tc.val
		SaveSafetensors(bad, ts, md2)
		if _, err := LoadTinyLM(bad); err == nil || !(strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "shape")) {
			t.Errorf("%s=%s: %v", tc.key, tc.val, err)
		}
	}
	// A NaN weight is named, with or without a checksum.
	ts[2].Value.Data()[1] = float32(math.NaN())
	delete(md, hashKey)
	SaveSafetensors(bad, ts, md)
	if _, err := LoadTinyLM(bad); err == nil || !strings.Contains(err.Error(), ts[2].Name) || !strings.Contains(err.Error(), "NaN") {
		t.Errorf("NaN weight: %v", err)
	}
	// A tiny file claiming enormous sizes fails before allocating them.
	for _, tc := range []struct{ key, val string }{{"context", "200000000"}, {"vocab", "300000000"}, {"layers", "30000000"}} {
		small, _ := NewTinyLM(Config{Vocab: 2, DModel: 2, Layers: 1, Heads: 1, Context: 2, Hidden: 2}, 1)
		p := filepath.Join(dir, "small.safetensors")
		small.Save(p)
		ts, md, _ := LoadSafetensors(p)
		md[tc.key] = tc.val
		SaveSafetensors(p, ts, md)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := LoadTinyLM(p)
		runtime.ReadMemStats(&after)
		if err == nil {
			t.Errorf("%s=%s accepted", tc.key, tc.val)
		}
		if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
			t.Errorf("%s=%s: %d bytes allocated before failing (%v)", tc.key, tc.val, n, err)
		}
	}
	// A header of too many entries is refused by count, before their
	// contents are decoded (here each is a bare 0).
	var hb strings.Builder
	hb.WriteString("{")
	for i := range maxTensors + 2 {
		if i > 0 {
			hb.WriteString(",")
		}
		hb.WriteString(`"` + strconv.Itoa(i) + `":0`)
	}
	hb.WriteString("}")
	h := []byte(hb.String())
	for len(h)%8 != 0 {
		h = append(h, ' ')
	}
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
	b = append(b, h...)
	os.WriteFile(bad, b, 0o644)
	if _, _, err := LoadSafetensors(bad); err == nil || !strings.Contains(err.Error(), "entries") {
		t.Errorf("%d entries: %v", maxTensors+2, err)
	}
}

func TestNonFinite(t *testing.T) {
	x := make([]float32, 10000)
	for i := range x {
		x[i] = 1e30 // squares overflow: the screen fails, the scan finds nothing
	}
	if i := NonFinite(x); i != -1 {
		t.Fatalf("large finite values: %d", i)
	}
	for _, at := range []int{0, 4095, 4096, 9999} {
		for _, v := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
			y := slices.Clone(x)
			y[at] = v
			if i := NonFinite(y); i != at {
				t.Errorf("%v at %d: found %d", v, at, i)
			}
		}
	}
}

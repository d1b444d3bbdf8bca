package recipe

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/posttrain/posttrain/tensor"
	"github.com/posttrain/posttrain/tensor/autograd"
	"github.com/posttrain/posttrain/tensor/nn"
)

// ckptState is a set of trainable parameters, larger than the 64 KiB
// buffers in places, and an optimizer whose moments and step are not
// zero.
func ckptState(seed uint32) ([]nn.Named, *nn.AdamW) {
	shapes := map[string][]int{"emb": {300, 70}, "bias": {5}, "scalar": {}, "w": {17, 1100}}
	var params []nn.Named
	x := seed
	next := func() float32 {
		x = x*1664525 + 1013904223
		return float32(int32(x)) / (1 << 31)
	}
	for _, name := range []string{"emb", "bias", "scalar", "w"} {
		v := tensor.New(shapes[name]...)
		for i := range v.Data() {
			v.Data()[i] = next()
		}
		params = append(params, nn.Named{Name: name, Var: autograd.Param(v)})
	}
	opt := nn.NewAdamW(params, 1e-3)
	_, m, v := opt.Moments()
	for i := range m {
		for j := range m[i] {
			m[i][j], v[i][j] = next(), next()*next()
		}
	}
	opt.SetMoments(int(seed%100)+1, m, v)
	return params, opt
}

// snapshot copies the parameters, the moments and the step.
func snapshot(params []nn.Named, opt *nn.AdamW) (int, [][]float32) {
	step, m, v := opt.Moments()
	var out [][]float32
	for i, p := range params {
		out = append(out, slices.Clone(p.Var.Value.Data()), slices.Clone(m[i]), slices.Clone(v[i]))
	}
	return step, out
}

func sameState(t *testing.T, what string, s1 int, a [][]float32, s2 int, b [][]float32) {
	t.Helper()
	if s1 != s2 {
		t.Fatalf("%s: Adam step %d, want %d", what, s2, s1)
	}
	for i := range a {
		for j := range a[i] {
			if math.Float32bits(a[i][j]) != math.Float32bits(b[i][j]) {
				t.Fatalf("%s: tensor %d value %d: %v, want %v", what, i, j, b[i][j], a[i][j])
			}
		}
	}
}

// layoutDigest is the checkpoint checksum written out from its
// definition, in one buffer: per tensor its name, a zero byte, each
// dimension as a little-endian uint64, then its values as little-endian
// float32 — the value every checkpoint written so far carries.
func layoutDigest(ts []nn.Tensor) string {
	var b []byte
	for _, t := range ts {
		b = append(append(b, t.Name...), 0)
		for _, d := range t.Value.Shape() {
			b = binary.LittleEndian.AppendUint64(b, uint64(d))
		}
		for _, v := range t.Value.Data() {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
		}
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestCheckpointCompat: the streamed checksum is the documented digest,
// and a checkpoint laid out as the earlier whole-buffer code wrote it
// (EncodeSafetensors' bytes, that digest) loads, restoring every value
// and the step.
func TestCheckpointCompat(t *testing.T) {
	params, opt := ckptState(3)
	astep, m, v := opt.Moments()
	var ts []nn.Tensor
	for i, p := range params {
		sh := p.Var.Value.Shape()
		ts = append(ts, nn.Tensor{Name: "param." + p.Name, Value: p.Var.Value},
			nn.Tensor{Name: "adam_m." + p.Name, Value: tensor.FromSlice(m[i], sh...)},
			nn.Tensor{Name: "adam_v." + p.Name, Value: tensor.FromSlice(v[i], sh...)})
	}
	want := layoutDigest(ts)
	if got := checksum(ts); got != want {
		t.Fatalf("checksum %s, the documented digest %s", got, want)
	}
	b, err := nn.EncodeSafetensors(ts, map[string]string{
		"format": checkpointFormat, "step": "7", "adam_step": strconv.Itoa(astep), "sha256": want})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), CheckpointFile)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	s0, before := snapshot(params, opt)
	into, opt2 := ckptState(99)
	step, err := loadCheckpoint(path, into, opt2)
	if err != nil || step != 7 {
		t.Fatalf("step %d, %v", step, err)
	}
	s1, after := snapshot(into, opt2)
	sameState(t, "loaded", s0, before, s1, after)

	// saveCheckpoint writes the same bytes.
	path2 := filepath.Join(t.TempDir(), CheckpointFile)
	if err := saveCheckpoint(path2, 7, params, opt); err != nil {
		t.Fatal(err)
	}
	if b2, _ := os.ReadFile(path2); !slices.Equal(b, b2) {
		t.Fatal("saveCheckpoint's file differs from the earlier layout")
	}
	if step, err := loadCheckpoint(filepath.Join(t.TempDir(), "none"), into, opt2); step != 0 || err != nil {
		t.Fatalf("a missing checkpoint: step %d, %v", step, err)
	}
}

// TestCheckpointNothingRestored: every way a checkpoint can be wrong is
// an error, and leaves the parameters, the moments and the step as they
// were.
func TestCheckpointNothingRestored(t *testing.T) {
	dir := t.TempDir()
	params, opt := ckptState(5)
	good := filepath.Join(dir, "good")
	if err := saveCheckpoint(good, 4, params, opt); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(good)
	hl := int(binary.LittleEndian.Uint64(b))
	header := string(b[8 : 8+hl])
	reheader := func(old, new string) []byte {
		if !strings.Contains(header, old) {
			t.Fatalf("header lacks %q", old)
		}
		h := strings.Replace(header, old, new, 1)
		for len(h) < hl {
			h += " "
		}
		out := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
		return append(append(out, h...), b[8+hl:]...)
	}
	flip := func(at int) []byte {
		c := slices.Clone(b)
		c[at] ^= 0x10
		return c
	}
	other := func(f func(params []nn.Named)) []byte {
		p, o := ckptState(5)
		f(p)
		path := filepath.Join(dir, "other")
		if err := saveCheckpoint(path, 4, p, o); err != nil {
			t.Fatal(err)
		}
		c, _ := os.ReadFile(path)
		return c
	}
	cases := map[string][]byte{
		"first data byte":  flip(8 + hl),
		"middle data byte": flip(8 + hl + (len(b)-8-hl)/2),
		"last data byte":   flip(len(b) - 1),
		"truncated":        b[:len(b)-4],
		"empty":            {},
		"format":           reheader(checkpointFormat, "posttrain.recipe.checkpoinT"),
		"step":             reheader(`"step":"4"`, `"step":"-4"`),
		"checksum":         reheader(`"sha256":"`, `"sha256":"0`), // one digit longer
		"dtype":            reheader(`"dtype":"F32"`, `"dtype":"I32"`),
		"missing tensor":   other(func(p []nn.Named) { p[1].Name = "bias2" }),
		"shape": other(func(p []nn.Named) {
			p[3].Var = autograd.Param(tensor.FromSlice(p[3].Var.Value.Data(), 1100, 17))
		}),
	}
	for name, c := range cases {
		path := filepath.Join(dir, "bad")
		if err := os.WriteFile(path, c, 0o644); err != nil {
			t.Fatal(err)
		}
		into, o := ckptState(8)
		s0, before := snapshot(into, o)
		if _, err := loadCheckpoint(path, into, o); err == nil {
			t.Errorf("%s: accepted", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
		s1, after := snapshot(into, o)
		sameState(t, name, s0, before, s1, after)
	}
	// Fewer parameters than the checkpoint holds.
	into, o := ckptState(8)
	s0, before := snapshot(into, o)
	if _, err := loadCheckpoint(good, into[:3], nn.NewAdamW(into[:3], 1)); err == nil {
		t.Error("a checkpoint of more parameters accepted")
	}
	s1, after := snapshot(into, o)
	sameState(t, "fewer parameters", s0, before, s1, after)
}

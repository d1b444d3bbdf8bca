package hf

import (
	"errors"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/posttrain/posttrain/tensor/nn"
)

// TestLoadBF16 loads each fixture with its matrices in bfloat16 and
// checks it is the float32 load frozen (bit for bit), that its logits
// stay within 3e-2 of the row's largest of the float32 model of the same
// rounded weights (tensor.GemmMixed rounds a prompt's activations to
// bfloat16, 2⁻⁹ relative, before each product), and that greedy decoding
// gives the float32 model's tokens, the margins of these fixtures
// allowing.
func TestLoadBF16(t *testing.T) {
	ref := loadReference(t)
	for _, name := range fixtures {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join("testdata", name)
			m32, err := LoadModel(dir)
			if err != nil {
				t.Fatal(err)
			}
			mb, err := LoadModelWith(dir, LoadOptions{Dtype: "BF16"})
			if err != nil {
				t.Fatal(err)
			}
			if !mb.Frozen() || m32.Frozen() {
				t.Fatal("Frozen wrong")
			}
			frozen := m32.Clone()
			if err := frozen.FreezeBF16(); err != nil {
				t.Fatal(err)
			}
			rounded := m32.Clone()
			for _, p := range rounded.Params() {
				if p.Var.Value.Dims() == 2 {
					copy(p.Var.Value.Data(), p.Var.Value.BF16().Dense().Data())
				}
			}
			ids := ref[name].IDs
			lb, err := mb.Logits(ids)
			if err != nil {
				t.Fatal(err)
			}
			lf, _ := frozen.Logits(ids)
			if !slices.Equal(lb.Data(), lf.Data()) {
				t.Fatal("loaded in bfloat16 differs from loaded and frozen")
			}
			lr, _ := rounded.Logits(ids)
			v := m32.Config.Vocab
			worst := 0.0
			for i := range ids {
				want := lr.Data()[i*v : (i+1)*v]
				scale := 0.0
				for _, w := range want {
					scale = max(scale, math.Abs(float64(w)))
				}
				for j, w := range want {
					worst = max(worst, math.Abs(float64(lb.Data()[i*v+j]-w))/scale)
				}
			}
			if worst > 3e-2 {
				t.Fatalf("logits off by %.2g of the row's largest", worst)
			}
			t.Logf("logits within %.2g", worst)
			gb, err := mb.Generate(ids, 8, nn.NewSampler(1, 0, 0, 0))
			if err != nil {
				t.Fatal(err)
			}
			gr, _ := rounded.Generate(ids, 8, nn.NewSampler(1, 0, 0, 0))
			if !slices.Equal(gb, gr) {
				t.Errorf("greedy %v, float32 of the rounded weights %v", gb, gr)
			}
			if name == "llama_bf16" {
				// Its weights are bfloat16 already: the PyTorch float64
				// reference's greedy continuation holds as well.
				want := ref[name].Greedy[:min(8, len(ref[name].Greedy))]
				for i, id := range want {
					if slices.Contains(mb.Config.EOS, id) {
						want = want[:i+1]
						break
					}
				}
				if !slices.Equal(gb, want) {
					t.Errorf("greedy %v, PyTorch reference %v", gb, want)
				}
			}
			if err := SaveModel(mb, t.TempDir()); !errors.Is(err, nn.ErrFrozen) {
				t.Errorf("SaveModel of a frozen model: %v", err)
			}
		})
	}
	if _, err := LoadModelWith("testdata/smol_f32", LoadOptions{Dtype: "F16"}); err == nil || !strings.Contains(err.Error(), `"F16"`) {
		t.Errorf("dtype F16: %v", err)
	}
}

package recipe

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/posttrain/posttrain/prefopt"
	"github.com/posttrain/posttrain/tensor/nn"
)

// TestFrozenDPOStep: a LoRA DPO step (reference = the policy with its
// adapters off) on a base frozen in bfloat16, against the same step on
// float32 bases. On the float32 model of the same rounded weights the
// loss and the adapters' gradients agree to float32 summation order,
// since the bfloat16 layers keep the activations exact; on the unrounded
// float32 model the loss agrees within 1e-2 relative (issue 16's goal).
// The gradients match finite differences of the step's loss, with and
// without gradient checkpointing, with a tied and an untied head.
func TestFrozenDPOStep(t *testing.T) {
	for _, tied := range []bool{false, true} {
		for _, recompute := range []bool{false, true} {
			cfg := testConfig
			cfg.Tied = tied
			base, err := nn.NewModel(cfg, 11)
			if err != nil {
				t.Fatal(err)
			}
			full, rounded, fz := base.Clone(), base.Clone(), base.Clone()
			for _, p := range rounded.Params() {
				if d := p.Var.Value; d.Dims() == 2 {
					copy(d.Data(), d.BF16().Dense().Data())
				}
			}
			if err := fz.FreezeBF16(); err != nil {
				t.Fatal(err)
			}
			pairs := randomPairs(3, 12)
			const beta = 0.5
			step := func(m *nn.Model, scale float64) (float64, [][]float32) {
				p := &Preference{Policy: m, Objective: prefopt.DPO{Beta: beta}, Config: Config{Recompute: recompute}}
				m.ZeroGrad()
				res, err := p.Step(pairs, nil, scale)
				if err != nil {
					t.Fatal(err)
				}
				var g [][]float32
				for _, q := range m.TrainableParams() {
					g = append(g, append([]float32(nil), q.Var.Grad.Data()...))
				}
				return res.Loss, g
			}
			var ads []*nn.Adapter
			for _, m := range []*nn.Model{fz, rounded, full} {
				a, err := m.AddLoRA(nn.LoRAConfig{Rank: 2, Alpha: 4, Targets: []string{"q", "v", "o", "up"}}, 2)
				if err != nil {
					t.Fatal(err)
				}
				rng := rand.New(rand.NewPCG(3, 3))
				for _, l := range a.Modules {
					for i := range l.B.Value.Data() {
						l.B.Value.Data()[i] = float32(rng.NormFloat64() * 0.3)
					}
				}
				ads = append(ads, a)
			}
			name := map[bool]string{false: "untied", true: "tied"}[tied] + map[bool]string{false: "", true: "/recompute"}[recompute]
			got, g16 := step(fz, 1)
			same, g32 := step(rounded, 1)
			ref, _ := step(full, 1)
			if math.Abs(got-same) > 1e-5*math.Abs(same) {
				t.Fatalf("%s: loss %v on the bfloat16 base, %v on its float32 copy", name, got, same)
			}
			if math.Abs(got-ref) > 1e-2*math.Abs(ref) {
				t.Fatalf("%s: loss %v on the bfloat16 base, %v on the float32 base", name, got, ref)
			}
			if len(g16) != len(g32) || len(g16) != 2*len(ads[0].Modules) {
				t.Fatalf("%s: %d trainable parameters, %d on the float32 copy", name, len(g16), len(g32))
			}
			for i := range g16 {
				peak := 0.0
				for _, v := range g32[i] {
					peak = max(peak, math.Abs(float64(v)))
				}
				for j, v := range g16[i] {
					if d := math.Abs(float64(v - g32[i][j])); !(d <= 1e-4*peak) || peak == 0 {
						t.Fatalf("%s: %s[%d] = %v on the bfloat16 base, %v on its float32 copy (peak %v)",
							name, ads[0].Params()[i].Name, j, v, g32[i][j], peak)
					}
				}
			}
			step(fz, 1) // leave the gradients for fdCheck
			fdCheck(t, ads[0].Params(), func() float64 {
				// The step's loss alone: scale 0 adds nothing to the gradients.
				p := &Preference{Policy: fz, Objective: prefopt.DPO{Beta: beta}, Config: Config{Recompute: recompute}}
				res, err := p.Step(pairs, nil, 0)
				if err != nil {
					t.Fatal(err)
				}
				return res.Loss
			})
		}
	}
}

package recipe

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"testing"

	"github.com/posttrain/posttrain/distill"
	"github.com/posttrain/posttrain/prefopt"
	"github.com/posttrain/posttrain/tensor/nn"
)

// headKinds are the three ways a trained model's output head can stand:
// its own matrix, tied to the embedding (whose gradient must then carry
// both uses), and frozen under LoRA (no head gradient at all).
var headKinds = []string{"untied", "tied", "lora"}

// headModel returns a fresh model of the given head kind, the same for
// the same arguments.
func headModel(t *testing.T, kind string, seed uint64) *nn.Model {
	t.Helper()
	switch kind {
	case "lora":
		m, _ := loraModel(t, 0)
		return m
	case "tied":
		c := testConfig
		c.Tied = true
		m, err := nn.NewModel(c, seed)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	m, err := nn.NewModel(testConfig, seed)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// grads returns every trainable parameter's gradient by name.
func grads(m *nn.Model) map[string][]float32 {
	out := map[string][]float32{}
	for _, p := range m.TrainableParams() {
		if p.Var.Grad != nil {
			out[p.Name] = append([]float32(nil), p.Var.Grad.Data()...)
		}
	}
	return out
}

// sameStep fails unless the fused and the unfused step gave the same
// losses and gradients up to float32 rounding, and some gradient is
// nonzero (a step that trains nothing would pass trivially).
func sameStep(t *testing.T, what string, lf, lu float64, gf, gu map[string][]float32) {
	t.Helper()
	if math.Abs(lf-lu) > 1e-5*max(1, math.Abs(lu)) {
		t.Errorf("%s: loss %v fused, %v unfused", what, lf, lu)
	}
	if len(gf) != len(gu) || len(gu) == 0 {
		t.Fatalf("%s: %d gradients fused, %d unfused", what, len(gf), len(gu))
	}
	nonzero := false
	for name, u := range gu {
		f := gf[name]
		if len(f) != len(u) {
			t.Fatalf("%s: %s: %d entries fused, %d unfused", what, name, len(f), len(u))
		}
		var scale float64
		for _, x := range u {
			scale = max(scale, math.Abs(float64(x)))
		}
		nonzero = nonzero || scale > 0
		for i := range u {
			if d := math.Abs(float64(f[i] - u[i])); d > 1e-6+2e-4*scale {
				t.Errorf("%s: %s[%d]: %v fused, %v unfused (largest entry %v)", what, name, i, f[i], u[i], scale)
				break
			}
		}
	}
	if !nonzero {
		t.Errorf("%s: every gradient is zero", what)
	}
}

// TestFusedSFT: an SFT micro-batch (scaled as under accumulation) gives
// the same loss, accuracy and gradients fused and unfused.
func TestFusedSFT(t *testing.T) {
	pairs := randomPairs(4, 71)
	xs := make([]Example, len(pairs))
	for i, p := range pairs {
		xs[i] = Example{Prompt: p.Prompt, Completion: p.Chosen}
	}
	for _, kind := range headKinds {
		run := func(unfused bool) (map[string]float64, map[string][]float32) {
			m := headModel(t, kind, 72)
			s := &SFT{Model: m, Config: Config{Unfused: unfused}}
			s.train, s.sc = xs, s.Config.scorer(m)
			m.ZeroGrad()
			got, _, err := s.micro(context.Background(), []int{0, 1, 2, 3}, 0, 0.5)
			if err != nil {
				t.Fatal(err)
			}
			return got, grads(m)
		}
		mf, gf := run(false)
		mu, gu := run(true)
		sameStep(t, "SFT "+kind, mf["loss"], mu["loss"], gf, gu)
		if mf["mean_token_accuracy"] != mu["mean_token_accuracy"] {
			t.Errorf("SFT %s: accuracy %v fused, %v unfused", kind, mf["mean_token_accuracy"], mu["mean_token_accuracy"])
		}
	}
}

// TestFusedPreference: a DPO step against a reference model (and, under
// LoRA, against the policy with its adapters off) is the same fused and
// unfused.
func TestFusedPreference(t *testing.T) {
	pairs := randomPairs(3, 73)
	for _, kind := range headKinds {
		for _, obj := range []prefopt.Objective{prefopt.DPO{Beta: 0.5}, prefopt.IPO{Tau: 0.3}} {
			run := func(unfused bool) (float64, map[string][]float32) {
				m := headModel(t, kind, 74)
				p := &Preference{Policy: m, Objective: obj, Config: Config{Unfused: unfused}}
				if kind != "lora" {
					p.Ref = headModel(t, kind, 75)
				}
				m.ZeroGrad()
				res, err := p.Step(pairs, nil, 0.5)
				if err != nil {
					t.Fatal(err)
				}
				return res.Loss, grads(m)
			}
			lf, gf := run(false)
			lu, gu := run(true)
			sameStep(t, fmt.Sprintf("%T %s", obj, kind), lf, lu, gf, gu)
		}
	}
}

// TestFusedTokens: the token-level backward pass of the online
// objectives (BackwardTokens) and the no-gradient LogProbs are the same
// fused and unfused.
func TestFusedTokens(t *testing.T) {
	pairs := randomPairs(3, 76)
	s, _ := pairSeqs(pairs, 0)
	for _, kind := range headKinds {
		var tok [2][]float64
		run := func(unfused bool) (float64, map[string][]float32) {
			m := headModel(t, kind, 77)
			sc := NewScorer(m)
			sc.Unfused = unfused
			if _, err := sc.LogProbs(s); err != nil {
				t.Fatal(err)
			}
			m.ZeroGrad()
			lp, err := sc.Forward(s)
			if err != nil {
				t.Fatal(err)
			}
			tl := sc.TokenLogProbs()
			d := make([]float64, len(tl))
			var loss float64
			for i := range d {
				d[i] = float64(i%5)/4 - 0.4
				loss += d[i] * tl[i]
			}
			if unfused {
				tok[1] = tl
			} else {
				tok[0] = tl
			}
			if err := sc.BackwardTokens(d); err != nil {
				t.Fatal(err)
			}
			return loss + lp[0], grads(m)
		}
		lf, gf := run(false)
		lu, gu := run(true)
		sameStep(t, "BackwardTokens "+kind, lf, lu, gf, gu)
		for i := range tok[0] {
			if math.Abs(tok[0][i]-tok[1][i]) > 1e-5 {
				t.Fatalf("%s: token %d: log-prob %v fused, %v unfused", kind, i, tok[0][i], tok[1][i])
			}
		}
	}
}

// TestFusedDistill: every distillation loss, with a live teacher (tied
// or not) and with a cache, gives the same micro-batch loss and student
// gradients fused and unfused, for every kind of student head.
func TestFusedDistill(t *testing.T) {
	pairs := randomPairs(4, 78)
	xs := make([]Example, len(pairs))
	for i, p := range pairs {
		xs[i] = Example{Prompt: p.Prompt, Completion: p.Chosen}
	}
	ctx := context.Background()
	teacher := headModel(t, "untied", 79)
	tied := headModel(t, "tied", 80)
	c, err := PrecomputeTeacher(ctx, teacher, xs, 4, 2, true, 0, filepath.Join(t.TempDir(), "t.cache"))
	if err != nil {
		t.Fatal(err)
	}
	losses := []DistillLoss{
		ConvexLoss{TeacherWeight: 0.7},
		SoftTargetLoss{Temperature: 2},
		JSDLoss{Beta: 0.3, Temperature: 1.5},
		SparseKLLoss{K: 4, Leftover: distill.Bucket, Alpha: 0.6},
	}
	for _, kind := range headKinds {
		for _, loss := range losses {
			for _, src := range []string{"live", "tied teacher", "cache"} {
				if _, live := loss.(SoftTargetLoss); src == "cache" && live {
					continue
				}
				if _, live := loss.(JSDLoss); src == "cache" && live {
					continue
				}
				run := func(unfused bool) (float64, map[string][]float32) {
					m := headModel(t, kind, 81)
					d := &Distill{Student: m, Loss: loss, Config: Config{Unfused: unfused}}
					switch src {
					case "live":
						d.Teacher = teacher
					case "tied teacher":
						d.Teacher = tied
					default:
						d.Cache = c
					}
					d.train, d.st = xs, d.Config.scorer(m)
					if d.Teacher != nil {
						d.te = d.Config.scorer(d.Teacher)
					}
					m.ZeroGrad()
					got, _, err := d.micro(ctx, []int{0, 1, 2, 3}, 0, 0.5)
					if err != nil {
						t.Fatal(err)
					}
					return got["loss"], grads(m)
				}
				lf, gf := run(false)
				lu, gu := run(true)
				sameStep(t, fmt.Sprintf("%T %s student, %s", loss, kind, src), lf, lu, gf, gu)
			}
		}
	}
	// Evaluation takes the same path.
	var eval [2]float64
	for k, unfused := range []bool{false, true} {
		d := &Distill{Student: headModel(t, "tied", 82), Teacher: teacher, Loss: losses[2], Config: Config{Unfused: unfused, Batch: 3}}
		m, err := d.Evaluate(ctx, xs)
		if err != nil {
			t.Fatal(err)
		}
		eval[k] = m["loss"]
	}
	if math.Abs(eval[0]-eval[1]) > 1e-5*eval[1] || !(eval[1] > 0) {
		t.Errorf("evaluation loss %v fused, %v unfused", eval[0], eval[1])
	}
}

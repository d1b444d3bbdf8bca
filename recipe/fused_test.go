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
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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

// sameStep checks that the fused and the unfused step gave the same
// losses and gradients up to float32 rounding, and that some gradient is
// nonzero (a step that trains nothing would pass trivially). The
// tolerance: the two paths round the logits' last bits differently (a
// chunk's GEMM against the whole product's) and sum dW over chunks in
// another order, an error of a few float32 ulps of the largest entry
// times the terms summed (tens here), so 2e-4 of a tensor's largest
// entry, plus 1e-6 for the entries near 0 that cancellation leaves.
func sameStep(t *testing.T, lf, lu float64, gf, gu map[string][]float32) {
	t.Helper()
	assert.InEpsilon(t, lu, lf, 1e-5, "loss")
	require.Len(t, gf, len(gu))
	require.NotEmpty(t, gu)
	nonzero := false
	for name, u := range gu {
		f := gf[name]
		require.Len(t, f, len(u), name)
		var scale float64
		for _, x := range u {
			scale = max(scale, math.Abs(float64(x)))
		}
		nonzero = nonzero || scale > 0
		assert.InDeltaSlice(t, u, f, 1e-6+2e-4*scale, name)
	}
	assert.True(t, nonzero, "every gradient is zero")
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
		t.Run(kind, func(t *testing.T) {
			run := func(unfused bool) (map[string]float64, map[string][]float32) {
				m := headModel(t, kind, 72)
				s := &SFT{Model: m, Config: Config{Unfused: unfused}}
				s.train, s.sc = xs, s.Config.scorer(m)
				m.ZeroGrad()
				got, _, err := s.micro(context.Background(), []int{0, 1, 2, 3}, 0, 0.5)
				require.NoError(t, err)
				return got, grads(m)
			}
			mf, gf := run(false)
			mu, gu := run(true)
			sameStep(t, mf["loss"], mu["loss"], gf, gu)
			assert.Equal(t, mu["mean_token_accuracy"], mf["mean_token_accuracy"], "accuracy")
		})
	}
}

// TestFusedPreference: a DPO step against a reference model (and, under
// LoRA, against the policy with its adapters off) is the same fused and
// unfused.
func TestFusedPreference(t *testing.T) {
	pairs := randomPairs(3, 73)
	for _, kind := range headKinds {
		for _, obj := range []prefopt.Objective{prefopt.DPO{Beta: 0.5}, prefopt.IPO{Tau: 0.3}} {
			t.Run(fmt.Sprintf("%T/%s", obj, kind), func(t *testing.T) {
				run := func(unfused bool) (float64, map[string][]float32) {
					m := headModel(t, kind, 74)
					p := &Preference{Policy: m, Objective: obj, Config: Config{Unfused: unfused}}
					if kind != "lora" {
						p.Ref = headModel(t, kind, 75)
					}
					m.ZeroGrad()
					res, err := p.Step(pairs, nil, 0.5)
					require.NoError(t, err)
					return res.Loss, grads(m)
				}
				lf, gf := run(false)
				lu, gu := run(true)
				sameStep(t, lf, lu, gf, gu)
			})
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
		t.Run(kind, func(t *testing.T) {
			var tok [2][]float64
			run := func(unfused bool) (float64, map[string][]float32) {
				m := headModel(t, kind, 77)
				sc := NewScorer(m)
				sc.Unfused = unfused
				_, err := sc.LogProbs(s)
				require.NoError(t, err)
				m.ZeroGrad()
				lp, err := sc.Forward(s)
				require.NoError(t, err)
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
				require.NoError(t, sc.BackwardTokens(d))
				return loss + lp[0], grads(m)
			}
			lf, gf := run(false)
			lu, gu := run(true)
			sameStep(t, lf, lu, gf, gu)
			// Log-probs of a few units: float32 rounding of the logits and
			// of the log-sum-exp is about 1e-6.
			assert.InDeltaSlice(t, tok[1], tok[0], 1e-5, "token log-probs")
		})
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
	require.NoError(t, err)
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
				t.Run(fmt.Sprintf("%T/%s/%s", loss, kind, src), func(t *testing.T) {
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
						require.NoError(t, err)
						return got["loss"], grads(m)
					}
					lf, gf := run(false)
					lu, gu := run(true)
					sameStep(t, lf, lu, gf, gu)
				})
			}
		}
	}
	// Evaluation takes the same path.
	var eval [2]float64
	for k, unfused := range []bool{false, true} {
		d := &Distill{Student: headModel(t, "tied", 82), Teacher: teacher, Loss: losses[2], Config: Config{Unfused: unfused, Batch: 3}}
		m, err := d.Evaluate(ctx, xs)
		require.NoError(t, err)
		eval[k] = m["loss"]
	}
	// A mean of float32 losses near 1.
	assert.InEpsilon(t, eval[1], eval[0], 1e-5, "evaluation loss")
}

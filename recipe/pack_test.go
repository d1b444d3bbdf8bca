package recipe

import (
	"context"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/posttrain/posttrain/prefopt"
	"github.com/posttrain/posttrain/tensor/nn"
)

var packConfig = nn.Config{Vocab: 50, DModel: 16, Layers: 2, Heads: 4, KVHeads: 2, Context: 160, Hidden: 24}

// packExamples returns examples of the given prompt+completion lengths,
// prompts of a third of each, random tokens.
func packExamples(seed uint64, lens ...int) []Example {
	rng := rand.New(rand.NewPCG(seed, 9))
	xs := make([]Example, len(lens))
	for i, l := range lens {
		ids := make([]int32, l)
		for j := range ids {
			ids[j] = int32(rng.IntN(packConfig.Vocab))
		}
		p := max(1, l/3)
		xs[i] = Example{Prompt: ids[:p], Completion: ids[p:], Line: i + 1}
	}
	return xs
}

// TestPackLayout checks first-fit packing against a layout worked out
// by hand, the labels at every example boundary, and its errors.
func TestPackLayout(t *testing.T) {
	xs := packExamples(1, 70, 20, 90, 5, 60, 100, 3)
	s, err := Pack(xs, 160, 7)
	if err != nil {
		t.Fatal(err)
	}
	// 70 and 20 share row 0; 90 does not fit (180) and opens row 1; 5
	// and 60 go back to row 0 (155); 100 fits neither and opens row 2; 3
	// fills row 0 to 158.
	want := [][]int{{0, 70, 90, 95, 155}, {0}, {0}}
	if !reflect.DeepEqual(s.Starts, want) {
		t.Fatalf("starts %v, want %v", s.Starts, want)
	}
	if s.Layout.Width != 158 || !slices.Equal(s.Layout.Len, []int{158, 90, 100}) {
		t.Fatalf("width %d, lengths %v", s.Layout.Width, s.Layout.Len)
	}
	again, _ := Pack(xs, 160, 7)
	if !reflect.DeepEqual(again, s) {
		t.Fatal("packing the same examples twice differs")
	}
	// Row 0: example 1 (20 tokens, prompt 6) at 70: positions 75…88
	// predict its completion, 89 (its last token) nothing, 69 (example
	// 0's last) nothing.
	row := s.Labels[:158]
	for _, j := range []int{69, 70, 74, 89, 94, 157} {
		if row[j] != prefopt.Ignore {
			t.Errorf("label at %d = %d, want Ignore", j, row[j])
		}
	}
	for j := 75; j < 89; j++ {
		if row[j] != xs[1].Completion[j-75] {
			t.Fatalf("label at %d = %d, want %d", j, row[j], xs[1].Completion[j-75])
		}
	}
	if s.Tokens[158+90] != 7 || s.CompletionTokens() != 348-(23+6+30+1+20+33+1) {
		t.Errorf("pad %d, completion tokens %d", s.Tokens[158+90], s.CompletionTokens())
	}
	_, err = Pack(xs, 99, 0)
	if err == nil || !strings.Contains(err.Error(), "record at line 6: 100 tokens exceed the packed row of 99") {
		t.Errorf("long example: %v", err)
	}
}

// TestPackedSFTMatchesPadded checks that a packed micro-batch gives the
// padded one's loss (1e-5 relative) and every parameter's gradient
// (within 1e-4 of its largest entry), recorded whole and with gradient
// checkpointing on groups of rows, and that evaluation agrees.
func TestPackedSFTMatchesPadded(t *testing.T) {
	xs := packExamples(2, 70, 20, 90, 5, 60, 100, 3, 66)
	for _, recompute := range []bool{false, true} {
		run := func(pack bool) (loss float64, grads [][]float32, eval map[string]float64) {
			m, err := nn.NewModel(packConfig, 4)
			if err != nil {
				t.Fatal(err)
			}
			s := &SFT{Model: m, Pack: pack, Config: Config{Batch: len(xs), Recompute: recompute}}
			s.train = xs
			s.sc = s.Config.scorer(m)
			s.sc.Recompute, s.sc.PassTokens = recompute, 160
			m.ZeroGrad()
			met, _, err := s.micro(context.Background(), []int{0, 1, 2, 3, 4, 5, 6, 7}, 0, 1)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range m.Params() {
				grads = append(grads, slices.Clone(p.Var.Grad.Data()))
			}
			s.Config.Batch = 5 // two evaluation batches
			eval, err = s.Evaluate(context.Background(), xs)
			if err != nil {
				t.Fatal(err)
			}
			return met["loss"], grads, eval
		}
		l0, g0, e0 := run(false)
		l1, g1, e1 := run(true)
		if math.Abs(l1-l0) > 1e-5*math.Abs(l0) {
			t.Errorf("recompute %v: packed loss %v, padded %v", recompute, l1, l0)
		}
		if math.Abs(e1["loss"]-e0["loss"]) > 1e-5*math.Abs(e0["loss"]) || e1["mean_token_accuracy"] != e0["mean_token_accuracy"] {
			t.Errorf("recompute %v: packed eval %v, padded %v", recompute, e1, e0)
		}
		for i := range g0 {
			var big float64
			for _, x := range g0[i] {
				big = max(big, math.Abs(float64(x)))
			}
			if big == 0 {
				t.Fatalf("parameter %d: zero gradient", i)
			}
			for j, x := range g0[i] {
				if d := math.Abs(float64(g1[i][j] - x)); d > 1e-4*big {
					t.Fatalf("recompute %v: parameter %d [%d]: packed gradient %v, padded %v (largest %v)", recompute, i, j, g1[i][j], x, big)
				}
			}
		}
	}
}

// TestSFTPackTrains runs the trainer packed, and checks that an example
// longer than the packed row is rejected before training, by record.
func TestSFTPackTrains(t *testing.T) {
	m, err := nn.NewModel(packConfig, 5)
	if err != nil {
		t.Fatal(err)
	}
	xs := packExamples(3, 30, 12, 50, 7, 40)
	s := &SFT{Model: m, Pack: true, PackLen: 64, Config: Config{Steps: 2, Batch: 5, LR: 1e-3}}
	h, err := s.Train(context.Background(), xs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if l := h[0].Metrics["loss"]; !(l > 0) {
		t.Errorf("loss %v", l)
	}
	packed, err := Pack(xs, 64, 0)
	if err != nil {
		t.Fatal(err)
	}
	sc := NewScorer(m)
	sc.Average = true
	if _, err := sc.Forward(packed); err == nil || !strings.Contains(err.Error(), "Average") {
		t.Errorf("packed rows averaged: %v", err)
	}
	sc.Average = false
	packed.Starts = packed.Starts[1:]
	if _, err := sc.Forward(packed); err == nil || !strings.Contains(err.Error(), "starts for") {
		t.Errorf("starts missing a row: %v", err)
	}
	s.PackLen = 45
	if _, err := s.Train(context.Background(), xs, nil); err == nil || !strings.Contains(err.Error(), "record at line 3: 50 tokens exceed the packed row of 45") {
		t.Errorf("long example: %v", err)
	}
}

package lab

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/posttrain/posttrain/distill"
	"github.com/posttrain/posttrain/prefopt"
	"github.com/posttrain/posttrain/tensor/nn"
)

// With a teacher whose top-1 is the true next token with probability 1,
// SparseKL (bucketed leftover 0) is the cross-entropy whatever α: a run
// with it must retrace the cross-entropy run step for step, and a teacher
// shifted by one token must not.
func TestTrainLMTopKAlignment(t *testing.T) {
	var tok nn.ByteTokenizer
	ids := tok.Encode(strings.Repeat("the Rays of Light are refracted; ", 12))
	cfg := LMConfig{Steps: 3, Batch: 2, Seq: 16, LR: 1e-2, Seed: 3}
	ce, err := TrainLM(context.Background(), tinyLM(t, 6), ids, cfg, Bar{})
	if err != nil {
		t.Fatal(err)
	}
	teacher := func(next []int32) *distill.TopK {
		return &distill.TopK{K: 1, IDs: next, LogProbs: make([]float32, len(next))}
	}
	cfg.TopK, cfg.Alpha = teacher(ids[1:]), 0.7
	kl, err := TrainLM(context.Background(), tinyLM(t, 6), ids, cfg, Bar{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range ce.Loss {
		if math.Abs(ce.Loss[i]-kl.Loss[i]) > 1e-5*math.Abs(ce.Loss[i]) {
			t.Errorf("step %d: cross-entropy %v, top-k KL with a perfect teacher %v", i, ce.Loss[i], kl.Loss[i])
		}
	}
	cfg.TopK = teacher(ids[2:])
	sh, err := TrainLM(context.Background(), tinyLM(t, 6), ids, cfg, Bar{})
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(sh.Loss[0]-ce.Loss[0]) < 1e-3 {
		t.Error("a misaligned top-k teacher gave the cross-entropy loss")
	}
	cfg.TopK = teacher(ids[1:10])
	if _, err := TrainLM(context.Background(), tinyLM(t, 6), ids, cfg, Bar{}); err == nil {
		t.Error("no error for a top-k teacher shorter than the stream")
	}
}

// The 95 % interval of {1, 2, 3}: mean 2, standard deviation 1, and
// Student's t quantile for 2 degrees of freedom in closed form,
// t = (2p−1)/√(2p(1−p)) at p = 0.975.
func TestMeanCI(t *testing.T) {
	s := MeanCI([]float64{1, 2, 3})
	p := 0.975
	half := (2*p - 1) / math.Sqrt(2*p*(1-p)) / math.Sqrt(3)
	if s.N != 3 || math.Abs(s.Mean-2) > 1e-12 || math.Abs(s.Half-half) > 1e-9 {
		t.Errorf("MeanCI = %+v, want mean 2, half %v", s, half)
	}
	if got := s.Format("%.2f"); got != "2.00 ± 2.48" {
		t.Errorf("Format = %q", got)
	}
	if got := (Stat{Mean: 0.5, Half: 0.25}).Format("%+.2f"); got != "+0.50 ± 0.25" {
		t.Errorf("signed Format = %q", got)
	}
	if one := MeanCI([]float64{4}); one.Mean != 4 || !math.IsNaN(one.Half) || one.Format("%.1f") != "4.0" {
		t.Errorf("one run: %+v", one)
	}
}

// The rater keeps levels and swaps each level's pairs at rate 1 − p.
func TestRater(t *testing.T) {
	const per = 20000
	var pairs []prefopt.Pair
	for lv := prefopt.SignificantlyBetter; lv <= prefopt.NegligiblyBetter; lv++ {
		for range per {
			pairs = append(pairs, prefopt.Pair{Prompt: "p", Chosen: "a", Rejected: "b", Level: lv})
		}
	}
	out, n := Rater(pairs, 7)
	again, _ := Rater(pairs, 7)
	flips := map[prefopt.Level]int{}
	total := 0
	for i, p := range out {
		if p.Level != pairs[i].Level || p != again[i] {
			t.Fatalf("pair %d: %+v from %+v (again %+v)", i, p, pairs[i], again[i])
		}
		if p.Chosen == "b" {
			flips[p.Level]++
			total++
		}
	}
	if total != n {
		t.Errorf("Rater says %d swaps, made %d", n, total)
	}
	for lv, f := range flips {
		q := 1 - lv.Prob()
		if sd := math.Sqrt(q * (1 - q) / per); math.Abs(float64(f)/per-q) > 5*sd {
			t.Errorf("%v: swapped %d of %d, want rate %v", lv, f, per, q)
		}
	}
	if pairs[0].Chosen != "a" {
		t.Error("Rater changed its input")
	}
}

// Under go test standard output is not a terminal: no bars.
func TestProgressOffWhenPiped(t *testing.T) {
	if Progress(false) != nil || Progress(true) != nil {
		t.Error("progress bars on a non-terminal")
	}
}

func TestTableMarkdown(t *testing.T) {
	tb := Table{Title: "T", Head: []string{"a (s)", "b|c"}, Rows: [][]string{{"1", "x|y"}}, Note: "n"}
	want := "**T**\n\n| a (s) | b\\|c |\n|---|---|\n| 1 | x\\|y |\n\nn\n\n"
	if got := tb.Markdown(); got != want {
		t.Errorf("Markdown:\n%q\nwant\n%q", got, want)
	}
}

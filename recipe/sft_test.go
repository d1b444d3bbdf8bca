package recipe

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/posttrain/posttrain/tensor/nn"
)

// TestSFT: the first logged loss is the independent per-token NLL of the
// batch, and training drives it down (full fine-tuning, no adapters).
func TestSFT(t *testing.T) {
	m, err := nn.NewModel(testConfig, 6)
	if err != nil {
		t.Fatal(err)
	}
	pairs := randomPairs(4, 13)
	xs := make([]Example, len(pairs))
	var nll float64
	var n int
	for i, p := range pairs {
		xs[i] = Example{Prompt: p.Prompt, Completion: p.Chosen, Line: i + 1}
		nll -= seqLogProb(t, m, p.Prompt, p.Chosen)
		n += len(p.Chosen)
	}
	s := &SFT{Model: m, Config: Config{Steps: 40, Batch: 4, LR: 1e-2, Warmup: 2, ClipNorm: 1, EvalEvery: 40}}
	h, err := s.Train(context.Background(), xs, xs)
	if err != nil {
		t.Fatal(err)
	}
	if first := h[0].Metrics["loss"]; math.Abs(first-nll/float64(n)) > 1e-5 {
		t.Errorf("first loss %v, independent NLL %v", first, nll/float64(n))
	}
	last, _ := h.Last("eval_loss")
	if last > 0.5*nll/float64(n) {
		t.Errorf("eval loss %v after training, %v before", last, nll/float64(n))
	}
	if acc, _ := h.Last("eval_mean_token_accuracy"); acc < 0.5 {
		t.Errorf("token accuracy %v", acc)
	}
	bad := []Example{{Prompt: []int32{1}, Completion: nil, Line: 7}}
	if _, err := s.Train(context.Background(), bad, nil); err == nil || !strings.Contains(err.Error(), "line 7") {
		t.Errorf("empty completion: %v", err)
	}
}

package recipe

import (
	"context"
	"math"
	"path/filepath"
	"testing"

	"github.com/posttrain/posttrain/tensor/nn"
)

// TestPrecomputeTopK: per position of every whole window, the cache holds
// the teacher's k most likely next tokens in descending order, with
// their log-probabilities to bfloat16 precision (checked against a
// float64 log-sum-exp of the teacher's own logits), and its first id is
// what PrecomputeTop1 stores.
func TestPrecomputeTopK(t *testing.T) {
	teacher, _ := nn.NewModel(testConfig, 52)
	tokens := randomPairs(1, 53)[0].Prompt
	for len(tokens) < 70 {
		tokens = append(tokens, randomPairs(1, uint64(len(tokens)))[0].Chosen...)
	}
	const seq, k = 16, 5
	dir := t.TempDir()
	got, err := PrecomputeTopK(context.Background(), teacher, tokens, seq, k, filepath.Join(dir, "topk"), nil)
	if err != nil {
		t.Fatal(err)
	}
	n := (len(tokens) / seq) * seq
	if got.K != k || len(got.IDs) != n*k || len(got.LogProbs) != n*k {
		t.Fatalf("K %d, %d ids, %d log-probs for %d tokens", got.K, len(got.IDs), len(got.LogProbs), n)
	}
	top1, err := PrecomputeTop1(context.Background(), teacher, tokens, seq, filepath.Join(dir, "top1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for w := 0; w < n; w += seq {
		l, _ := teacher.Logits(tokens[w : w+seq])
		for i := range seq {
			row := l.Row(i)
			lse := math.Inf(-1)
			for _, z := range row {
				lse = math.Max(lse, float64(z)) + math.Log1p(math.Exp(-math.Abs(lse-float64(z))))
			}
			p := w + i
			if got.IDs[p*k] != top1[p] {
				t.Fatalf("token %d: top-k's first %d, top-1 cache %d", p, got.IDs[p*k], top1[p])
			}
			for j := range k {
				id := got.IDs[p*k+j]
				want := float64(row[id]) - lse
				if lp := float64(got.LogProbs[p*k+j]); math.Abs(lp-want) > 1e-2*math.Abs(want)+1e-3 {
					t.Errorf("token %d, rank %d: log-prob %v, want %v", p, j, lp, want)
				}
				if j > 0 && row[id] > row[got.IDs[p*k+j-1]] {
					t.Errorf("token %d: rank %d above rank %d", p, j, j-1)
				}
			}
		}
	}
	if _, err := PrecomputeTopK(context.Background(), teacher, tokens, seq, 0, filepath.Join(dir, "bad"), nil); err == nil {
		t.Error("k = 0 accepted")
	}
}

package nn

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/posttrain/posttrain/tensor/autograd"
)

// TestForwardPackedMatchesAlone checks that each document of a packed
// row gets the logits Forward gives it alone, on a grouped-query model
// with biases, documents crossing the 64-position attention blocks.
func TestForwardPackedMatchesAlone(t *testing.T) {
	m, err := NewModel(Config{Vocab: 40, DModel: 16, Layers: 2, Heads: 4, KVHeads: 2, Context: 160, QKVBias: true}, 3)
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(1, 2))
	const tt = 150
	starts := [][]int{{0, 70, 71, 149}, {0, 30}}
	tokens := make([]int32, len(starts)*tt)
	for i := range tokens {
		tokens[i] = int32(rng.IntN(40))
	}
	tp := autograd.NewTape()
	tp.NoGrad = true
	got, err := m.ForwardPacked(tp, tokens, starts)
	require.NoError(t, err)
	for b, st := range starts {
		for i, s0 := range st {
			e := tt
			if i+1 < len(st) {
				e = st[i+1]
			}
			want, err := m.Logits(tokens[b*tt+s0 : b*tt+e])
			require.NoError(t, err)
			v := want.Dim(1)
			g := got.Value.Data()[(b*tt+s0)*v : (b*tt+e)*v]
			for j, x := range want.Data() {
				if math.Abs(float64(g[j]-x)) > 1e-4*max(1, math.Abs(float64(x))) {
					t.Fatalf("sequence %d document %d: logit %d = %v, alone %v", b, i, j, g[j], x)
				}
			}
		}
	}
}

func TestForwardPackedErrors(t *testing.T) {
	m, err := NewModel(Config{Vocab: 10, DModel: 8, Layers: 1, Heads: 2, Context: 8}, 1)
	require.NoError(t, err)
	tp := autograd.NewTape()
	for name, c := range map[string]struct {
		tokens []int32
		starts [][]int
		msg    string
	}{
		"no starts":  {make([]int32, 4), nil, "do not split"},
		"uneven":     {make([]int32, 5), [][]int{{0}, {0}}, "do not split"},
		"not from 0": {make([]int32, 4), [][]int{{0}, {1}}, "sequence 1: document starts [1]"},
		"order":      {make([]int32, 8), [][]int{{0, 3, 2}}, "sequence 0"},
		"past end":   {make([]int32, 8), [][]int{{0, 8}}, "below the length 8"},
		"context":    {make([]int32, 9), [][]int{{0}}, "exceeds context"},
		"token":      {[]int32{0, 10}, [][]int{{0}}, "outside vocabulary"},
	} {
		_, err := m.ForwardPacked(tp, c.tokens, c.starts)
		assert.ErrorContains(t, err, c.msg, name)
	}
}

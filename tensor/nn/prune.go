package nn

import (
	"fmt"
	"math"
	"slices"

	"github.com/posttrain/posttrain/tensor"
)

// FFNScores returns a magnitude score per hidden unit of the block's
// SwiGLU MLP: ‖Gate_j‖·‖Up_j‖·‖Down_{:,j}‖, the product of the norms of
// the weights that read the unit's two inputs and write its output. A
// unit whose score is 0 contributes nothing; small scores bound small
// contributions for inputs of bounded norm.
func (b *Block) FFNScores() []float64 {
	g, u, dn := b.MLP.Gate.W.Value, b.MLP.Up.W.Value, b.MLP.Down.W.Value
	h := g.Dim(0)
	s := make([]float64, h)
	for j := range h {
		s[j] = norm(g.Row(j)) * norm(u.Row(j))
	}
	d := dn.Dim(0)
	col := make([]float64, h)
	for i := range d {
		for j, w := range dn.Row(i) {
			col[j] += float64(w) * float64(w)
		}
	}
	for j := range h {
		s[j] *= math.Sqrt(col[j])
	}
	return s
}

func norm(x []float32) float64 {
	var s float64
	for _, v := range x {
		s += float64(v) * float64(v)
	}
	return math.Sqrt(s)
}

// PruneFFN returns a copy of m whose SwiGLU hidden size is hidden: in
// every block it keeps the hidden units with the largest FFNScores (ties
// to the lower index), in their original order, and drops the rest —
// structured pruning, so the smaller model runs dense at its new size,
// ready to be distilled into from m. m is not changed.
func (m *TinyLM) PruneFFN(hidden int) (*TinyLM, error) {
	if hidden <= 0 || hidden > m.Config.Hidden {
		return nil, fmt.Errorf("nn: PruneFFN: target hidden size %d outside [1, %d]", hidden, m.Config.Hidden)
	}
	cfg := m.Config
	cfg.Hidden = hidden
	p, err := NewTinyLM(cfg, 0)
	if err != nil {
		return nil, err
	}
	copy(p.Embed.W.Value.Data(), m.Embed.W.Value.Data())
	copy(p.Norm.W.Value.Data(), m.Norm.W.Value.Data())
	copy(p.Head.W.Value.Data(), m.Head.W.Value.Data())
	for l := range m.Blocks {
		src, dst := &m.Blocks[l], &p.Blocks[l]
		for _, pair := range [][2]*tensor.Dense{
			{dst.Norm1.W.Value, src.Norm1.W.Value}, {dst.Norm2.W.Value, src.Norm2.W.Value},
			{dst.Attn.Q.W.Value, src.Attn.Q.W.Value}, {dst.Attn.K.W.Value, src.Attn.K.W.Value},
			{dst.Attn.V.W.Value, src.Attn.V.W.Value}, {dst.Attn.O.W.Value, src.Attn.O.W.Value},
		} {
			copy(pair[0].Data(), pair[1].Data())
		}
		keep := topUnits(src.FFNScores(), hidden)
		for k, j := range keep {
			copy(dst.MLP.Gate.W.Value.Row(k), src.MLP.Gate.W.Value.Row(j))
			copy(dst.MLP.Up.W.Value.Row(k), src.MLP.Up.W.Value.Row(j))
		}
		sd, dd := src.MLP.Down.W.Value, dst.MLP.Down.W.Value
		for i := range sd.Dim(0) {
			sr, dr := sd.Row(i), dd.Row(i)
			for k, j := range keep {
				dr[k] = sr[j]
			}
		}
	}
	return p, nil
}

// topUnits returns the indices of the k largest scores, ascending.
func topUnits(scores []float64, k int) []int {
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		switch {
		case scores[a] > scores[b]:
			return -1
		case scores[a] < scores[b]:
			return 1
		}
		return 0
	})
	idx = idx[:k]
	slices.Sort(idx)
	return idx
}

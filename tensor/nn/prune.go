package nn

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/posttrain/posttrain/tensor"
	"github.com/posttrain/posttrain/tensor/autograd"
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
func (m *Model) PruneFFN(hidden int) (*Model, error) {
	if m.frozen != nil {
		return nil, fmt.Errorf("nn: PruneFFN: %w", ErrFrozen)
	}
	if hidden <= 0 || hidden > m.Config.Hidden {
		return nil, fmt.Errorf("nn: PruneFFN: target hidden size %d outside [1, %d]", hidden, m.Config.Hidden)
	}
	cfg := m.Config
	cfg.Hidden = hidden
	src := m.Params()
	i := 0
	// Every parameter but the MLP's is copied as is; each MLP matrix keeps
	// the rows (gate, up) or columns (down) of its block's best units.
	var keep []int
	p := build(cfg.withDefaults(), func(s spec) *autograd.Var {
		from := src[i].Var.Value
		i++
		switch {
		case strings.HasSuffix(s.name, "mlp.gate.weight"):
			l, _ := strconv.Atoi(strings.Split(s.name, ".")[1])
			keep = topUnits(m.Blocks[l].FFNScores(), hidden)
			fallthrough
		case strings.HasSuffix(s.name, "mlp.up.weight"):
			w := tensor.New(s.shape...)
			for k, j := range keep {
				copy(w.Row(k), from.Row(j))
			}
			return autograd.Param(w)
		case strings.HasSuffix(s.name, "mlp.down.weight"):
			w := tensor.New(s.shape...)
			for r := range from.Dim(0) {
				sr, dr := from.Row(r), w.Row(r)
				for k, j := range keep {
					dr[k] = sr[j]
				}
			}
			return autograd.Param(w)
		}
		return autograd.Param(from.Clone())
	})
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

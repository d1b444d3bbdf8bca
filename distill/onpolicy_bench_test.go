package distill

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/posttrain/posttrain/tensor"
)

// BenchmarkGKD compares GKD.Loss over a batch of 8 sequences whose first
// quarter is prompt (label −100) with GeneralizedJSD over just the
// completion rows gathered: the masking's cost (runs handed over as row
// views, one extra finiteness pass) is the ratio of the two.
//
//	go test -run '^$' -bench 'GKD' -benchtime 5x ./distill/
func BenchmarkGKD(b *testing.B) {
	for _, s := range []struct{ n, v int }{{512, 32000}} {
		r := rand.New(rand.NewPCG(1, 1))
		st, te := randDense(r, 3, s.n, s.v), randDense(r, 3, s.n, s.v)
		g := tensor.New(s.n, s.v)
		g.Zero()
		labels := make([]int32, s.n)
		seq := s.n / 8
		counted := 0
		for i := range labels {
			if i%seq < seq/4 {
				labels[i] = -100
			} else {
				counted++
			}
		}
		cs, ct, cg := tensor.New(counted, s.v), tensor.New(counted, s.v), tensor.New(counted, s.v)
		cg.Zero()
		k := 0
		for i, y := range labels {
			if y >= 0 {
				copy(cs.Row(k), st.Row(i))
				copy(ct.Row(k), te.Row(i))
				k++
			}
		}
		name := fmt.Sprintf("%dx%d", s.n, s.v)
		gkd := GKD{Beta: 0.5, Temperature: 1}
		b.Run("masked/"+name, func(b *testing.B) {
			b.SetBytes(int64(12 * counted * s.v))
			for b.Loop() {
				if _, err := gkd.Loss(g, st, te, labels); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("gathered/"+name, func(b *testing.B) {
			b.SetBytes(int64(12 * counted * s.v))
			for b.Loop() {
				if _, err := GeneralizedJSD(cg, cs, ct, 0.5, 1); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

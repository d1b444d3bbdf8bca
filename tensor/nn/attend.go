package nn

import (
	"math"

	"github.com/posttrain/posttrain/tensor"
	"github.com/posttrain/posttrain/tensor/internal/simd"
)

// attnJob is one worker's share of a layer's attention: items [i0, i1),
// an item being one key/value head of one row (a step) or of the whole
// prompt (a prefill). Items are independent, so the split does not
// change the result.
type attnJob struct {
	d          *Decoder
	l, rows    int
	seqs       []int
	prefill    bool
	i0, i1     int
	qg, sc, og []float32 // scratch, kept across calls
}

// attend computes the attention outputs d.o of layer l for the rows,
// whose keys and values are already in the cache.
func (d *Decoder) attend(l int, seqs []int, rows int, prefill bool) {
	kvh := d.m.Config.KVHeads
	items := kvh
	if !prefill {
		items = rows * kvh
	}
	shares := min(len(d.attn), items)
	if !prefill && d.maxPos*rows < 256 {
		shares = 1 // too little work to hand out
	}
	per := (items + shares - 1) / shares
	n := 0
	for i0 := 0; i0 < items; i0 += per {
		j := &d.attn[n]
		j.d, j.l, j.rows, j.seqs, j.prefill, j.i0, j.i1 = d, l, rows, seqs, prefill, i0, min(items, i0+per)
		d.tasks[n] = j
		n++
	}
	d.fanout(d.tasks[:n])
}

func (j *attnJob) run() {
	d := j.d
	c := d.m.Config
	hs, kvh, dh := c.Heads, c.KVHeads, c.HeadDim
	g, qd := hs/kvh, hs*dh
	scale := float32(1 / math.Sqrt(float64(dh)))
	for it := j.i0; it < j.i1; it++ {
		if j.prefill {
			j.prefillHead(it, g, qd, dh, scale)
			continue
		}
		// One row, one group of g query heads against its cached keys:
		// dot products and axpys, so that nothing is allocated per token.
		r, kh := it/kvh, it%kvh
		cs := &d.seqs[j.seqs[r]]
		n := d.pos[r] + 1
		kc := cs.k[j.l][kh*cs.cap*dh:][:n*dh]
		vc := cs.v[j.l][kh*cs.cap*dh:][:n*dh]
		// The g query heads of this key/value head are adjacent in q:
		// one multi-row kernel call scores them all, each key read once.
		j.sc = fit(j.sc, g*n)
		simd.K.Dots(j.sc, n, kc, dh, d.q[r*qd+kh*g*dh:][:g*dh], dh, g, n, dh)
		for hi := range g {
			h := kh*g + hi
			att := j.sc[hi*n:][:n]
			tensor.Scale(att, scale, att)
			tensor.Softmax(att, att)
			oh := d.o[r*qd+h*dh:][:dh]
			clear(oh)
			for p, w := range att {
				tensor.Axpy(w, vc[p*dh:(p+1)*dh], oh)
			}
		}
	}
}

// prefillHead attends the whole prompt's queries of key/value head kh's
// group at once, through two matrix products over the cached keys and
// values, with the causal mask of each query's position.
func (j *attnJob) prefillHead(kh, g, qd, dh int, scale float32) {
	d := j.d
	n := j.rows
	p0 := d.pos[0]
	total := p0 + n
	cs := &d.seqs[j.seqs[0]]
	kc := cs.k[j.l][kh*cs.cap*dh:][:total*dh]
	vc := cs.v[j.l][kh*cs.cap*dh:][:total*dh]
	j.qg, j.og = fit(j.qg, g*n*dh), fit(j.og, g*n*dh)
	j.sc = fit(j.sc, g*n*total)
	for hi := range g {
		for r := range n {
			copy(j.qg[(hi*n+r)*dh:][:dh], d.q[r*qd+(kh*g+hi)*dh:][:dh])
		}
	}
	tensor.Gemm(false, true, 1, tensor.FromSlice(j.qg, g*n, dh), tensor.FromSlice(kc, total, dh), 0, tensor.FromSlice(j.sc, g*n, total))
	for hi := range g {
		for r := range n {
			row := j.sc[(hi*n+r)*total:][:total]
			k := p0 + r + 1
			tensor.Scale(row[:k], scale, row[:k])
			tensor.Softmax(row[:k], row[:k])
			clear(row[k:])
		}
	}
	tensor.Gemm(false, false, 1, tensor.FromSlice(j.sc, g*n, total), tensor.FromSlice(vc, total, dh), 0, tensor.FromSlice(j.og, g*n, dh))
	for hi := range g {
		for r := range n {
			copy(d.o[r*qd+(kh*g+hi)*dh:][:dh], j.og[(hi*n+r)*dh:][:dh])
		}
	}
}

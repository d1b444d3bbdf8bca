package autograd

import (
	"math"

	"github.com/posttrain/posttrain/tensor"
)

// Embedding returns the rows of table [V, D] picked by ids, shape
// [len(ids), D]. It panics with a *tensor.ShapeError on an id outside
// [0, V): callers feeding data check ids first (nn.TinyLM does).
func (t *Tape) Embedding(table *Var, ids []int32) *Var {
	if table.Value.Dims() != 2 {
		shapeErr("Embedding", "table must be 2-D, have %v", table.Shape())
	}
	v, d := table.Value.Dim(0), table.Value.Dim(1)
	td := table.Value.Data()
	c := t.dense(len(ids), d)
	cd := c.Data()
	for i, id := range ids {
		if id < 0 || int(id) >= v {
			shapeErr("Embedding", "id %d at position %d outside vocabulary of %d", id, i, v)
		}
		copy(cd[i*d:(i+1)*d], td[int(id)*d:(int(id)+1)*d])
	}
	var out *Var
	out = t.node(c, func() {
		g, dt := out.Grad.Data(), t.grad(table).Data()
		for i, id := range ids {
			r := dt[int(id)*d : (int(id)+1)*d]
			tensor.Add(r, r, g[i*d:(i+1)*d])
		}
	}, table)
	return out
}

// CausalSoftmax returns softmax(scale·x) over the last axis of attention
// scores x [..., Tq, Tk], where query i sees keys 0…i+Tk−Tq (the queries
// are the last Tq of Tk positions, as in decoding with a cache). Masked
// entries are exactly 0.
func (t *Tape) CausalSoftmax(x *Var, scale float32) *Var {
	s := x.Shape()
	if len(s) < 2 || s[len(s)-2] > s[len(s)-1] {
		shapeErr("CausalSoftmax", "need [..., Tq, Tk] with Tq ≤ Tk, have %v", s)
	}
	tq, tk := s[len(s)-2], s[len(s)-1]
	rows := 0
	if tk > 0 {
		rows = x.Value.Len() / tk
	}
	xd := x.Value.Data()
	y := t.dense(s...)
	yd := y.Data()
	off := tk - tq
	nb := chunks(rows, normBlock)
	t.parallel(nb, func(b int) {
		for r := b * normBlock; r < min((b+1)*normBlock, rows); r++ {
			n := r%tq + off + 1
			yr := yd[r*tk : (r+1)*tk]
			tensor.Scale(yr[:n], scale, xd[r*tk:r*tk+n])
			tensor.Softmax(yr[:n], yr[:n])
			clear(yr[n:])
		}
	})
	var out *Var
	out = t.node(y, func() {
		g, dx := out.Grad.Data(), t.grad(x).Data()
		t.parallel(nb, func(b int) {
			for r := b * normBlock; r < min((b+1)*normBlock, rows); r++ {
				n := r%tq + off + 1
				yr, gr, dr := yd[r*tk:r*tk+n], g[r*tk:r*tk+n], dx[r*tk:r*tk+n]
				dot := tensor.Dot(yr, gr)
				for j, p := range yr {
					dr[j] += scale * p * (gr[j] - dot)
				}
			}
		})
	}, x)
	return out
}

// RoPETables returns the cosines and sines of rotary position embeddings
// (Su et al. 2021) for positions p0…p0+n−1 and head size dh: shape
// [n, dh/2], angle p·base^(−2i/dh) for pair i. dh must be even.
func RoPETables(p0, n, dh int, base float64) (cos, sin *tensor.Dense) {
	if dh%2 != 0 {
		shapeErr("RoPETables", "odd head size %d", dh)
	}
	h := dh / 2
	cos, sin = tensor.New(n, h), tensor.New(n, h)
	cd, sd := cos.Data(), sin.Data()
	for p := range n {
		for i := range h {
			a := float64(p0+p) * math.Pow(base, -2*float64(i)/float64(dh))
			cd[p*h+i] = float32(math.Cos(a))
			sd[p*h+i] = float32(math.Sin(a))
		}
	}
	return cos, sin
}

// RoPE rotates x [..., T, Dh] by the angles in cos and sin [T, Dh/2] (from
// RoPETables): pair (i, i+Dh/2) of position p turns by angle p·θᵢ — the
// "rotate half" layout of GPT-NeoX and LLaMA.
func (t *Tape) RoPE(x *Var, cos, sin *tensor.Dense) *Var {
	s := x.Shape()
	if len(s) < 2 || s[len(s)-1]%2 != 0 {
		shapeErr("RoPE", "need [..., T, even Dh], have %v", s)
	}
	tt, dh := s[len(s)-2], s[len(s)-1]
	h := dh / 2
	if cos.Len() != tt*h || sin.Len() != tt*h {
		shapeErr("RoPE", "tables %v, %v for %d positions of head size %d", cos.Shape(), sin.Shape(), tt, dh)
	}
	rows := 0
	if dh > 0 {
		rows = x.Value.Len() / dh
	}
	xd, cd, sd := x.Value.Data(), cos.Data(), sin.Data()
	y := t.dense(s...)
	rope(y.Data(), xd, cd, sd, rows, tt, h, 1, false)
	var out *Var
	out = t.node(y, func() {
		rope(t.grad(x).Data(), out.Grad.Data(), cd, sd, rows, tt, h, -1, true)
	}, x)
	return out
}

// rope rotates each row of src by sign·angle into dst (or adds into dst).
func rope(dst, src, cd, sd []float32, rows, tt, h int, sign float32, acc bool) {
	for r := range rows {
		p := r % tt
		rotate(dst[r*2*h:(r+1)*2*h], src[r*2*h:(r+1)*2*h], cd[p*h:(p+1)*h], sd[p*h:(p+1)*h], sign, acc)
	}
}

// rotate turns pairs (i, i+h) of one row x of 2h by sign·angle, with the
// angles' cosines c and sines s, into y (or adds into y when acc is set).
func rotate(y, x, c, s []float32, sign float32, acc bool) {
	h := len(c)
	x0, x1 := x[:h], x[h:2*h]
	y0, y1 := y[:h], y[h:2*h]
	s = s[:h]
	for i := range c {
		a := x0[i]*c[i] - sign*x1[i]*s[i]
		b := x1[i]*c[i] + sign*x0[i]*s[i]
		if acc {
			y0[i] += a
			y1[i] += b
		} else {
			y0[i], y1[i] = a, b
		}
	}
}

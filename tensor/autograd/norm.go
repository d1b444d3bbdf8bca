package autograd

import (
	"math"

	"github.com/posttrain/posttrain/tensor"
)

// normBlock is the number of rows one task of a normalization takes.
const normBlock = 128

// RMSNorm returns x/rms(x)·w over the last dimension, rms(x) =
// √(mean(x²)+eps) (Zhang & Sennrich 2019). w has shape [D] for x [..., D].
func (t *Tape) RMSNorm(x, w *Var, eps float64) *Var {
	rows, d := rowsCols(x.Value)
	if w.Value.Len() != d {
		shapeErr("RMSNorm", "weight of %d elements for rows of %d", w.Value.Len(), d)
	}
	xd, wd := x.Value.Data(), w.Value.Data()
	y := t.dense(x.Shape()...)
	yd := y.Data()
	rinv := t.buf(rows) // 1/rms per row, kept for backward
	nb := chunks(rows, normBlock)
	t.parallel(nb, func(b int) {
		for r := b * normBlock; r < min((b+1)*normBlock, rows); r++ {
			xr := xd[r*d : (r+1)*d]
			ri := float32(1 / math.Sqrt(float64(tensor.Dot(xr, xr))/float64(d)+eps))
			rinv[r] = ri
			yr := yd[r*d : (r+1)*d]
			tensor.Mul(yr, xr, wd)
			tensor.Scale(yr, ri, yr)
		}
	})
	var out *Var
	out = t.node(y, func() {
		g := out.Grad.Data()
		var dx, dwPart []float32
		if x.needs {
			dx = t.grad(x).Data()
		}
		if w.needs {
			dwPart = t.zbuf(nb * d)
		}
		t.parallel(nb, func(b int) {
			tmp := make([]float32, d)
			for r := b * normBlock; r < min((b+1)*normBlock, rows); r++ {
				xr, gr, ri := xd[r*d:(r+1)*d], g[r*d:(r+1)*d], rinv[r]
				if dwPart != nil {
					tensor.Mul(tmp, gr, xr)
					tensor.Axpy(ri, tmp, dwPart[b*d:(b+1)*d])
				}
				if dx != nil {
					// dx = r·(g∘w) − r³/D·⟨g∘w, x⟩·x
					tensor.Mul(tmp, gr, wd)
					dot := tensor.Dot(tmp, xr)
					dr := dx[r*d : (r+1)*d]
					tensor.Axpy(ri, tmp, dr)
					tensor.Axpy(-ri*ri*ri*dot/float32(d), xr, dr)
				}
			}
		})
		if dwPart != nil {
			dw := t.grad(w).Data()
			for b := range nb {
				tensor.Add(dw, dw, dwPart[b*d:(b+1)*d])
			}
		}
	}, x, w)
	return out
}

// LayerNorm returns (x−mean)/√(var+eps)·w + b over the last dimension
// (Ba et al. 2016). w and b have shape [D] for x [..., D]; b may be nil.
func (t *Tape) LayerNorm(x, w, b *Var, eps float64) *Var {
	rows, d := rowsCols(x.Value)
	if w.Value.Len() != d || (b != nil && b.Value.Len() != d) {
		shapeErr("LayerNorm", "weight or bias size differs from rows of %d", d)
	}
	xd, wd := x.Value.Data(), w.Value.Data()
	y := t.dense(x.Shape()...)
	yd := y.Data()
	xhat := t.buf(len(xd))
	sinv := t.buf(rows)
	nb := chunks(rows, normBlock)
	t.parallel(nb, func(blk int) {
		for r := blk * normBlock; r < min((blk+1)*normBlock, rows); r++ {
			xr := xd[r*d : (r+1)*d]
			var mean, vr float64
			for _, v := range xr {
				mean += float64(v)
			}
			mean /= float64(d)
			for _, v := range xr {
				vr += (float64(v) - mean) * (float64(v) - mean)
			}
			vr /= float64(d)
			si := 1 / math.Sqrt(vr+eps)
			sinv[r] = float32(si)
			hr, yr := xhat[r*d:(r+1)*d], yd[r*d:(r+1)*d]
			for i, v := range xr {
				hr[i] = float32((float64(v) - mean) * si)
			}
			tensor.Mul(yr, hr, wd)
			if b != nil {
				tensor.Add(yr, yr, b.Value.Data())
			}
		}
	})
	inputs := []*Var{x, w}
	if b != nil {
		inputs = append(inputs, b)
	}
	var out *Var
	out = t.node(y, func() {
		g := out.Grad.Data()
		var dx, dwPart, dbPart []float32
		if x.needs {
			dx = t.grad(x).Data()
		}
		if w.needs {
			dwPart = t.zbuf(nb * d)
		}
		if b != nil && b.needs {
			dbPart = t.zbuf(nb * d)
		}
		t.parallel(nb, func(blk int) {
			tmp := make([]float32, d)
			for r := blk * normBlock; r < min((blk+1)*normBlock, rows); r++ {
				hr, gr := xhat[r*d:(r+1)*d], g[r*d:(r+1)*d]
				if dwPart != nil {
					tensor.Mul(tmp, gr, hr)
					dwr := dwPart[blk*d : (blk+1)*d]
					tensor.Add(dwr, dwr, tmp)
				}
				if dbPart != nil {
					dbr := dbPart[blk*d : (blk+1)*d]
					tensor.Add(dbr, dbr, gr)
				}
				if dx != nil {
					// dx = s·(ĝ − mean(ĝ) − x̂·mean(ĝ∘x̂)), ĝ = g∘w
					tensor.Mul(tmp, gr, wd)
					var m1, m2 float64
					for i, v := range tmp {
						m1 += float64(v)
						m2 += float64(v) * float64(hr[i])
					}
					m1 /= float64(d)
					m2 /= float64(d)
					s := float64(sinv[r])
					dr := dx[r*d : (r+1)*d]
					for i, v := range tmp {
						dr[i] += float32(s * (float64(v) - m1 - float64(hr[i])*m2))
					}
				}
			}
		})
		if dwPart != nil {
			dw := t.grad(w).Data()
			for blk := range nb {
				tensor.Add(dw, dw, dwPart[blk*d:(blk+1)*d])
			}
		}
		if dbPart != nil {
			db := t.grad(b).Data()
			for blk := range nb {
				tensor.Add(db, db, dbPart[blk*d:(blk+1)*d])
			}
		}
	}, inputs...)
	return out
}

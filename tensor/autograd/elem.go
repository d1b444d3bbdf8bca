package autograd

import (
	"math"
	"slices"

	"github.com/posttrain/posttrain/tensor"
)

// Add returns a + b. b has a's shape, or is one row (shape [N], or
// [1, N]) added to every row of a whose last dimension is N — the bias
// broadcast of a linear layer.
func (t *Tape) Add(a, b *Var) *Var {
	ad, bd := a.Value.Data(), b.Value.Data()
	c := t.dense(a.Shape()...)
	cd := c.Data()
	if slices.Equal(a.Shape(), b.Shape()) {
		tensor.Add(cd, ad, bd)
		var out *Var
		out = t.node(c, func() {
			g := out.Grad.Data()
			for _, in := range [2]*Var{a, b} {
				if in.needs {
					d := t.grad(in).Data()
					tensor.Add(d, d, g)
				}
			}
		}, a, b)
		return out
	}
	rows, n := rowsCols(a.Value)
	if b.Value.Len() != n || n == 0 {
		shapeErr("Add", "cannot broadcast %v to %v", b.Shape(), a.Shape())
	}
	for r := range rows {
		tensor.Add(cd[r*n:(r+1)*n], ad[r*n:(r+1)*n], bd)
	}
	var out *Var
	out = t.node(c, func() {
		g := out.Grad.Data()
		if a.needs {
			d := t.grad(a).Data()
			tensor.Add(d, d, g)
		}
		if b.needs {
			d := t.grad(b).Data()
			for r := range rows {
				tensor.Add(d, d, g[r*n:(r+1)*n])
			}
		}
	}, a, b)
	return out
}

// Mul returns the elementwise product of a and b, which share a shape.
func (t *Tape) Mul(a, b *Var) *Var {
	if !slices.Equal(a.Shape(), b.Shape()) {
		shapeErr("Mul", "shapes differ: %v and %v", a.Shape(), b.Shape())
	}
	ad, bd := a.Value.Data(), b.Value.Data()
	c := t.dense(a.Shape()...)
	tensor.Mul(c.Data(), ad, bd)
	var out *Var
	out = t.node(c, func() {
		g := out.Grad.Data()
		tmp := t.buf(len(g))
		if a.needs {
			d := t.grad(a).Data()
			tensor.Mul(tmp, g, bd)
			tensor.Add(d, d, tmp)
		}
		if b.needs {
			d := t.grad(b).Data()
			tensor.Mul(tmp, g, ad)
			tensor.Add(d, d, tmp)
		}
	}, a, b)
	return out
}

// Scale returns s·a.
func (t *Tape) Scale(a *Var, s float32) *Var {
	c := t.dense(a.Shape()...)
	tensor.Scale(c.Data(), s, a.Value.Data())
	var out *Var
	out = t.node(c, func() {
		tensor.Axpy(s, out.Grad.Data(), t.grad(a).Data())
	}, a)
	return out
}

// elemBlock is the number of elements one task of an elementwise op takes.
const elemBlock = 1 << 14

// sigmoidTo writes σ(x) to dst through the vector exp: σ(x) = 1/(1+e^−x),
// which is 0 where e^−x overflows to +Inf.
func sigmoidTo(dst, x []float32) {
	tensor.Scale(dst, -1, x)
	tensor.Exp(dst, dst)
	for i, e := range dst {
		dst[i] = 1 / (1 + e)
	}
}

// SiLU returns x·σ(x) elementwise (the swish of Ramachandran et al. 2017).
func (t *Tape) SiLU(a *Var) *Var {
	ad := a.Value.Data()
	c := t.dense(a.Shape()...)
	cd := c.Data()
	sig := t.buf(len(ad)) // σ(x), kept for backward
	nb := chunks(len(ad), elemBlock)
	t.parallel(nb, func(b int) {
		lo, hi := b*elemBlock, min((b+1)*elemBlock, len(ad))
		sigmoidTo(sig[lo:hi], ad[lo:hi])
		tensor.Mul(cd[lo:hi], ad[lo:hi], sig[lo:hi])
	})
	var out *Var
	out = t.node(c, func() {
		g, d := out.Grad.Data(), t.grad(a).Data()
		t.parallel(nb, func(b int) {
			for i := b * elemBlock; i < min((b+1)*elemBlock, len(ad)); i++ {
				s, x := sig[i], ad[i]
				d[i] += g[i] * s * (1 + x*(1-s))
			}
		})
	}, a)
	return out
}

// SwiGLU returns SiLU(gate)·up elementwise, the gated unit of Shazeer
// (2020), in one pass: the MLP of LLaMA-style blocks.
func (t *Tape) SwiGLU(gate, up *Var) *Var {
	if !slices.Equal(gate.Shape(), up.Shape()) {
		shapeErr("SwiGLU", "shapes differ: %v and %v", gate.Shape(), up.Shape())
	}
	gd, ud := gate.Value.Data(), up.Value.Data()
	c := t.dense(gate.Shape()...)
	cd := c.Data()
	sig := t.buf(len(gd))
	nb := chunks(len(gd), elemBlock)
	t.parallel(nb, func(b int) {
		lo, hi := b*elemBlock, min((b+1)*elemBlock, len(gd))
		sigmoidTo(sig[lo:hi], gd[lo:hi])
		tensor.Mul(cd[lo:hi], gd[lo:hi], sig[lo:hi])
		tensor.Mul(cd[lo:hi], cd[lo:hi], ud[lo:hi])
	})
	var out *Var
	out = t.node(c, func() {
		g := out.Grad.Data()
		var dg, du []float32
		if gate.needs {
			dg = t.grad(gate).Data()
		}
		if up.needs {
			du = t.grad(up).Data()
		}
		t.parallel(nb, func(b int) {
			for i := b * elemBlock; i < min((b+1)*elemBlock, len(gd)); i++ {
				s, x := sig[i], gd[i]
				if du != nil {
					du[i] += g[i] * x * s
				}
				if dg != nil {
					dg[i] += g[i] * ud[i] * s * (1 + x*(1-s))
				}
			}
		})
	}, gate, up)
	return out
}

// GELU returns x·Φ(x) elementwise, with Φ the standard normal CDF (the
// exact form, not the tanh approximation; Hendrycks & Gimpel 2016).
func (t *Tape) GELU(a *Var) *Var {
	ad := a.Value.Data()
	c := t.dense(a.Shape()...)
	cd := c.Data()
	for i, x := range ad {
		v := float64(x)
		cd[i] = float32(0.5 * v * (1 + math.Erf(v/math.Sqrt2)))
	}
	var out *Var
	out = t.node(c, func() {
		g, d := out.Grad.Data(), t.grad(a).Data()
		const invSqrt2Pi = 0.3989422804014327
		for i, x := range ad {
			v := float64(x)
			dv := 0.5*(1+math.Erf(v/math.Sqrt2)) + v*invSqrt2Pi*math.Exp(-0.5*v*v)
			d[i] += g[i] * float32(dv)
		}
	}, a)
	return out
}

// Sum returns the sum of all elements as a one-element Var (accumulated
// in float64).
func (t *Tape) Sum(a *Var) *Var { return t.sum(a, 1) }

// Mean returns the mean of all elements as a one-element Var.
func (t *Tape) Mean(a *Var) *Var {
	return t.sum(a, 1/float64(max(1, a.Value.Len())))
}

func (t *Tape) sum(a *Var, scale float64) *Var {
	var s float64
	for _, x := range a.Value.Data() {
		s += float64(x)
	}
	c := t.dense()
	c.Data()[0] = float32(s * scale)
	var out *Var
	out = t.node(c, func() {
		g := out.Grad.Data()[0] * float32(scale)
		d := t.grad(a).Data()
		for i := range d {
			d[i] += g
		}
	}, a)
	return out
}

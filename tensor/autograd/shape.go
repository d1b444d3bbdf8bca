package autograd

import (
	"slices"

	"github.com/posttrain/posttrain/tensor"
)

// Reshape returns a view of a with a new shape (one dimension may be −1).
// It copies nothing, forward or backward: the view shares a's value and
// gradient buffers.
func (t *Tape) Reshape(a *Var, shape ...int) *Var {
	v := a.Value.Reshape(shape...)
	out := t.node(v, nil, a)
	if out.needs {
		out.view = a
	}
	return out
}

// Transpose returns a with dimensions i and j swapped, e.g. Transpose(x,
// 1, 2) turns [B,T,H,Dh] into [B,H,T,Dh] to split attention heads.
func (t *Tape) Transpose(a *Var, i, j int) *Var {
	nd := a.Value.Dims()
	if i < 0 || j < 0 || i >= nd || j >= nd {
		shapeErr("Transpose", "axes %d, %d out of range for shape %v", i, j, a.Shape())
	}
	perm := make([]int, nd)
	for k := range perm {
		perm[k] = k
	}
	perm[i], perm[j] = j, i
	return t.Permute(a, perm...)
}

// Permute returns a with its dimensions reordered: output dimension k is
// input dimension perm[k].
func (t *Tape) Permute(a *Var, perm ...int) *Var {
	in := a.Shape()
	nd := len(in)
	if len(perm) != nd {
		shapeErr("Permute", "permutation %v for shape %v", perm, in)
	}
	seen := make([]bool, nd)
	for _, p := range perm {
		if p < 0 || p >= nd || seen[p] {
			shapeErr("Permute", "%v is not a permutation of %d axes", perm, nd)
		}
		seen[p] = true
	}
	perm = slices.Clone(perm)
	oshape := make([]int, nd)
	for k, p := range perm {
		oshape[k] = in[p]
	}
	c := t.dense(oshape...)
	permute(c.Data(), a.Value.Data(), in, perm, false)
	var out *Var
	out = t.node(c, func() {
		inv := make([]int, nd)
		for k, p := range perm {
			inv[p] = k
		}
		permute(t.grad(a).Data(), out.Grad.Data(), oshape, inv, true)
	}, a)
	return out
}

// permute writes src (of shape) with axes reordered by perm into dst, or
// adds it into dst when acc is set. Runs along an untouched last axis are
// moved with whole-slice kernels.
func permute(dst, src []float32, shape, perm []int, acc bool) {
	nd := len(shape)
	if len(src) == 0 {
		return
	}
	if nd == 0 {
		if acc {
			dst[0] += src[0]
		} else {
			dst[0] = src[0]
		}
		return
	}
	stride := make([]int, nd)
	s := 1
	for k := nd - 1; k >= 0; k-- {
		stride[k] = s
		s *= shape[k]
	}
	oshape := make([]int, nd)
	ostride := make([]int, nd) // input stride of each output axis
	for k, p := range perm {
		oshape[k] = shape[p]
		ostride[k] = stride[p]
	}
	run, outer := 1, nd
	if perm[nd-1] == nd-1 {
		run, outer = oshape[nd-1], nd-1
	}
	idx := make([]int, outer)
	off := 0
	for o := 0; o < len(dst); o += run {
		if run > 1 {
			d, x := dst[o:o+run], src[off:off+run]
			if acc {
				tensor.Add(d, d, x)
			} else {
				copy(d, x)
			}
		} else if acc {
			dst[o] += src[off]
		} else {
			dst[o] = src[off]
		}
		for k := outer - 1; k >= 0; k-- {
			idx[k]++
			off += ostride[k]
			if idx[k] < oshape[k] {
				break
			}
			off -= idx[k] * ostride[k]
			idx[k] = 0
		}
	}
}

package autograd

import "github.com/posttrain/posttrain/tensor"

// MatMulTBF16 returns a·wᵀ for a [M,K] and bfloat16 weights w [N,K]: the
// product of a frozen layer held in bfloat16 (a LoRA base, a reference
// model), whose gradient flows to a only, dA = g·w. Both products widen w
// to float32 while packing it and keep a and g exact
// (tensor.GemmWiden), so the result is the float32 product with the
// weights' values; on a tier that multiplies bfloat16 itself (SetTier
// "avx512bf16" or "amx") they round a and g to bfloat16 instead
// (tensor.GemmMixed), as mixed-precision training does, for that tier's
// speed.
func (t *Tape) MatMulTBF16(a *Var, w *tensor.BF16) *Var {
	av := a.Value
	if av.Dims() != 2 || w.Dims() != 2 {
		shapeErr("MatMulTBF16", "need 2-D operands, have %v and %v", av.Shape(), w.Shape())
	}
	if av.Dim(1) != w.Dim(1) {
		shapeErr("MatMulTBF16", "inner dimensions differ: %v · %vᵀ", av.Shape(), w.Shape())
	}
	gemm := tensor.GemmWiden
	if tier := tensor.Tier(); tier == "avx512bf16" || tier == "amx" {
		gemm = tensor.GemmMixed
	}
	c := t.dense(av.Dim(0), w.Dim(0))
	t.rowBlocks(av, c, func(x, y *tensor.Dense) { gemm(false, true, 1, x, w, 0, y) })
	var out *Var
	out = t.node(c, func() {
		t.rowBlocks(out.Grad, t.grad(a), func(g, da *tensor.Dense) { gemm(false, false, 1, g, w, 1, da) })
	}, a)
	return out
}

package autograd

import "github.com/posttrain/posttrain/tensor"

// SetRequiresGrad turns gradients on or off for a leaf (a Param or a
// Const). Turned off, the leaf is frozen: it keeps no gradient buffer
// (releasing the memory, as for a frozen base model under LoRA), the ops
// that read it skip its backward product, and an op whose inputs are all
// frozen records nothing. Turned on, it gets a zeroed gradient. Calling
// it on an op's output is a programmer error and panics.
func (v *Var) SetRequiresGrad(on bool) {
	if v.back != nil || v.tape != nil {
		panic("autograd: SetRequiresGrad on an op's output; only leaves can be frozen")
	}
	if on == v.needs {
		return
	}
	v.needs = on
	if on {
		v.Grad = tensor.New(v.Value.Shape()...)
	} else {
		v.Grad = nil
	}
}

package mirrordescent

import (
	"fmt"
	"math"

	"github.com/posttrain/posttrain/tensor"
)

// The float32 variants below serve vocabulary-sized action spaces (a
// next-token distribution over 32k–256k tokens): one validation pass, then
// the tensor package's Log / Softmax / LogSoftmax kernels, allocation-free
// except ProjectSimplex32's sort buffer. Scalar reductions still run in
// float64.

// EntropicStep32 is EntropicStep on float32 slices, with the same
// validation, errors and log-space guarantee; η stays float64. Work: a
// scalar pass to validate, then tensor.Log, tensor.Axpy (x ← log x − η·g)
// and tensor.Softmax. When η·max|g| exceeds 64, adding η·g in float32
// would cost precision (a common offset of 1e6 in g leaves 0.06 of
// resolution), so the middle step runs in float64 on
// l_i = log x_i − η·(g_i − g_min) instead.
func EntropicStep32(x, grad []float32, eta float64) error {
	if len(x) != len(grad) {
		return fmt.Errorf("mirrordescent: EntropicStep32: len(x) = %d but len(grad) = %d", len(x), len(grad))
	}
	if math.IsNaN(eta) || math.IsInf(eta, 0) || eta < 0 {
		return fmt.Errorf("mirrordescent: EntropicStep32: step size η = %v, need finite and ≥ 0", eta)
	}
	if len(x) == 0 {
		return fmt.Errorf("mirrordescent: EntropicStep32: empty x")
	}
	var sum, gabs float64
	gmin := math.Inf(1)
	for i, xi := range x {
		v := float64(xi)
		if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			return fmt.Errorf("mirrordescent: EntropicStep32: x[%d] = %v, need finite and ≥ 0", i, xi)
		}
		g := float64(grad[i])
		if math.IsNaN(g) || math.IsInf(g, 0) {
			return fmt.Errorf("mirrordescent: EntropicStep32: grad[%d] = %v", i, grad[i])
		}
		sum += v
		gabs = max(gabs, math.Abs(g))
		if v > 0 && g < gmin {
			gmin = g
		}
	}
	if sum <= 0 {
		return fmt.Errorf("mirrordescent: EntropicStep32: x sums to %v, need a positive sum", sum)
	}
	tensor.Log(x, x) // zeros become −Inf and stay there
	if eta*gabs <= fastSpan {
		// |η·g| is small: adding it in float32 costs at most
		// fastSpan·2⁻²⁴ ≈ 4e-6 in log space, float32's own resolution.
		tensor.Axpy(float32(-eta), grad, x)
	} else {
		for i, g := range grad {
			x[i] = float32(float64(x[i]) - eta*(float64(g)-gmin))
		}
	}
	tensor.Softmax(x, x)
	return nil
}

// fastSpan bounds η·max|g| for EntropicStep32's all-kernel path.
const fastSpan = 64

// ProjectSimplex32 is ProjectSimplex on a float32 slice, in place, for
// input known to be finite (NaN or ±Inf anywhere makes every entry NaN);
// the threshold's partial sums run in float64. ProjectSimplex32To reports
// bad input instead.
func ProjectSimplex32(x []float32) { projectInPlace(x) }

// ProjectSimplex32To is ProjectSimplexTo on float32 slices: it writes the
// projection of x to dst (which may be x) or returns an error naming the
// input, leaving dst untouched.
func ProjectSimplex32To(dst, x []float32) error { return projectTo("ProjectSimplex32To", dst, x) }

// TabularMDPO32 is TabularMDPO on float32 log-probs, over a vocabulary:
// logp ← LogSoftmax(logp + t·A) with tensor.Axpy and tensor.LogSoftmax.
func TabularMDPO32(logp, adv []float32, t float64) error {
	if err := checkTabular32(logp, adv, t); err != nil {
		return err
	}
	tensor.Axpy(float32(t), adv, logp)
	tensor.LogSoftmax(logp, logp)
	return nil
}

func checkTabular32(logp, adv []float32, t float64) error {
	const op = "TabularMDPO32"
	if len(logp) != len(adv) {
		return fmt.Errorf("mirrordescent: %s: len(logp) = %d but len(adv) = %d", op, len(logp), len(adv))
	}
	if math.IsNaN(t) || math.IsInf(t, 0) || t < 0 {
		return fmt.Errorf("mirrordescent: %s: step size t = %v, need finite and ≥ 0", op, t)
	}
	if len(logp) == 0 {
		return fmt.Errorf("mirrordescent: %s: empty logp", op)
	}
	support := false
	for i, l := range logp {
		if l != l || l > math.MaxFloat32 {
			return fmt.Errorf("mirrordescent: %s: logp[%d] = %v", op, i, l)
		}
		support = support || l > -math.MaxFloat32
		a := float64(adv[i])
		if math.IsNaN(a) || math.IsInf(a, 0) {
			return fmt.Errorf("mirrordescent: %s: adv[%d] = %v", op, i, adv[i])
		}
		// The update adds t·A in float32: refuse what would overflow.
		if math.Abs(t*a) > math.MaxFloat32/4 {
			return fmt.Errorf("mirrordescent: %s: t·adv[%d] = %v overflows float32", op, i, t*a)
		}
	}
	if !support {
		return fmt.Errorf("mirrordescent: %s: every logp is −Inf", op)
	}
	return nil
}

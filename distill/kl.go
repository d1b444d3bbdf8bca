package distill

import (
	"fmt"
	"math"

	"github.com/posttrain/posttrain/tensor"
)

// SoftTarget returns Hinton et al.'s distillation loss
//
//	T²·mean_i KL(softmax(teacher_i/T) ‖ softmax(student_i/T))
//
// and, when grad is not nil, its gradient with respect to the student
// logits, T·(p_S − p_T)/N per row. The T² keeps the gradient's scale
// independent of T, so the soft term can be mixed with a hard-label
// cross-entropy at a fixed weight (see CrossEntropy). grad may be student
// itself, but may not otherwise overlap the student's memory (shifted by a
// row, say), nor overlap the teacher's at all.
//
// Above T = 8 the loss and gradient are computed per row in float64 from
// the logits' differences (see hotTemperature), so they stay accurate to
// about 1e-7 relative at any T up to MaxTemperature (1e8); the float32
// log-softmax route loses everything to cancellation there (T = 1e4 gave
// a negative KL).
//
// It returns an error, leaving grad untouched, if the shapes differ, the
// temperature is not in (0, MaxTemperature], grad overlaps an input other
// than as allowed above, or either input holds NaN or ±Inf. A batch with
// no rows has loss 0. If a temperature so small that
// logits/T overflows float32 (|logit|/T > 3.4e38) makes the loss
// non-finite, that too is an error, but grad has then been written.
func SoftTarget(grad, student, teacher *tensor.Dense, temperature float64) (float64, error) {
	return divergence("SoftTarget", grad, student, teacher, 0, temperature, temperature*temperature, false)
}

// ForwardKL returns mean_i KL(p_T ‖ p_S), with p_S = softmax(student_i/T)
// and p_T = softmax(teacher_i/T), and its gradient (p_S − p_T)/(T·N) per
// row: the mode-covering divergence of classic distillation, without
// SoftTarget's T² factor. It equals GeneralizedJSD with β = 0, and is
// computed in float64 above T = 8 as SoftTarget is. Errors as for
// SoftTarget.
func ForwardKL(grad, student, teacher *tensor.Dense, temperature float64) (float64, error) {
	return divergence("ForwardKL", grad, student, teacher, 0, temperature, 1, false)
}

// ReverseKL returns mean_i KL(p_S ‖ p_T), the mode-seeking divergence, and
// its gradient p_S⊙(log p_S − log p_T − KL_i)/(T·N) per row. It equals
// GeneralizedJSD with β = 1. Above T = 8 it is computed in float64 as
// SoftTarget is. Errors as for SoftTarget.
func ReverseKL(grad, student, teacher *tensor.Dense, temperature float64) (float64, error) {
	return divergence("ReverseKL", grad, student, teacher, 1, temperature, 1, false)
}

// GeneralizedJSD returns the generalized Jensen–Shannon divergence of GKD
// (Agarwal et al. 2023) as TRL's generalized_jsd_loss computes it with
// batchmean reduction on [B, L, V] logits (our N = B·L rows, so the mean
// is over tokens; TRL's labels mask is not offered): with logits divided
// by T and M = β·p_T + (1−β)·p_S (formed in log space),
//
//	JSD_β = β·KL(p_T ‖ M) + (1−β)·KL(p_S ‖ M),
//
// averaged over rows, with no T² factor. The endpoints are defined as TRL
// defines them: β = 0 is KL(p_T ‖ p_S) (ForwardKL) and β = 1 is
// KL(p_S ‖ p_T) (ReverseKL). Note that this makes the loss discontinuous
// there: JSD_β itself tends to 0 as β → 0 or 1.
//
// When grad is not nil it receives the gradient with respect to the
// student logits; for 0 < β < 1 that is
// (1−β)·p_S⊙(log p_S − log M − KL(p_S ‖ M))/(T·N) per row. Above T = 8
// it is computed in float64 as SoftTarget is. Errors as for SoftTarget,
// and for β outside [0, 1].
//
// The order is β, then T, and fixed (it is a contract signature): both
// are float64, so a swap compiles. A swapped call usually fails loudly —
// a temperature above 1 is not a β in [0, 1] — but not when both are in
// (0, 1]. Where the values are not literals beside their names, prefer
// GKD{Beta: β, Temperature: T}.Loss, which names them (and masks rows by
// label).
func GeneralizedJSD(grad, student, teacher *tensor.Dense, beta, temperature float64) (float64, error) {
	if err := checkUnit("GeneralizedJSD", "beta", beta); err != nil {
		return 0, err
	}
	return divergence("GeneralizedJSD", grad, student, teacher, beta, temperature, 1, false)
}

// divergence computes every divergence here; finite says the logits are
// known to be finite (fused chunks, bounded before they were formed),
// sparing their check.
func divergence(op string, grad, student, teacher *tensor.Dense, beta, temp, factor float64, finite bool) (float64, error) {
	n, v, err := dims(op, "student", student)
	if err != nil {
		return 0, err
	}
	if err := checkSame(op, "teacher", teacher, n, v); err != nil {
		return 0, err
	}
	if err := checkGrad(op, grad, n, v); err != nil {
		return 0, err
	}
	if err := checkTemperature(op, temp); err != nil {
		return 0, err
	}
	if err := checkOverlap(op, grad, "student", student, "teacher", teacher); err != nil {
		return 0, err
	}
	if !finite {
		if err := checkFinite(op, "student", student, "teacher", teacher); err != nil {
			return 0, err
		}
	}
	if n == 0 {
		return 0, nil
	}
	j := divJobs.get()
	defer divJobs.put(j)
	*j = divJob{grad: grad, s: student, t: teacher, beta: beta, invT: float32(1 / temp),
		gscale: float32(factor / (temp * float64(n))), n: n, v: v, rows: chunkRows(v), parts: j.parts,
		temp: temp, g64: factor / temp / float64(n), hot: temp > hotTemperature}
	nc := (n + j.rows - 1) / j.rows
	j.parts.reset(nc)
	run(j, nc)
	sum, _ := j.parts.total()
	j.grad, j.s, j.t = nil, nil, nil
	if math.IsNaN(sum) || math.IsInf(sum, 0) {
		// Finite logits divided by a tiny temperature can overflow float32;
		// that is the one failure found only after grad was written.
		return 0, fmt.Errorf("distill: %s: logits / temperature %v overflow float32", op, temp)
	}
	return factor * sum / float64(n), nil
}

type divJob struct {
	grad, s, t *tensor.Dense
	beta       float64
	invT       float32
	gscale     float32 // factor/(T·N)
	n, v, rows int
	parts      parts
	temp       float64
	g64        float64 // factor/(T·N) in float64, for the hot path
	hot        bool    // above hotTemperature: the float64 path
}

var divJobs = newFreeList[divJob]()

// logTiny is log(tinyProb).
var logTiny = math.Log(tinyProb)

// divBlock is the length of the blocks a row is swept in: the block's
// slices of the row buffers and its temporaries (eight of them, 32 KB)
// stay in L1 across the several kernels that read them in turn.
const divBlock = 1024

func (j *divJob) chunk(c int, sc *scratch) {
	lo, hi := c*j.rows, min((c+1)*j.rows, j.n)
	v := j.v
	sd, td := j.s.Data(), j.t.Data()
	var gd []float32
	if j.grad != nil {
		gd = j.grad.Data()
	}
	var sum float64
	for i := lo; i < hi; i++ {
		var g []float32
		if gd != nil {
			g = gd[i*v : (i+1)*v]
		}
		if j.hot {
			sum += j.klHot(g, sd[i*v:(i+1)*v], td[i*v:(i+1)*v], buf(&sc.a, v), buf64(&sc.f, v), buf64(&sc.h, v))
			continue
		}
		sum += j.row(g, sd[i*v:(i+1)*v], td[i*v:(i+1)*v], sc)
	}
	j.parts.sum[c] = sum
}

// row returns one row's divergence and writes its gradient, times gscale,
// to g (if not nil; g may be srow itself, which is read first).
//
// Every divergence here is a function of the two log-softmaxes, and the
// row is written as such in three transcendental passes, where forming
// log p_S and log p_T and then their exponentials (and log M) took five
// and a dozen more passes over the whole row. Each side is shifted by its
// maximum, a' = s/T − max, and exponentiated once, P = e^(a'), with
// S = Σ P, so p_S = P/S and log p_S = a' − log S, the log-sum-exp in
// float64: the shifted logits are exact differences of float32s, as in
// tensor.LogSoftmax, so the log-probabilities stay accurate for logits
// of any magnitude. With β's mixture written M = (1−β)/S_S · M̃,
// M̃ = P + r·Q, r = β·S_S/((1−β)·S_T), so that the logarithm is taken of
// one vector only,
//
//	log p_S − log M = a' − log M̃ − log(1−β),
//	log p_T − log M = b' − log M̃ − log(1−β) + log S_S − log S_T,
//
// and every KL below is a dot product with P or Q plus a constant. The
// row is swept in divBlock blocks, so that the temporaries stay in L1: a
// first sweep per side for P (and S), a second for the sums, a third for
// the gradient, which needs the row's KL. Where M̃ falls below tinyProb
// its float32 log has lost precision (or is log 0): those entries are
// recomputed in float64 in log space.
func (j *divJob) row(g, srow, trow []float32, sc *scratch) float64 {
	v := len(srow)
	a, b, p, q := buf(&sc.a, v), buf(&sc.b, v), buf(&sc.c, v), buf(&sc.d, v)
	tmp := buf(&sc.e, 2*divBlock)
	m, cst := tmp[:divBlock], tmp[divBlock:]
	ss := j.expShift(a, p, srow, cst)
	st := j.expShift(b, q, trow, cst)
	ls, lt := math.Log(ss), math.Log(st)
	beta := j.beta
	var kl, c float64 // the row's divergence; the gradient's constant
	switch beta {
	case 0: // KL(p_T ‖ p_S) = Σ q·(b' − a') + log S_S − log S_T
		var d float64
		for k := 0; k < v; k += divBlock {
			e := min(k+divBlock, v)
			mb := m[:e-k]
			tensor.Sub(mb, b[k:e], a[k:e])
			d += float64(tensor.Dot(q[k:e], mb))
		}
		kl = d/st + ls - lt
	case 1: // KL(p_S ‖ p_T) = Σ p·(a' − b') + log S_T − log S_S
		var d float64
		for k := 0; k < v; k += divBlock {
			e := min(k+divBlock, v)
			tensor.Sub(a[k:e], a[k:e], b[k:e]) // kept for the gradient
			d += float64(tensor.Dot(p[k:e], a[k:e]))
		}
		c = d / ss
		kl = c + lt - ls
	default:
		r := beta * ss / ((1 - beta) * st)
		lr := math.Log(r)
		var ds, dt float64
		for k := 0; k < v; k += divBlock {
			e := min(k+divBlock, v)
			mb := m[:e-k]
			// −M̃ first, so that Max finds its smallest entry.
			tensor.Scale(mb, float32(-r), q[k:e])
			tensor.Sub(mb, mb, p[k:e])
			tiny := -tensor.Max(mb) < tinyProb
			tensor.Scale(mb, -1, mb)
			tensor.Log(mb, mb) // log M̃
			if tiny {
				for x, w := range mb {
					if float64(w) < logTiny || w != w {
						mb[x] = float32(logAddExp(float64(a[k+x]), lr+float64(b[k+x])))
					}
				}
			}
			tensor.Sub(a[k:e], a[k:e], mb) // a' − log M̃, kept for the gradient
			ds += float64(tensor.Dot(p[k:e], a[k:e]))
			tensor.Sub(mb, b[k:e], mb)
			dt += float64(tensor.Dot(q[k:e], mb))
		}
		l1b := math.Log1p(-beta)
		c = ds / ss
		klS := c - l1b
		klT := dt/st - l1b + ls - lt
		kl = beta*klT + (1-beta)*klS
	}
	if g == nil {
		return kl
	}
	if beta == 0 { // gradient p_S − p_T
		gs := float64(j.gscale)
		for k := 0; k < v; k += divBlock {
			e := min(k+divBlock, v)
			tensor.Scale(g[k:e], float32(gs/ss), p[k:e])
			tensor.Axpy(float32(-gs/st), q[k:e], g[k:e])
		}
		return kl
	}
	// p_S⊙(log p_S − log p_T − KL) for β = 1 and
	// (1−β)·p_S⊙(log p_S − log M − KL(p_S ‖ M)) otherwise: both are
	// P⊙(a − c)/S_S with a as the sums left it.
	w := float32(float64(j.gscale) * (1 - beta) / ss)
	if beta == 1 {
		w = float32(float64(j.gscale) / ss)
	}
	for k := 0; k < v; k += divBlock {
		e := min(k+divBlock, v)
		tensor.Mul(g[k:e], p[k:e], a[k:e])
		tensor.Axpy(float32(-c), p[k:e], g[k:e])
		tensor.Scale(g[k:e], w, g[k:e])
	}
	return kl
}

// expShift writes a = x/T − max(x/T) and p = e^a, block by block, and
// returns Σ p (at least 1: the maximum contributes e⁰). cst is scratch of
// divBlock entries.
func (j *divJob) expShift(a, p, x, cst []float32) float64 {
	mx := tensor.Max(x)
	if j.invT != 1 {
		// Rounding is monotone, so the maximum of the scaled row is the
		// scaled maximum.
		mx *= j.invT
	}
	for k := range cst {
		cst[k] = mx
	}
	var s float64
	for k := 0; k < len(x); k += divBlock {
		e := min(k+divBlock, len(x))
		ab := a[k:e]
		if j.invT != 1 {
			tensor.Scale(ab, j.invT, x[k:e])
			tensor.Sub(ab, ab, cst[:e-k])
		} else {
			tensor.Sub(ab, x[k:e], cst[:e-k])
		}
		tensor.Exp(p[k:e], ab)
		s += float64(tensor.Sum(p[k:e]))
	}
	return s
}

func logAddExp(x, y float64) float64 {
	if x < y {
		x, y = y, x
	}
	return x + math.Log1p(math.Exp(y-x))
}

// hotTemperature is the temperature above which every divergence here
// (SoftTarget, ForwardKL, ReverseKL, GeneralizedJSD) is computed per row
// in float64 by klHot. At temperature T the two distributions differ by O(1/T) and their
// KL is O(1/T²), while float32 log-probs carry absolute errors of about
// 1e-7·log V: the float32 path's relative error grows like T² (4% at
// T = 1e3 in SoftTarget, a negative KL at 1e4). At T ≤ 8 it stays below
// 2e-5 (measured against the mpmath reference in testdata/gen_hot.py).
const hotTemperature = 8

// MaxTemperature bounds the temperature of every divergence here. The
// float64 path's relative error is about 1e-7 (float32 softmax weights)
// plus 1e-16·T (the rounding of sums of O(1/T) terms against a KL of
// O(1/T²)); above this bound the answer is not reliably representable and
// the call is an error.
const MaxTemperature = 1e8

// klHot returns KL(p_T ‖ p_S) (β = 0) or KL(p_S ‖ p_T) (β = 1) for one row
// at a high temperature, in float64, and writes its gradient, times g64,
// to g (if not nil). With d_k = (t_k − s_k)/T, c = Σ p_S,k d_k,
// e_k = expm1(d_k − c) and A = Σ p_S,k e_k, the teacher is
// p_T,k = p_S,k (1 + e_k)/(1 + A), so
//
//	KL(p_T ‖ p_S) = Σ_k p_T,k (d_k − c) − log1p(A),   gradient p_S (A − e_k)/(1 + A),
//	KL(p_S ‖ p_T) = log1p(A) − Σ_k p_S,k (d_k − c),   gradient p_S (log1p(A) − KL − (d_k − c)),
//
// which never subtracts two nearly equal log-probabilities. p_S itself is
// only a weight here, so it comes from the float32 softmax kernel (its
// relative error of 1e-7 carries over to the KL as such); the differences
// d_k − c and e_k, where the cancellation was, are float64. p32, ps and d
// are scratch rows.
func (j *divJob) klHot(g, srow, trow, p32 []float32, ps, d []float64) float64 {
	t := j.temp
	tensor.Scale(p32, j.invT, srow)
	tensor.Softmax(p32, p32)
	var z float64
	for _, p := range p32 {
		z += float64(p)
	}
	var c float64
	iz, it := 1/z, 1/t
	for k, p := range p32 {
		ps[k] = float64(p) * iz // renormalized in float64: Σ p_S = 1 to rounding
		d[k] = (float64(trow[k]) - float64(srow[k])) * it
		c += ps[k] * d[k]
	}
	dmax := math.Inf(-1)
	for k := range d {
		d[k] -= c
		dmax = max(dmax, d[k])
	}
	if dmax > 700 {
		// expm1 would overflow: the distributions are far apart and
		// log-space differences lose nothing; use them.
		return j.klFar(g, srow, trow, ps, d)
	}
	var a, r, kl float64
	for k, dk := range d {
		e := math.Expm1(dk)
		a += ps[k] * e
		r += ps[k] * dk
		kl += ps[k] * (1 + e) * dk
		if j.beta != 1 {
			d[k] = e // the forward and mixed gradients need e_k, not d_k − c
		}
	}
	l1a := math.Log1p(a)
	if j.beta != 0 && j.beta != 1 {
		return j.jsdHot(g, ps, d, a)
	}
	if j.beta == 1 {
		kl = l1a - r
		if g != nil {
			for k := range g {
				g[k] = float32(j.g64 * ps[k] * (l1a - kl - d[k]))
			}
		}
		return kl
	}
	kl = kl/(1+a) - l1a
	if g != nil {
		for k := range g {
			g[k] = float32(j.g64 * ps[k] * (a - d[k]) / (1 + a))
		}
	}
	return kl
}

// jsdHot finishes klHot for 0 < β < 1, given p_S, e and A. With
// u_k = p_T,k/p_S,k − 1 = (e_k − A)/(1 + A), the mixture is
// M = p_S (1 + βu), so
//
//	KL(p_T ‖ M) = Σ p_S (1+u)(log1p(u) − log1p(βu)),   KL(p_S ‖ M) = −Σ p_S log1p(βu),
//
// and the gradient is (1−β)·p_S (−log1p(βu) − KL(p_S ‖ M)). e is
// overwritten.
func (j *divJob) jsdHot(g []float32, ps, e []float64, a float64) float64 {
	beta := j.beta
	var klT, klS float64
	for k, ek := range e {
		u := (ek - a) / (1 + a)
		lb := math.Log1p(beta * u)
		klT += ps[k] * (1 + u) * (math.Log1p(u) - lb)
		klS -= ps[k] * lb
		e[k] = lb
	}
	if g != nil {
		for k := range g {
			g[k] = float32((1 - beta) * j.g64 * ps[k] * (-e[k] - klS))
		}
	}
	return beta*klT + (1-beta)*klS
}

// klFar is klHot's fallback for rows whose distributions are far apart:
// log-softmax of both in float64, for every β. ps holds p_S; lt is
// scratch. The student row is read before g is written (g may be it).
func (j *divJob) klFar(g, srow, trow []float32, ps, lt []float64) float64 {
	t := j.temp
	lse := func(row []float32) float64 {
		mx := math.Inf(-1)
		for _, x := range row {
			mx = max(mx, float64(x)/t)
		}
		var z float64
		for _, x := range row {
			z += math.Exp(float64(x)/t - mx)
		}
		return mx + math.Log(z)
	}
	ls, lt0 := lse(srow), lse(trow)
	beta := j.beta
	lb, l1b := math.Log(beta), math.Log1p(-beta)
	var kl, klT, klS float64
	for k := range trow {
		ltk := float64(trow[k])/t - lt0
		lsk := float64(srow[k])/t - ls
		pt := math.Exp(ltk)
		switch beta {
		case 0:
			if pt > 0 {
				kl += pt * (ltk - lsk)
			}
			if g != nil {
				g[k] = float32(j.g64 * (ps[k] - pt))
			}
		case 1:
			if ps[k] > 0 {
				kl += ps[k] * (lsk - ltk)
			}
			lt[k] = lsk - ltk
		default:
			lm := logAddExp(lb+ltk, l1b+lsk)
			if pt > 0 {
				klT += pt * (ltk - lm)
			}
			if ps[k] > 0 {
				klS += ps[k] * (lsk - lm)
			}
			lt[k] = lsk - lm
		}
	}
	switch {
	case beta == 0:
		return kl
	case beta == 1:
		if g != nil {
			for k := range g {
				g[k] = float32(j.g64 * ps[k] * (lt[k] - kl))
			}
		}
		return kl
	}
	if g != nil {
		for k := range g {
			g[k] = float32((1 - beta) * j.g64 * ps[k] * (lt[k] - klS))
		}
	}
	return beta*klT + (1-beta)*klS
}

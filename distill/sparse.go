package distill

import (
	"fmt"
	"math"

	"github.com/posttrain/posttrain/tensor"
)

// TopK is a teacher's stored sparse prediction for N rows: per row, K
// distinct token ids and their log-probabilities under the teacher (at
// temperature 1), row-major, as the teacher cache stores them.
type TopK struct {
	IDs      []int32   // [N·K] token ids, distinct within a row
	LogProbs []float32 // [N·K] teacher log-probabilities, ≤ 0
	K        int
}

// Leftover says what sparse distillation does with the teacher's mass
// outside its stored top k, 1 − Σ_k p_T.
type Leftover int

const (
	// Drop renormalizes the teacher over its top k and compares it with the
	// student renormalized over the same k tokens; the student's logits off
	// the support get no gradient from the soft term.
	Drop Leftover = iota
	// Bucket keeps the leftover as one extra class: the student's mass off
	// the support is compared, as a whole, with the teacher's leftover.
	Bucket
)

// String returns the policy's name, "drop" or "bucket".
func (l Leftover) String() string {
	switch l {
	case Drop:
		return "drop"
	case Bucket:
		return "bucket"
	}
	return fmt.Sprintf("Leftover(%d)", int(l))
}

// Sparse is SparseKL's settings by name, so that a call reads
//
//	distill.Sparse{Leftover: distill.Bucket, Alpha: 0.5}.Loss(grad, logits, labels, top)
//
// and settings added later cannot shift the others' positions. There is no
// default: Alpha = 0 is plain cross-entropy, a valid choice.
type Sparse struct {
	Leftover Leftover // what happens to the teacher's mass outside its top k
	Alpha    float64  // weight α in [0, 1] of the KL term; 1 − α goes to cross-entropy
}

// Loss is SparseKL with s's settings.
func (s Sparse) Loss(grad, logits *tensor.Dense, labels []int32, teacher TopK) (float64, error) {
	return SparseKL(grad, logits, labels, teacher, s.Leftover, s.Alpha)
}

// sumTolerance is how far the stored top-k probabilities may sum above 1:
// bfloat16 log-probs carry a relative error of up to 2⁻⁹ in probability.
const sumTolerance = 1e-2

// SparseKL returns the mean over counted rows of
//
//	α·KL(q_i ‖ p̃_i) + (1−α)·(−log p_S(y_i))
//
// where q_i is the teacher's stored top-k distribution with the leftover
// mass handled as the Leftover says, p̃_i the student distribution on the
// same support (k tokens for Drop, k tokens plus one bucket for Bucket),
// and y_i = labels[i] the true token. Over the support the gradient of the
// soft term is p̃ − q, and for Bucket the bucket's share is spread over the
// tokens off the support in proportion to the student's probabilities.
// When grad is not nil it receives dLoss/dlogits.
//
// labels may be nil when α = 1; a negative label ignores its row (both
// terms). A batch with every row ignored has loss 0 and a zero gradient.
// With Drop, α = 1 and grad nil, a row's loss costs O(k), not O(V), after
// the one vectorized pass that checks the logits are finite.
//
// It returns an error, leaving grad untouched, for shape or length
// mismatches, a teacher K outside [1, V], grad overlapping the logits
// other than by being them, α outside [0, 1], an id outside [0, V) or repeated within a
// row, a log-probability that is NaN, +Inf or > 0, top-k probabilities that
// sum above 1 (beyond bfloat16 rounding) or, for Drop, to 0, a label ≥ V,
// or NaN or ±Inf in the logits.
func SparseKL(grad, logits *tensor.Dense, labels []int32, teacher TopK, leftover Leftover, alpha float64) (float64, error) {
	return sparseKL("SparseKL", grad, logits, labels, teacher, leftover, alpha, false)
}

// sparseKL is SparseKL; finite says the logits are known to be finite
// (a fused chunk, bounded before it was formed), sparing their check.
func sparseKL(op string, grad, logits *tensor.Dense, labels []int32, teacher TopK, leftover Leftover, alpha float64, finite bool) (float64, error) {
	n, v, err := dims(op, "logits", logits)
	if err != nil {
		return 0, err
	}
	if err := checkGrad(op, grad, n, v); err != nil {
		return 0, err
	}
	if err := checkOverlap(op, grad, "logits", logits, "", nil); err != nil {
		return 0, err
	}
	count, err := checkSparse(op, labels, teacher, leftover, alpha, n, v, nil)
	if err != nil {
		return 0, err
	}
	if !finite {
		if err := checkFinite(op, "logits", logits, "", nil); err != nil {
			return 0, err
		}
	}
	if count == 0 {
		if grad != nil {
			grad.Zero()
		}
		return 0, nil
	}
	j := sparseJobs.get()
	defer sparseJobs.put(j)
	*j = sparseJob{grad: grad, z: logits, labels: labels, t: teacher, mode: leftover, alpha: alpha,
		inv: float32(1 / float64(count)), n: n, v: v, rows: chunkRows(v), parts: j.parts}
	nc := (n + j.rows - 1) / j.rows
	j.parts.reset(nc)
	run(j, nc)
	sum, _ := j.parts.total()
	j.grad, j.z, j.labels, j.t = nil, nil, nil, TopK{}
	return sum / float64(count), nil
}

// checkSparse checks SparseKL's arguments other than the logits for n
// rows over a vocabulary of v, and returns how many rows count; keep, if
// not nil, is called with each counted row in order.
func checkSparse(op string, labels []int32, teacher TopK, leftover Leftover, alpha float64, n, v int, keep func(i int)) (int, error) {
	if err := checkUnit(op, "alpha", alpha); err != nil {
		return 0, err
	}
	if leftover != Drop && leftover != Bucket {
		return 0, fmt.Errorf("distill: %s: unknown leftover mode %v", op, leftover)
	}
	k := teacher.K
	if k < 1 || k > max(v, 1) {
		// K distinct ids fit in the vocabulary; the bound also keeps n·k
		// within n·v, the logits' length, so it cannot overflow.
		return 0, fmt.Errorf("distill: %s: teacher K = %d outside [1, V = %d]", op, k, v)
	}
	if len(teacher.IDs) != n*k || len(teacher.LogProbs) != n*k {
		return 0, fmt.Errorf("distill: %s: teacher has %d ids and %d log-probs, want %d (%d rows × K %d)",
			op, len(teacher.IDs), len(teacher.LogProbs), n*k, n, k)
	}
	if labels == nil && alpha != 1 {
		return 0, fmt.Errorf("distill: %s: labels are nil but alpha is %v", op, alpha)
	}
	if labels != nil && len(labels) != n {
		return 0, fmt.Errorf("distill: %s: %d labels for %d rows", op, len(labels), n)
	}
	count := 0
	for i := range n {
		if labels != nil {
			if labels[i] < 0 {
				continue
			}
			if int(labels[i]) >= v {
				return 0, fmt.Errorf("distill: %s: labels[%d] = %d outside [0, %d)", op, i, labels[i], v)
			}
		}
		if err := checkTopKRow(op, teacher, i, v, leftover); err != nil {
			return 0, err
		}
		if keep != nil {
			keep(i)
		}
		count++
	}
	return count, nil
}

func checkTopKRow(op string, t TopK, i, v int, mode Leftover) error {
	k := t.K
	ids, lps := t.IDs[i*k:(i+1)*k], t.LogProbs[i*k:(i+1)*k]
	var s float64
	for a, id := range ids {
		if id < 0 || int(id) >= v {
			return fmt.Errorf("distill: %s: teacher row %d id %d = %d outside [0, %d)", op, i, a, id, v)
		}
		for b := range a {
			if ids[b] == id {
				return fmt.Errorf("distill: %s: teacher row %d repeats id %d (entries %d and %d)", op, i, id, b, a)
			}
		}
		lp := lps[a]
		if lp != lp || lp > 0 {
			return fmt.Errorf("distill: %s: teacher row %d log-prob %d = %v, want ≤ 0", op, i, a, lp)
		}
		s += math.Exp(float64(lp))
	}
	if s > 1+sumTolerance {
		return fmt.Errorf("distill: %s: teacher row %d top-k probabilities sum to %v > 1", op, i, s)
	}
	if mode == Drop && s == 0 {
		return fmt.Errorf("distill: %s: teacher row %d top-k probabilities are all 0", op, i)
	}
	return nil
}

type sparseJob struct {
	grad, z    *tensor.Dense
	labels     []int32
	t          TopK
	mode       Leftover
	alpha      float64
	inv        float32
	n, v, rows int
	parts      parts
}

var sparseJobs = newFreeList[sparseJob]()

func (j *sparseJob) chunk(c int, sc *scratch) {
	lo, hi := c*j.rows, min((c+1)*j.rows, j.n)
	var sum float64
	for i := lo; i < hi; i++ {
		if j.labels != nil && j.labels[i] < 0 {
			if j.grad != nil {
				clear(j.grad.Row(i))
			}
			continue
		}
		sum += j.row(i, sc)
	}
	j.parts.sum[c] = sum
}

func (j *sparseJob) row(i int, sc *scratch) float64 {
	v, k, alpha := j.v, j.t.K, j.alpha
	z := j.z.Data()[i*v : (i+1)*v]
	ids, lps := j.t.IDs[i*k:(i+1)*k], j.t.LogProbs[i*k:(i+1)*k]
	var g []float32
	if j.grad != nil {
		g = j.grad.Data()[i*v : (i+1)*v]
	}
	y := int32(-1)
	if j.labels != nil && alpha < 1 {
		y = j.labels[i]
	}

	// Teacher mass on the support, and the student's logits there, saved
	// before a softmax written in place could overwrite them.
	var sT float64
	for _, lp := range lps {
		sT += math.Exp(float64(lp))
	}
	zs := buf(&sc.d, k)
	for a, id := range ids {
		zs[a] = z[id]
	}
	full := j.mode == Bucket || y >= 0 // the whole row's softmax is needed

	// The row's log-softmax through the numeric core: log p at the
	// teacher's first id and the float64 log-sum-exp in one pass, and
	// every other log p from it by an exact float64 difference of logits,
	// as ConvexCombination does, so logits of any magnitude keep full
	// precision.
	var lp0, lse float64
	if full {
		lp0, lse, _ = tensor.LogSoftmaxAt(z, int(ids[0])) // finite: checked
	}
	logp := func(zk float32) float64 { return lp0 + (float64(zk) - float64(zs[0])) }

	var hard float64
	if y >= 0 {
		hard = -logp(z[y])
	}
	var qr, logpr float64 // Bucket: the teacher's and the student's leftover
	var rest []float32    // Bucket, tiny leftover: α·q_r/count times the student's softmax off the support
	if j.mode == Bucket && k < v {
		qr = max(0, 1-sT)
	}
	// The gradient's scale off the support, where it is p/count times 1
	// (cross-entropy and the soft term's p), 1 − α or 0, less the bucket's
	// share α·q_r·p/p_r.
	scale := 1.0
	if j.mode == Drop {
		scale = 0
		if y >= 0 {
			scale = 1 - alpha
		}
	}
	if qr > 0 {
		// The student's leftover p_r = 1 − Σ_support p, in float64 from
		// log-probabilities accurate to 2⁻⁵², is accurate to 1e-9 relative
		// while p_r ≥ 2⁻²⁰, and its share folds into the softmax's scale.
		// Below that, the subtraction has cancelled: log p_r comes from
		// the log-softmax of the row with the support masked, at an entry
		// o off the support, as log p_o − log p_o|rest, accurate however
		// small p_r is, and the share is a masked softmax of its own.
		var pS float64
		for a := range ids {
			pS += math.Exp(logp(zs[a]))
		}
		if pr := 1 - pS; pr >= 0x1p-20 {
			logpr = math.Log(pr)
			scale -= alpha * qr / pr
		} else {
			rest = buf(&sc.b, v)
			copy(rest, z)
			for _, id := range ids {
				rest[id] = float32(math.Inf(-1))
			}
			o := offSupport(rest)
			lpo, lseRest, _ := tensor.LogSoftmaxAt(rest, o)
			logpr = logp(z[o]) - lpo
			if g != nil {
				tensor.SoftmaxLSE(rest, float32(alpha*qr*float64(j.inv)), rest, lseRest)
			}
		}
	}
	if g != nil {
		if scale != 0 {
			tensor.SoftmaxLSE(g, float32(scale*float64(j.inv)), z, lse) // g may be z
		} else {
			clear(g)
		}
	}

	var soft float64
	switch j.mode {
	case Drop:
		// Student over the support: log p̃_a = z_a − log Σ_support e^z.
		m := float64(tensor.Max(zs))
		var s float64
		for _, x := range zs {
			s += math.Exp(float64(x) - m)
		}
		lseS, logsT := m+math.Log(s), math.Log(sT)
		for a, id := range ids {
			lq := float64(lps[a]) - logsT
			lpt := float64(zs[a]) - lseS
			q := math.Exp(lq)
			if q > 0 {
				soft += q * (lq - lpt)
			}
			if g != nil {
				g[id] += float32(alpha * (math.Exp(lpt) - q) * float64(j.inv))
			}
		}
	case Bucket:
		for a := range ids {
			if lq := float64(lps[a]); lq > math.Inf(-1) {
				soft += math.Exp(lq) * (lq - logp(zs[a]))
			}
		}
		if qr > 0 {
			soft += qr * (math.Log(qr) - logpr)
		}
		if g != nil {
			if rest != nil {
				tensor.Axpy(-1, rest, g) // zero on the support
			}
			// On the support, p − α·q (and − (1−α) at the label, below),
			// set whole rather than corrected from the scaled softmax.
			for a, id := range ids {
				g[id] = float32((math.Exp(logp(zs[a])) - alpha*math.Exp(float64(lps[a]))) * float64(j.inv))
			}
		}
	}
	if g != nil && y >= 0 {
		g[y] -= float32((1 - alpha) * float64(j.inv))
	}
	return alpha*soft + (1-alpha)*hard
}

// offSupport returns the index of the first finite entry of a row of
// finite logits whose support is masked to −Inf: there is one, since the
// support leaves at least one token out.
func offSupport(rest []float32) int {
	for j, x := range rest {
		if !math.IsInf(float64(x), -1) {
			return j
		}
	}
	return 0
}

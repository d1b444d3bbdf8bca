// Package lmhead runs a loss over a language model's output layer without
// ever holding the [N, V] logits: the rows are cut into chunks, and for each
// chunk the logits are formed by one GEMM, turned into their gradient in
// place by the caller's loss, and pushed back through the layer by two more
// GEMMs,
//
//	z_c  = h_c·Wᵀ + b          [c, V]   (forward)
//	g_c  = ∂L/∂z_c, in place   [c, V]   (the loss's row kernels)
//	dh_c = g_c·W               [c, H]
//	dW  += g_cᵀ·h_c            [V, H]
//	db  += Σ_rows g_c          [V]
//
// so the extra memory is c·V floats per model (the student's, and a live
// teacher's beside it) instead of N·V, and the chunk's logits are still in
// the last-level cache when the gradient GEMMs read them. Only the rows a
// loss counts are gathered into chunks, so ignored rows cost no GEMM work.
//
// It serves packages distill and prefopt, which own the losses; it checks
// shapes and finiteness and bounds the logits, so that its callers can
// validate everything before the first output is written.
package lmhead

import (
	"context"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/posttrain/posttrain/tensor"
)

// Model is a model's final hidden states and output layer, the input of
// the fused losses of distill and prefopt (both name it Head): its logits
// are H·Wᵀ + Bias.
type Model struct {
	H    *tensor.Dense // [N, D] final hidden states, one row per position
	W    *tensor.Dense // [V, D] output weight (lm_head, or the tied embedding)
	Bias []float32     // [V], or nil for none
}

// Grad receives a fused loss's gradients (distill and prefopt name it
// HeadGrad). H is overwritten with dL/dH (zero rows for positions that
// are not scored); W and Bias are accumulated into (+=), as a model's
// parameter gradients are across micro-batches. Any field may be nil to
// skip that gradient; H may be the head's H itself, overwriting the
// hidden states with their gradient.
type Grad struct {
	H    *tensor.Dense // [N, D]
	W    *tensor.Dense // [V, D]
	Bias []float32     // [V]
}

// Dims checks m's shapes and returns N, V and D. pkg and op prefix the
// errors; name is the model's name in them ("student", "teacher").
func (m Model) Dims(pkg, op, name string) (n, v, d int, err error) {
	if m.H == nil || m.W == nil {
		return 0, 0, 0, fmt.Errorf("%s: %s: %s H or W is nil", pkg, op, name)
	}
	if m.H.Dims() != 2 {
		return 0, 0, 0, fmt.Errorf("%s: %s: %s H has shape %v, want [N, D]", pkg, op, name, m.H.Shape())
	}
	if m.W.Dims() != 2 {
		return 0, 0, 0, fmt.Errorf("%s: %s: %s W has shape %v, want [V, D]", pkg, op, name, m.W.Shape())
	}
	n, d = m.H.Dim(0), m.H.Dim(1)
	v = m.W.Dim(0)
	if m.W.Dim(1) != d {
		return 0, 0, 0, fmt.Errorf("%s: %s: %s W has shape %v, want [V %d] to match H %v", pkg, op, name, m.W.Shape(), d, m.H.Shape())
	}
	if v == 0 {
		return 0, 0, 0, fmt.Errorf("%s: %s: %s W has an empty vocabulary (shape %v)", pkg, op, name, m.W.Shape())
	}
	if m.Bias != nil && len(m.Bias) != v {
		return 0, 0, 0, fmt.Errorf("%s: %s: %s bias has %d entries, want V = %d", pkg, op, name, len(m.Bias), v)
	}
	return n, v, d, nil
}

// Check checks g's shapes against a model of n rows, v columns and width
// d, and that its memory overlaps no input (m's and those of others, such
// as a teacher) nor another of its fields, with one exception: H may be
// m.H itself, since each chunk's rows of dh are written after the last
// read of those rows of H.
func (g Grad) Check(pkg, op string, m Model, n, v, d int, others ...Model) error {
	if g.H != nil && (g.H.Dims() != 2 || g.H.Dim(0) != n || g.H.Dim(1) != d) {
		return fmt.Errorf("%s: %s: grad H has shape %v, want [%d %d]", pkg, op, g.H.Shape(), n, d)
	}
	if g.W != nil && (g.W.Dims() != 2 || g.W.Dim(0) != v || g.W.Dim(1) != d) {
		return fmt.Errorf("%s: %s: grad W has shape %v, want [%d %d]", pkg, op, g.W.Shape(), v, d)
	}
	if g.Bias != nil && len(g.Bias) != v {
		return fmt.Errorf("%s: %s: grad bias has %d entries, want %d", pkg, op, len(g.Bias), v)
	}
	type named struct {
		name string
		t    *tensor.Dense
	}
	vec := func(x []float32) *tensor.Dense {
		if x == nil {
			return nil
		}
		return tensor.FromSlice(x, len(x))
	}
	outs := []named{{"grad H", g.H}, {"grad W", g.W}, {"grad bias", vec(g.Bias)}}
	ins := []named{{"H", m.H}, {"W", m.W}, {"bias", vec(m.Bias)}}
	for _, o := range others {
		ins = append(ins, named{"teacher H", o.H}, named{"teacher W", o.W}, named{"teacher bias", vec(o.Bias)})
	}
	for k, out := range outs {
		if out.t == nil {
			continue
		}
		for _, in := range ins {
			if in.t == nil || !out.t.Overlaps(in.t) {
				continue
			}
			if k == 0 && in.t == m.H && len(g.H.Data()) == len(m.H.Data()) && &g.H.Data()[0] == &m.H.Data()[0] {
				continue // dh written over H, row block by row block
			}
			return fmt.Errorf("%s: %s: %s overlaps %s", pkg, op, out.name, in.name)
		}
		for _, other := range outs[k+1:] {
			if other.t != nil && out.t.Overlaps(other.t) {
				return fmt.Errorf("%s: %s: %s overlaps %s", pkg, op, out.name, other.name)
			}
		}
	}
	return nil
}

// Finite returns an error naming the first NaN or ±Inf among the counted
// rows of m.H, in m.W or in m.Bias, and otherwise a bound on the magnitude
// of every logit and of every partial sum the GEMM forms on the way to
// one: |z_ij| ≤ ‖h_i‖·‖w_j‖ + |b_j| (Cauchy–Schwarz), with a margin for
// the float32 rounding of the norms. The bound is +Inf if a norm overflows.
func Finite(pkg, op, name string, m Model, rows []int32) (bound float64, err error) {
	d := m.H.Dim(1)
	hd := m.H.Data()
	var hmax float64
	for _, i := range rows {
		row := hd[int(i)*d : int(i+1)*d]
		s := float64(tensor.Dot(row, row))
		if s != s {
			return 0, badElem(pkg, op, name+" H", int(i), row)
		}
		hmax = max(hmax, s)
	}
	wd := m.W.Data()
	var wmax float64
	for j := range m.W.Dim(0) {
		row := wd[j*d : (j+1)*d]
		s := float64(tensor.Dot(row, row))
		if s != s {
			return 0, badElem(pkg, op, name+" W", j, row)
		}
		wmax = max(wmax, s)
	}
	var bmax float64
	for j, b := range m.Bias {
		if b != b || math.IsInf(float64(b), 0) {
			return 0, fmt.Errorf("%s: %s: %s bias[%d] is %v", pkg, op, name, j, b)
		}
		bmax = max(bmax, math.Abs(float64(b)))
	}
	// A NaN-free row whose squared norm overflowed float32 is +Inf here:
	// scan it to tell an infinite element from a merely huge one.
	if math.IsInf(hmax, 1) {
		for _, i := range rows {
			if err := scan(pkg, op, name+" H", int(i), hd[int(i)*d:int(i+1)*d]); err != nil {
				return 0, err
			}
		}
	}
	if math.IsInf(wmax, 1) {
		for j := range m.W.Dim(0) {
			if err := scan(pkg, op, name+" W", j, wd[j*d:(j+1)*d]); err != nil {
				return 0, err
			}
		}
	}
	return 1.01*math.Sqrt(hmax)*math.Sqrt(wmax) + bmax, nil
}

// Safe is the largest logit bound under which nothing a loss does with
// the logits can overflow: their exponentials are taken after the row
// maximum is subtracted, so the logits and their differences must stay
// finite in float32.
const Safe = math.MaxFloat32 / 4

func badElem(pkg, op, name string, i int, row []float32) error {
	if err := scan(pkg, op, name, i, row); err != nil {
		return err
	}
	return fmt.Errorf("%s: %s: %s row %d is not finite", pkg, op, name, i)
}

func scan(pkg, op, name string, i int, row []float32) error {
	for j, x := range row {
		if x != x || math.IsInf(float64(x), 0) {
			return fmt.Errorf("%s: %s: %s row %d column %d is %v", pkg, op, name, i, j, x)
		}
	}
	return nil
}

// Chunker holds a fused loss's scratch: the chunk's gathered hidden
// states and logits, reused across calls. Not safe for concurrent use.
type Chunker struct {
	Rows int // rows per chunk; 0 chooses from the cache size

	hs, ht, z, zt, dh []float32

	// kept describes the last chunk of the last forward-only Run, whose
	// logits are still in z: see Pass.Reuse.
	kept struct {
		ok          bool
		h, w        *tensor.Dense
		rows, chunk int
	}
}

// Pass is one fused call.
type Pass struct {
	Name string // error prefix, "distill: Fused.CrossEntropy"
	S    Model  // the model whose head gets the gradient
	T    *Model // a second model (a live teacher), chunked alongside, or nil
	Rows []int32
	Grad *Grad // nil: forward only
	// Reuse says that the Chunker's previous Run was forward-only over the
	// same S and Rows, and that nothing has changed since: the chunks then
	// run last to first, and the last chunk's logits, still in the
	// Chunker's buffer, are used instead of being formed again, sparing
	// one chunk's GEMM (all of the forward GEMM when the rows fit in one
	// chunk). Without a teacher only; where the previous Run does not
	// match (another head, row count or chunk size), every chunk is
	// formed again.
	Reuse bool
	// Loss turns the chunk of logits for Rows[lo:hi] into their gradient,
	// in place in z (when Grad is set), and returns the factor the
	// gradient GEMMs scale it by. zt is the teacher's chunk, or nil.
	Loss func(lo, hi int, z, zt *tensor.Dense) (alpha float32, err error)
}

// ChunkRows returns the rows per chunk for vocabulary v and heads models
// chunked together: as many as fill a quarter of the last-level cache with
// the chunks' logits, so that the gradient GEMMs find them still there,
// but at least 256 — each chunk re-reads W twice and reads and writes dW
// once, 16·V·D bytes against its 6·c·V·D FLOPs, and below a few hundred
// rows that traffic costs more than the cache saves — and at most 1024,
// rounded down to a multiple of 16. (Measured on a 2-core Xeon with a
// 260 MB L3 at V = 151,936, D = 896: 128 rows cost 9% more CPU time than
// 256, and 1024 rows 5% more.)
func ChunkRows(v, heads int) int {
	r := llc() / 4 / (4 * max(v, 1) * max(heads, 1))
	return min(1024, max(256, r/16*16))
}

var llcOnce = sync.OnceValue(func() int {
	const fallback = 32 << 20
	best := 0
	for i := range 8 {
		b, err := os.ReadFile("/sys/devices/system/cpu/cpu0/cache/index" + strconv.Itoa(i) + "/size")
		if err != nil {
			break
		}
		s := strings.TrimSpace(string(b))
		mul := 1
		switch {
		case strings.HasSuffix(s, "K"):
			mul, s = 1<<10, s[:len(s)-1]
		case strings.HasSuffix(s, "M"):
			mul, s = 1<<20, s[:len(s)-1]
		}
		if x, err := strconv.Atoi(s); err == nil {
			best = max(best, x*mul)
		}
	}
	if best < 1<<20 {
		return fallback
	}
	return best
})

func llc() int { return llcOnce() }

// Run runs p chunk by chunk. Rows not in p.Rows get zero rows of dh
// before the first chunk. It stops at the first error of p.Loss, and
// when ctx is done, checked before each chunk (its error is returned
// wrapped, so that errors.Is(err, context.Canceled) holds); by then
// earlier chunks have written their gradients. Nothing is written before
// the first chunk's loss has run.
func (c *Chunker) Run(ctx context.Context, p Pass) error {
	n, d := p.S.H.Dim(0), p.S.H.Dim(1)
	v := p.S.W.Dim(0)
	heads := 1
	if p.T != nil {
		heads = 2
	}
	rows := c.Rows
	if rows <= 0 {
		rows = ChunkRows(v, heads)
	}
	rows = min(rows, len(p.Rows))
	k := c.kept
	reuse := p.Reuse && p.T == nil && k.ok && k.h == p.S.H && k.w == p.S.W && k.rows == len(p.Rows) && k.chunk == rows
	c.kept.ok = false
	nc := (len(p.Rows) + rows - 1) / rows
	for ci := range nc {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%s: %w", p.Name, err)
		}
		if p.Reuse {
			ci = nc - 1 - ci
		}
		lo := ci * rows
		hi := min(lo+rows, len(p.Rows))
		idx := p.Rows[lo:hi]
		hs := gather(&c.hs, p.S.H, idx)
		z := tensor.FromSlice(grow(&c.z, len(idx)*v), len(idx), v)
		if !reuse || ci != nc-1 {
			forward(z, hs, p.S)
		}
		var zt *tensor.Dense
		if p.T != nil {
			ht := gather(&c.ht, p.T.H, idx)
			zt = tensor.FromSlice(grow(&c.zt, len(idx)*v), len(idx), v)
			forward(zt, ht, *p.T)
		}
		alpha, err := p.Loss(lo, hi, z, zt)
		if err != nil {
			return err
		}
		if p.Grad == nil {
			continue
		}
		g := p.Grad
		if g.H != nil && (ci == 0 && !p.Reuse || ci == nc-1 && p.Reuse) {
			clearOthers(g.H, p.Rows, n, d)
		}
		// dW first: when dh is H itself, the dh GEMM overwrites hs.
		if g.W != nil {
			tensor.Gemm(true, false, alpha, z, hs, 1, g.W)
		}
		if g.Bias != nil {
			for r := range len(idx) {
				tensor.Axpy(alpha, z.Row(r), g.Bias)
			}
		}
		if g.H != nil {
			if contiguous(idx) {
				dst := tensor.FromSlice(g.H.Data()[int(idx[0])*d:int(idx[len(idx)-1]+1)*d], len(idx), d)
				tensor.Gemm(false, false, alpha, z, p.S.W, 0, dst)
			} else {
				dst := tensor.FromSlice(grow(&c.dh, len(idx)*d), len(idx), d)
				tensor.Gemm(false, false, alpha, z, p.S.W, 0, dst)
				gd := g.H.Data()
				for r, i := range idx {
					copy(gd[int(i)*d:int(i+1)*d], dst.Row(r))
				}
			}
		}
	}
	if p.Grad == nil && p.T == nil {
		c.kept.ok, c.kept.h, c.kept.w, c.kept.rows, c.kept.chunk = true, p.S.H, p.S.W, len(p.Rows), rows
	}
	return nil
}

// forward writes z = h·Wᵀ + bias.
func forward(z, h *tensor.Dense, m Model) {
	tensor.Gemm(false, true, 1, h, m.W, 0, z)
	if m.Bias != nil {
		for r := range z.Dim(0) {
			row := z.Row(r)
			tensor.Add(row, row, m.Bias)
		}
	}
}

// gather returns rows idx of h as a [len(idx), D] tensor: a view of h when
// they are consecutive, else a copy in *buf.
func gather(buf *[]float32, h *tensor.Dense, idx []int32) *tensor.Dense {
	d := h.Dim(1)
	hd := h.Data()
	if contiguous(idx) {
		return tensor.FromSlice(hd[int(idx[0])*d:int(idx[len(idx)-1]+1)*d], len(idx), d)
	}
	out := grow(buf, len(idx)*d)
	for r, i := range idx {
		copy(out[r*d:(r+1)*d], hd[int(i)*d:int(i+1)*d])
	}
	return tensor.FromSlice(out, len(idx), d)
}

func contiguous(idx []int32) bool { return int(idx[len(idx)-1]-idx[0]) == len(idx)-1 }

// clearOthers zeroes the rows of dh not listed in rows (ascending).
func clearOthers(dh *tensor.Dense, rows []int32, n, d int) {
	data := dh.Data()
	next := 0
	for i := range n {
		if next < len(rows) && int(rows[next]) == i {
			next++
			continue
		}
		clear(data[i*d : (i+1)*d])
	}
}

func grow(p *[]float32, n int) []float32 {
	if cap(*p) < n {
		*p = make([]float32, n)
	}
	return (*p)[:n]
}

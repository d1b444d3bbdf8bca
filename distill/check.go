package distill

import (
	"fmt"
	"math"

	"github.com/posttrain/posttrain/tensor"
)

// dims returns the rows and columns of a 2-D tensor, or an error naming it.
func dims(op, name string, t *tensor.Dense) (n, v int, err error) {
	if t == nil {
		return 0, 0, fmt.Errorf("distill: %s: %s is nil", op, name)
	}
	if t.Dims() != 2 {
		return 0, 0, fmt.Errorf("distill: %s: %s has shape %v, want [N, V]", op, name, t.Shape())
	}
	n, v = t.Dim(0), t.Dim(1)
	if v == 0 && n > 0 {
		return 0, 0, fmt.Errorf("distill: %s: %s has an empty vocabulary (shape %v)", op, name, t.Shape())
	}
	return n, v, nil
}

// checkGrad reports whether grad, if not nil, has the logits' shape.
func checkGrad(op string, grad *tensor.Dense, n, v int) error {
	if grad == nil {
		return nil
	}
	if grad.Dims() != 2 || grad.Dim(0) != n || grad.Dim(1) != v {
		return fmt.Errorf("distill: %s: grad has shape %v, want [%d %d]", op, grad.Shape(), n, v)
	}
	return nil
}

// checkSame reports whether t has shape [n, v].
func checkSame(op, name string, t *tensor.Dense, n, v int) error {
	m, w, err := dims(op, name, t)
	if err != nil {
		return err
	}
	if m != n || w != v {
		return fmt.Errorf("distill: %s: %s has shape %v, want [%d %d] like the student", op, name, t.Shape(), n, v)
	}
	return nil
}

// checkTemperature accepts 0 < T ≤ MaxTemperature.
func checkTemperature(op string, t float64) error {
	if !(t > 0) || t > MaxTemperature {
		return fmt.Errorf("distill: %s: temperature %v outside (0, %g]", op, t, MaxTemperature)
	}
	return nil
}

// checkOverlap returns an error if grad's memory overlaps that of an
// input: grad may be exactly the input named by same (same first element
// and length, so each row is read before it is overwritten), and may share
// no element with any other input, nor partly overlap same (shifted by a
// row, say, which would overwrite rows before they are read).
func checkOverlap(op string, grad *tensor.Dense, sameName string, same *tensor.Dense, otherName string, other *tensor.Dense) error {
	if grad == nil {
		return nil
	}
	g := grad.Data()
	if same != nil {
		d := same.Data()
		exact := len(g) == len(d) && (len(g) == 0 || &g[0] == &d[0])
		if !exact && grad.Overlaps(same) {
			return fmt.Errorf("distill: %s: grad overlaps %s without being it: the gradient would overwrite %s before it is read", op, sameName, sameName)
		}
	}
	if other != nil && grad.Overlaps(other) {
		return fmt.Errorf("distill: %s: grad overlaps %s", op, otherName)
	}
	return nil
}

// checkUnit accepts w in [0, 1].
func checkUnit(op, name string, w float64) error {
	if !(w >= 0 && w <= 1) {
		return fmt.Errorf("distill: %s: %s %v outside [0, 1]", op, name, w)
	}
	return nil
}

// finiteJob checks, in parallel, that every element of up to two tensors
// of equal shape is finite. tensor.Sum of a row is NaN or ±Inf whenever
// the row holds a NaN or ±Inf, so the common case costs one vectorized
// read; only a suspicious row is scanned element by element to name the
// culprit (a finite row whose sum overflows passes that scan).
type finiteJob struct {
	op    string
	t     [2]*tensor.Dense
	name  [2]string
	n, v  int
	rows  int
	parts parts
}

var finiteJobs = newFreeList[finiteJob]()

// checkFinite returns an error naming the first non-finite element of a
// (and then b, if not nil), by row.
func checkFinite(op, nameA string, a *tensor.Dense, nameB string, b *tensor.Dense) error {
	n, v := a.Dim(0), a.Dim(1)
	if n == 0 || v == 0 {
		return nil
	}
	j := finiteJobs.get()
	defer finiteJobs.put(j)
	j.op, j.t, j.name, j.n, j.v = op, [2]*tensor.Dense{a, b}, [2]string{nameA, nameB}, n, v
	j.rows = chunkRows(v)
	nc := (n + j.rows - 1) / j.rows
	j.parts.reset(nc)
	run(j, nc)
	_, err := j.parts.total()
	j.t = [2]*tensor.Dense{}
	return err
}

func (j *finiteJob) chunk(c int, _ *scratch) {
	lo, hi := c*j.rows, min((c+1)*j.rows, j.n)
	for k, t := range j.t {
		if t == nil {
			continue
		}
		d := t.Data()
		for i := lo; i < hi; i++ {
			row := d[i*j.v : (i+1)*j.v]
			s := tensor.Sum(row)
			if !isInf32(s) && s == s {
				continue
			}
			for col, x := range row {
				if x != x || isInf32(x) {
					j.parts.errs[c] = fmt.Errorf("distill: %s: %s row %d column %d is %v", j.op, j.name[k], i, col, x)
					return
				}
			}
		}
	}
}

func isInf32(x float32) bool { return x > math.MaxFloat32 || x < -math.MaxFloat32 }

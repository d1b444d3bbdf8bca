package distill

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/posttrain/posttrain/tensor"
)

// onpolicy.json is written by testdata/gen_onpolicy.py (TRL's
// generalized_jsd_loss with its labels mask, torch autograd in float64).
type onPolicyCase struct {
	Name             string
	N, V             int
	Beta, T          float64
	Student, Teacher []float32
	Labels           []int32
	Loss             float64
	Grad             []float64
}

func TestGoldenGKD(t *testing.T) {
	b, err := os.ReadFile("testdata/onpolicy.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []onPolicyCase
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) == 0 {
		t.Fatal("no cases")
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			s := tensor.FromSlice(c.Student, c.N, c.V)
			te := tensor.FromSlice(c.Teacher, c.N, c.V)
			g := GKD{Lambda: 0.5, Beta: c.Beta, Temperature: c.T}
			grad := tensor.New(c.N, c.V)
			for i := range grad.Data() {
				grad.Data()[i] = 7 // ignored rows must be overwritten with 0
			}
			loss, err := g.Loss(grad, s, te, c.Labels)
			require.NoError(t, err)
			checkClose(t, loss, c.Loss, grad.Data(), c.Grad)
			l2, err := g.Loss(nil, s, te, c.Labels)
			require.NoError(t, err)
			assert.Equal(t, loss, l2, "loss without grad")
		})
	}
}

// Masking is selection: the loss over the counted rows of a batch equals
// GeneralizedJSD over just those rows, gathered, and so does the gradient.
func TestGKDMaskIsSelection(t *testing.T) {
	r := rand.New(rand.NewPCG(41, 42))
	const n, v = 9, 13
	s, te := randDense(r, 2, n, v), randDense(r, 2, n, v)
	labels := []int32{-100, 3, 4, -100, -100, 1, 2, 0, -100}
	var keep []int
	for i, y := range labels {
		if y >= 0 {
			keep = append(keep, i)
		}
	}
	cs, ct := tensor.New(len(keep), v), tensor.New(len(keep), v)
	for k, i := range keep {
		copy(cs.Row(k), s.Row(i))
		copy(ct.Row(k), te.Row(i))
	}
	for _, beta := range []float64{0, 0.3, 1} {
		g := GKD{Beta: beta, Temperature: 1.5}
		grad := tensor.New(n, v)
		got, err := g.Loss(grad, s, te, labels)
		if err != nil {
			t.Fatal(err)
		}
		cg := tensor.New(len(keep), v)
		want, err := GeneralizedJSD(cg, cs, ct, beta, 1.5)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(got-want) > 1e-6*math.Max(1, want) {
			t.Errorf("β=%v: masked loss %v, gathered %v", beta, got, want)
		}
		for k, i := range keep {
			for j := range v {
				if d := math.Abs(float64(grad.Row(i)[j] - cg.Row(k)[j])); d > 1e-7 {
					t.Errorf("β=%v: grad row %d col %d = %v, gathered %v", beta, i, j, grad.Row(i)[j], cg.Row(k)[j])
				}
			}
		}
		for i, y := range labels {
			if y < 0 {
				for _, x := range grad.Row(i) {
					if x != 0 {
						t.Fatalf("β=%v: ignored row %d has gradient", beta, i)
					}
				}
			}
		}
	}
}

func TestGKDFiniteDifference(t *testing.T) {
	r := rand.New(rand.NewPCG(43, 44))
	const n, v, h = 5, 6, 1e-2
	labels := []int32{-100, 1, 2, -100, 5}
	s, te := randDense(r, 1.5, n, v), randDense(r, 1.5, n, v)
	for _, beta := range []float64{0, 0.5, 1} {
		g := GKD{Beta: beta, Temperature: 1}
		grad := tensor.New(n, v)
		if _, err := g.Loss(grad, s, te, labels); err != nil {
			t.Fatal(err)
		}
		d := s.Data()
		for i := range d {
			x := d[i]
			d[i] = x + h
			lp, _ := g.Loss(nil, s, te, labels)
			d[i] = x - h
			lm, _ := g.Loss(nil, s, te, labels)
			d[i] = x
			fd := (lp - lm) / (2 * h)
			if gi := float64(grad.Data()[i]); math.Abs(gi-fd) > 2e-4+1e-2*math.Abs(fd) {
				t.Errorf("β=%v: grad[%d] = %.6g, finite difference %.6g", beta, i, gi, fd)
			}
		}
	}
}

// The λ coin: deterministic in (Seed, step), never at λ = 0, always at
// λ = 1, and on-policy at a fraction ≈ λ of the steps.
func TestGKDOnPolicy(t *testing.T) {
	g := GKD{Lambda: 0.3, Seed: 9}
	hits := 0
	const steps = 20000
	for s := range steps {
		if g.OnPolicy(s) != g.OnPolicy(s) {
			t.Fatal("OnPolicy is not deterministic")
		}
		if g.OnPolicy(s) {
			hits++
		}
		if (GKD{Lambda: 0, Seed: 9}).OnPolicy(s) || !(GKD{Lambda: 1, Seed: 9}).OnPolicy(s) {
			t.Fatal("λ = 0 or 1 not respected")
		}
	}
	// 5 standard deviations of a binomial(20000, 0.3) fraction: 0.016.
	if f := float64(hits) / steps; math.Abs(f-0.3) > 0.016 {
		t.Errorf("on-policy fraction %v, want ≈ 0.3", f)
	}
	// SeqKD turns exactly the off-policy steps into teacher steps.
	kd := g
	kd.SeqKD = true
	for s := range 200 {
		want := Dataset
		if g.OnPolicy(s) {
			want = Student
		} else if kd.SeqKD {
			want = Teacher
		}
		if g.Source(s) != map[bool]Source{true: Student, false: Dataset}[g.OnPolicy(s)] || kd.Source(s) != want {
			t.Fatalf("step %d: Source %v, with SeqKD %v", s, g.Source(s), kd.Source(s))
		}
	}
	if Teacher.String() != "teacher" || Source(9).String() != "Source(9)" {
		t.Error("Source.String")
	}
}

func TestGKDErrors(t *testing.T) {
	const n, v = 3, 4
	good := func() *tensor.Dense { return tensor.FromSlice(make([]float32, n*v), n, v) }
	labels := []int32{-100, 1, 2}
	bad := good()
	bad.Data()[9] = float32(math.NaN())
	for _, c := range []struct {
		name, want string
		g          GKD
		grad, s, t *tensor.Dense
		labels     []int32
	}{
		{"lambda", "Lambda", GKD{Lambda: 2, Temperature: 1}, nil, good(), good(), labels},
		{"beta", "beta", GKD{Beta: -0.1, Temperature: 1}, nil, good(), good(), labels},
		{"temperature", "temperature", GKD{}, nil, good(), good(), labels},
		{"labels", "2 labels", GKD{Temperature: 1}, nil, good(), good(), labels[:2]},
		{"shape", "teacher has shape", GKD{Temperature: 1}, nil, good(), tensor.New(n, v+1), labels},
		{"grad shape", "grad has shape", GKD{Temperature: 1}, tensor.New(1, v), good(), good(), labels},
		{"NaN", "teacher row 2 column 1", GKD{Temperature: 1}, tensor.New(n, v), good(), bad, labels},
	} {
		var before []float32
		if c.grad != nil {
			for i := range c.grad.Data() {
				c.grad.Data()[i] = 3
			}
			before = append(before, c.grad.Data()...)
		}
		_, err := c.g.Loss(c.grad, c.s, c.t, c.labels)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one mentioning %q", c.name, err, c.want)
		}
		if c.grad != nil {
			for i, x := range c.grad.Data() {
				if x != before[i] {
					t.Fatalf("%s: grad written on error", c.name)
				}
			}
		}
	}
}

// grad overlapping student (shifted a row) or teacher (partly or wholly) is
// an error before anything is written: every tensor, grad included, is
// left as it was. The masked first row makes the old per-run check come
// too late: its row of grad was cleared before the run after it was
// checked.
func TestGKDGradOverlap(t *testing.T) {
	const n, v = 3, 4
	labels := []int32{-100, 1, 2}
	fill := func(d []float32) {
		for i := range d {
			d[i] = float32(i%7)*0.25 - 0.5
		}
		d[5] += 1 // teacher ≠ student
	}
	// Each input lives in a buffer one row longer than it, so that grad
	// can be shifted by a row either way: offsets are in rows.
	cases := []struct {
		name, want    string
		studentOff    int
		gradInTeacher bool
		gradOff       int
	}{
		{"shifted a row after student", "overlaps student", 0, false, 1},
		{"shifted a row before student", "overlaps student", 1, false, 0},
		{"shifted over teacher", "overlaps teacher", 0, true, 1},
		{"teacher itself", "overlaps teacher", 0, true, 0},
	}
	g := GKD{Beta: 0.5, Temperature: 1}
	for _, c := range cases {
		sbuf, tbuf := make([]float32, (n+1)*v), make([]float32, (n+1)*v)
		fill(sbuf)
		fill(tbuf)
		tbuf[6] -= 2
		student := tensor.FromSlice(sbuf[c.studentOff*v:][:n*v], n, v)
		teacher := tensor.FromSlice(tbuf[:n*v], n, v)
		gbuf := sbuf
		if c.gradInTeacher {
			gbuf = tbuf
		}
		grad := tensor.FromSlice(gbuf[c.gradOff*v:][:n*v], n, v)
		s0, t0 := slices.Clone(sbuf), slices.Clone(tbuf)
		_, err := g.Loss(grad, student, teacher, labels)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		}
		if !slices.Equal(sbuf, s0) || !slices.Equal(tbuf, t0) {
			t.Errorf("%s: memory written before the error", c.name)
		}
	}
	// grad exactly the student stays allowed and matches a separate grad.
	sbuf, tbuf := make([]float32, n*v), make([]float32, n*v)
	fill(sbuf)
	fill(tbuf)
	tbuf[6] -= 2
	want := tensor.New(n, v)
	l1, err := g.Loss(want, tensor.FromSlice(slices.Clone(sbuf), n, v), tensor.FromSlice(tbuf, n, v), labels)
	if err != nil {
		t.Fatal(err)
	}
	in := tensor.FromSlice(sbuf, n, v)
	l2, err := g.Loss(in, in, tensor.FromSlice(tbuf, n, v), labels)
	if err != nil || l1 != l2 || !slices.Equal(in.Data(), want.Data()) {
		t.Fatalf("grad = student: %v, %v vs %v", err, l2, l1)
	}
}

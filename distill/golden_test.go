package distill

import (
	"encoding/json"
	"math"
	"os"
	"testing"

	"github.com/posttrain/posttrain/tensor"
)

// golden.json is written by testdata/gen_golden.py (PyTorch autograd in
// float64); see that script for how each case is built.
type goldenFile struct {
	Convex []struct {
		Name            string
		N, V            int
		Logits          []float32
		Labels, Teacher []int32
		W               float64
		Loss            float64
		Grad            []float64
	}
	Divergence []struct {
		Name, Kind       string
		N, V             int
		Student, Teacher []float32
		Beta, T          float64
		Loss             float64
		Grad             []float64
	}
	Sparse []struct {
		Name        string
		N, V, K     int
		Logits      []float32
		Labels, IDs []int32
		Logprobs    []float32
		Mode        string
		Alpha       float64
		Loss        float64
		Grad        []float64
	}
}

func loadGolden(t *testing.T) *goldenFile {
	t.Helper()
	b, err := os.ReadFile("testdata/golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var g goldenFile
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	if len(g.Convex) == 0 || len(g.Divergence) == 0 || len(g.Sparse) == 0 {
		t.Fatal("golden.json has an empty section")
	}
	return &g
}

// checkClose compares a loss to 1e-6 relative (at least 1e-6 absolute)
// and a gradient to 2e-6 absolute plus 1e-5 relative: float32 softmax
// entries carry a few ulp of error, the reference none.
func checkClose(t *testing.T, name string, loss, wantLoss float64, grad []float32, wantGrad []float64) {
	t.Helper()
	if d := math.Abs(loss - wantLoss); !(d <= 1e-6*math.Max(1, math.Abs(wantLoss))) {
		t.Errorf("%s: loss %.10g, want %.10g (diff %.3g)", name, loss, wantLoss, d)
	}
	if len(grad) != len(wantGrad) {
		t.Fatalf("%s: %d gradient entries, want %d", name, len(grad), len(wantGrad))
	}
	bad := 0
	for i, g := range grad {
		w := wantGrad[i]
		if d := math.Abs(float64(g) - w); !(d <= 2e-6+1e-5*math.Abs(w)) {
			if bad++; bad <= 5 {
				t.Errorf("%s: grad[%d] = %.8g, want %.8g", name, i, g, w)
			}
		}
	}
}

func TestGoldenConvex(t *testing.T) {
	for _, c := range loadGolden(t).Convex {
		logits := tensor.FromSlice(c.Logits, c.N, c.V)
		grad := tensor.New(c.N, c.V)
		loss, err := ConvexCombination(grad, logits, c.Labels, c.Teacher, c.W)
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		checkClose(t, c.Name, loss, c.Loss, grad.Data(), c.Grad)

		// The loss alone, without a gradient, is the same number.
		l2, err := ConvexCombination(nil, logits, c.Labels, c.Teacher, c.W)
		if err != nil || l2 != loss {
			t.Errorf("%s: loss without grad %v (%v), with grad %v", c.Name, l2, err, loss)
		}
	}
}

func TestGoldenDivergence(t *testing.T) {
	for _, c := range loadGolden(t).Divergence {
		s := tensor.FromSlice(c.Student, c.N, c.V)
		te := tensor.FromSlice(c.Teacher, c.N, c.V)
		f := func(g *tensor.Dense) (float64, error) {
			switch c.Kind {
			case "soft":
				return SoftTarget(g, s, te, c.T)
			case "forward":
				return ForwardKL(g, s, te, c.T)
			case "reverse":
				return ReverseKL(g, s, te, c.T)
			}
			return GeneralizedJSD(g, s, te, c.Beta, c.T)
		}
		grad := tensor.New(c.N, c.V)
		loss, err := f(grad)
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		checkClose(t, c.Name, loss, c.Loss, grad.Data(), c.Grad)
		if l2, err := f(nil); err != nil || l2 != loss {
			t.Errorf("%s: loss without grad %v (%v), with grad %v", c.Name, l2, err, loss)
		}
	}
}

func TestGoldenSparse(t *testing.T) {
	for _, c := range loadGolden(t).Sparse {
		logits := tensor.FromSlice(c.Logits, c.N, c.V)
		mode := Drop
		if c.Mode == "bucket" {
			mode = Bucket
		}
		top := TopK{IDs: c.IDs, LogProbs: c.Logprobs, K: c.K}
		grad := tensor.New(c.N, c.V)
		loss, err := SparseKL(grad, logits, c.Labels, top, mode, c.Alpha)
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		checkClose(t, c.Name, loss, c.Loss, grad.Data(), c.Grad)
		if l2, err := SparseKL(nil, logits, c.Labels, top, mode, c.Alpha); err != nil || math.Abs(l2-loss) > 1e-12*math.Max(1, math.Abs(loss)) {
			t.Errorf("%s: loss without grad %v (%v), with grad %v", c.Name, l2, err, loss)
		}
	}
}

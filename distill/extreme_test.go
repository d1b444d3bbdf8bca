package distill

import (
	"encoding/json"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/posttrain/posttrain/tensor"
)

// SoftTarget at temperatures where the float32 route cancels away, against
// mpmath (testdata/gen_hot.py, 60 digits). The probe found T = 1e3 off by
// 4%, T = 1e4 negative, T = 1e8 zero.
func TestSoftTargetHighTemperature(t *testing.T) {
	b, err := os.ReadFile("testdata/hot.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		Name             string
		N, V             int
		T                float64
		Student, Teacher []float32
		Loss, RevLoss    float64
		Grad, RevGrad    []float64
		JSDLoss          float64
		JSDGrad          []float64
	}
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		s := tensor.FromSlice(c.Student, c.N, c.V)
		te := tensor.FromSlice(c.Teacher, c.N, c.V)
		g := tensor.New(c.N, c.V)
		loss, err := SoftTarget(g, s, te, c.T)
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		// float32 inputs are exact; what remains is the float32 route's
		// error at T ≤ 8 and, in the float64 one, the float32 softmax
		// weights' 1e-7 and 1e-16·T.
		tol := 2e-5
		if c.T > hotTemperature {
			tol = 2e-7 + 1e-15*c.T
		}
		check := func(what string, got float64, want float64, grad []float32, wantGrad []float64) {
			if rel := math.Abs(got-want) / math.Abs(want); rel > tol {
				t.Errorf("%s: %s %.10g, want %.10g (relative error %.2g > %.2g)", c.Name, what, got, want, rel, tol)
			}
			var gmax float64
			for _, x := range wantGrad {
				gmax = max(gmax, math.Abs(x))
			}
			for k, w := range wantGrad {
				if d := math.Abs(float64(grad[k]) - w); d > 1e-5*gmax+1e-30 {
					t.Errorf("%s: %s grad[%d] = %g, want %g", c.Name, what, k, grad[k], w)
					break
				}
			}
		}
		check("SoftTarget", loss, c.Loss, g.Data(), c.Grad)
		rl, err := ReverseKL(g, s, te, c.T)
		if err != nil {
			t.Fatalf("%s: ReverseKL: %v", c.Name, err)
		}
		check("ReverseKL", rl, c.RevLoss, g.Data(), c.RevGrad)
		jl, err := GeneralizedJSD(g, s, te, 0.5, c.T)
		if err != nil {
			t.Fatalf("%s: GeneralizedJSD: %v", c.Name, err)
		}
		check("GeneralizedJSD(0.5)", jl, c.JSDLoss, g.Data(), c.JSDGrad)
		// ForwardKL is SoftTarget / T².
		if fk, err := ForwardKL(nil, s, te, c.T); err != nil || math.Abs(fk*c.T*c.T-loss) > 1e-9*math.Abs(loss) {
			t.Errorf("%s: ForwardKL·T² = %g, SoftTarget %g (%v)", c.Name, fk*c.T*c.T, loss, err)
		}
	}
	// Above MaxTemperature: an error, not a NaN gradient.
	s := tensor.FromSlice([]float32{1, 2, 3}, 1, 3)
	for _, temp := range []float64{1e9, 1e100, math.Inf(1), math.NaN(), 0, -1} {
		g := tensor.FromSlice([]float32{7, 7, 7}, 1, 3)
		if _, err := SoftTarget(g, s, s, temp); err == nil || !strings.Contains(err.Error(), "temperature") {
			t.Errorf("T = %g: err = %v", temp, err)
		}
		if g.Data()[0] != 7 {
			t.Errorf("T = %g: grad written on error", temp)
		}
	}
}

// All-equal logits of any finite magnitude: the loss is log V to within
// 2⁻²⁸ (float64's grid at the log-sum-exp of 2²⁴, the largest that
// tensor.LogSoftmaxAt subtracts directly; past it the difference is exact)
// and the gradient (1/V − onehot)/N. The probe found 2, then 0, at ≥ 1e16.
func TestAllEqualHugeLogits(t *testing.T) {
	const n, v = 2, 7
	for _, mag := range []float32{1e4, 1e8, 1e16, 1e30, 3e38, math.MaxFloat32, -1e16, -math.MaxFloat32} {
		z := make([]float32, n*v)
		for i := range z {
			z[i] = mag
		}
		labels := []int32{3, 0}
		for _, w := range []float64{0, 0.9} {
			g := tensor.New(n, v)
			loss, err := ConvexCombination(g, tensor.FromSlice(z, n, v), labels, []int32{3, 5}, w)
			if err != nil {
				t.Fatalf("%g, w %g: %v", mag, w, err)
			}
			if math.Abs(loss-math.Log(v)) > 0x1p-28 {
				t.Errorf("logits all %g, w %g: loss %v, want log 7 = %v", mag, w, loss, math.Log(v))
			}
			if got, want := g.Data()[1], float32(1.0/v/n); math.Abs(float64(got-want)) > 1e-7 {
				t.Errorf("logits all %g: grad %v, want %v", mag, got, want)
			}
		}
		loss, err := CrossEntropy(nil, tensor.FromSlice(z, n, v), labels)
		if err != nil || math.Abs(loss-math.Log(v)) > 0x1p-28 {
			t.Errorf("CrossEntropy, logits all %g: %v, %v", mag, loss, err)
		}
	}
}

// grad overlapping an input by anything but exact aliasing is an error
// (the probe: grad shifted by one row silently computed garbage).
func TestGradOverlap(t *testing.T) {
	const n, v = 3, 4
	mem := make([]float32, (n+1)*v)
	for i := range mem {
		mem[i] = float32(i%5) * 0.3
	}
	logits := tensor.FromSlice(mem[:n*v], n, v)
	shifted := tensor.FromSlice(mem[v:], n, v)
	labels := []int32{0, 1, 2}
	if _, err := ConvexCombination(shifted, logits, labels, labels, 0.5); err == nil || !strings.Contains(err.Error(), "overlaps logits") {
		t.Errorf("ConvexCombination, grad shifted a row: %v", err)
	}
	if _, err := CrossEntropy(shifted, logits, labels); err == nil {
		t.Error("CrossEntropy, grad shifted a row: no error")
	}
	other := tensor.FromSlice(append([]float32(nil), mem[:n*v]...), n, v)
	if _, err := SoftTarget(shifted, logits, other, 2); err == nil || !strings.Contains(err.Error(), "overlaps student") {
		t.Errorf("SoftTarget, grad shifted over the student: %v", err)
	}
	if _, err := SoftTarget(shifted, other, logits, 2); err == nil || !strings.Contains(err.Error(), "overlaps teacher") {
		t.Errorf("SoftTarget, grad over the teacher: %v", err)
	}
	if _, err := SoftTarget(logits, other, logits, 2); err == nil || !strings.Contains(err.Error(), "overlaps teacher") {
		t.Errorf("SoftTarget, grad is the teacher: %v", err)
	}
	// Exact aliasing stays allowed, and gives what a separate grad gives.
	want := tensor.New(n, v)
	l1, err := SoftTarget(want, logits, other, 2)
	if err != nil {
		t.Fatal(err)
	}
	in := tensor.FromSlice(append([]float32(nil), mem[:n*v]...), n, v)
	l2, err := SoftTarget(in, in, other, 2)
	if err != nil || l1 != l2 {
		t.Fatalf("in place: %v, %v vs %v", err, l2, l1)
	}
	for i, x := range in.Data() {
		if x != want.Data()[i] {
			t.Fatalf("in place gradient differs at %d", i)
		}
	}
}

// SparseKL with a K so large that n·K wraps: an error, not a slice panic.
func TestSparseKLHugeK(t *testing.T) {
	logits := tensor.New(2, 5)
	for _, k := range []int{1 << 62, 1 << 61, math.MaxInt, 6} {
		_, err := SparseKL(nil, logits, nil, TopK{IDs: []int32{0, 1}, LogProbs: []float32{-1, -1}, K: k}, Drop, 1)
		if err == nil || !strings.Contains(err.Error(), "K =") {
			t.Errorf("K = %d: %v", k, err)
		}
	}
}

// FuzzSparseKLK fuzzes SparseKL's integer arguments: K, the label and the
// ids never panic.
func FuzzSparseKLK(f *testing.F) {
	f.Add(int64(1<<62), int32(0), int32(1), 2, 3)
	f.Add(int64(2), int32(-1), int32(4), 2, 3)
	f.Fuzz(func(t *testing.T, k int64, label, id int32, n, v int) {
		n, v = n%8, v%8
		if n < 0 || v < 0 {
			return
		}
		logits := tensor.New(n, v)
		ids := make([]int32, 2*n)
		lps := make([]float32, 2*n)
		for i := range ids {
			ids[i] = id + int32(i%2)
			lps[i] = -1
		}
		labels := make([]int32, n)
		for i := range labels {
			labels[i] = label
		}
		SparseKL(tensor.New(n, v), logits, labels, TopK{IDs: ids, LogProbs: lps, K: int(k)}, Bucket, 0.5)
	})
}

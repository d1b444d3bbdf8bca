package prefopt

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/posttrain/posttrain/tensor"
	"github.com/stretchr/testify/assert"
)

func TestLevels(t *testing.T) {
	want := map[Level]float64{SignificantlyBetter: 0.95, Better: 0.85, SlightlyBetter: 0.75, NegligiblyBetter: 0.65, Unlabeled: 0}
	for l, p := range want {
		if l.Prob() != p {
			t.Errorf("%v.Prob() = %v, want %v", l, l.Prob(), p)
		}
		b, err := l.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back Level
		if err := back.UnmarshalText(b); err != nil || back != l {
			t.Errorf("%v round-trips to %v, %v", l, back, err)
		}
	}
	if _, err := Level(9).MarshalText(); err == nil {
		t.Error("Level(9).MarshalText: no error")
	}
	var l Level
	if err := l.UnmarshalText([]byte("much_better")); err == nil {
		t.Error("unknown level name: no error")
	}
}

// The soft-label loss is minimized where σ(r_c − r_r) = p_ℓ, with zero
// gradient there.
func TestSoftRankingMinimum(t *testing.T) {
	for _, l := range []Level{SignificantlyBetter, Better, SlightlyBetter, NegligiblyBetter} {
		p := l.Prob()
		gap := math.Log(p / (1 - p))
		r, err := SoftRanking([]float64{gap + 1}, []float64{1}, []Level{l})
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(r.GradChosen[0]) > 1e-15 {
			t.Errorf("%v: gradient %v at the minimum", l, r.GradChosen[0])
		}
		// The minimum value is the entropy of the soft label.
		h := -p*math.Log(p) - (1-p)*math.Log(1-p)
		if math.Abs(r.Loss-h) > 1e-15 {
			t.Errorf("%v: minimum %v, want entropy %v", l, r.Loss, h)
		}
	}
}

func TestRewardFiniteDifferences(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	n := 6
	c, r, m := make([]float64, n), make([]float64, n), make([]float64, n)
	lv := make([]Level, n)
	for i := range n {
		c[i], r[i], m[i] = 4*rng.NormFloat64(), 4*rng.NormFloat64(), rng.Float64()
		lv[i] = Level(1 + rng.IntN(4))
	}
	fns := map[string]func() (Result, error){
		"BradleyTerry":        func() (Result, error) { return BradleyTerry(c, r, nil) },
		"BradleyTerry margin": func() (Result, error) { return BradleyTerry(c, r, m) },
		"SoftRanking":         func() (Result, error) { return SoftRanking(c, r, lv) },
	}
	for name, f := range fns {
		res, err := f()
		if err != nil {
			t.Fatal(err)
		}
		for _, side := range []struct {
			x, g []float64
		}{{c, res.GradChosen}, {r, res.GradRejected}} {
			for i := range side.x {
				const h = 1e-5
				x0 := side.x[i]
				side.x[i] = x0 + h
				up, _ := f()
				side.x[i] = x0 - h
				dn, _ := f()
				side.x[i] = x0
				fd := (up.Loss - dn.Loss) / (2 * h)
				if math.Abs(fd-side.g[i]) > 1e-8 {
					t.Errorf("%s: grad[%d] %v, finite difference %v", name, i, side.g[i], fd)
				}
			}
		}
	}
}

// Grading's gradient against float64 central differences of its own loss
// on float32 logits (step 1e-2, smooth enough for 1e-4 agreement).
func TestGradingFiniteDifferences(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	const m, c = 6, 4
	logits := tensor.New(m, c)
	for i := range logits.Data() {
		logits.Data()[i] = float32(2 * rng.NormFloat64())
	}
	labels := []int32{0, 3, -1, 2, 1, 1}
	grad := tensor.New(m, c)
	if _, err := Grading(grad, logits, labels, 0.7); err != nil {
		t.Fatal(err)
	}
	for i := range logits.Data() {
		const h = 1e-2
		x0 := logits.Data()[i]
		logits.Data()[i] = x0 + h
		up, _ := Grading(nil, logits, labels, 0.7)
		logits.Data()[i] = x0 - h
		dn, _ := Grading(nil, logits, labels, 0.7)
		logits.Data()[i] = x0
		fd := (up - dn) / (2 * h)
		if math.Abs(fd-float64(grad.Data()[i])) > 1e-4 {
			t.Errorf("grad[%d] = %v, finite difference %v", i, grad.Data()[i], fd)
		}
	}
	// In place: grad may be the logits.
	want := grad.Clone()
	if _, err := Grading(logits, logits, labels, 0.7); err != nil {
		t.Fatal(err)
	}
	for i := range want.Data() {
		if logits.Data()[i] != want.Data()[i] {
			t.Fatalf("in-place grad[%d] = %v, want %v", i, logits.Data()[i], want.Data()[i])
		}
	}
}

func TestRewardErrors(t *testing.T) {
	one := []float64{1}
	two := []float64{1, 2}
	logits := tensor.New(2, 3)
	bad := tensor.FromSlice([]float32{0, float32(math.NaN()), 0, 1, 2, 3}, 2, 3)
	for _, c := range []struct {
		name string
		err  error
		want string
	}{
		{"bt empty", errOf(BradleyTerry(nil, nil, nil)), "empty"},
		{"bt ragged", errOf(BradleyTerry(two, one, nil)), "rejected"},
		{"bt margin ragged", errOf(BradleyTerry(one, one, two)), "margin"},
		{"bt NaN", errOf(BradleyTerry([]float64{math.NaN()}, one, nil)), "chosen[0]"},
		{"bt margin Inf", errOf(BradleyTerry(one, one, []float64{math.Inf(1)})), "margin[0]"},
		{"soft unlabeled", errOf(SoftRanking(two, two, []Level{Better, Unlabeled})), "levels[1]"},
		{"soft ragged", errOf(SoftRanking(two, two, []Level{Better})), "levels"},
		{"grading label", errOf(Grading(nil, logits, []int32{0, 3}, 1)), "labels[1]"},
		{"grading count", errOf(Grading(nil, logits, []int32{0}, 1)), "labels"},
		{"grading NaN", errOf(Grading(nil, bad, []int32{0, 1}, 1)), "row 0"},
		{"grading lambda", errOf(Grading(nil, logits, []int32{0, 1}, -1)), "lambda"},
		{"grading all skipped", errOf(Grading(nil, logits, []int32{-1, -1}, 1)), "negative"},
		{"grading shape", errOf(Grading(tensor.New(3, 2), logits, []int32{0, 1}, 1)), "shape"},
	} {
		t.Run(c.name, func(t *testing.T) {
			assert.ErrorContains(t, c.err, c.want)
		})
	}
	// Outputs untouched on error.
	g := tensor.New(2, 3)
	g.Data()[0] = 42
	if _, err := Grading(g, bad, []int32{0, 1}, 1); err == nil || g.Data()[0] != 42 {
		t.Errorf("grad written on error: %v", g.Data())
	}
}

func errOf[T any](_ T, err error) error { return err }

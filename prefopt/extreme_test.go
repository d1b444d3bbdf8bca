package prefopt

import (
	"math"
	"strings"
	"testing"

	"github.com/posttrain/posttrain/tensor"
)

// All-equal logits of any finite magnitude: log p = −log V exactly. The
// probe found −2 then 0 at ≥ 1e16 and −Inf near 3e38 in TokenLogProbs, 0
// at 1e8 in Grading.
func TestAllEqualHugeLogits(t *testing.T) {
	const n, v = 2, 7
	want := float32(-math.Log(v))
	for _, mag := range []float32{1e4, 1e8, 1e16, 1e30, 3e38, math.MaxFloat32, -1e16, -math.MaxFloat32} {
		z := make([]float32, n*v)
		for i := range z {
			z[i] = mag
		}
		logits := tensor.FromSlice(z, n, v)
		dst := make([]float32, n)
		lse := make([]float64, n)
		if err := TokenLogProbsLSE(dst, lse, logits, []int32{3, 0}); err != nil {
			t.Fatalf("%g: %v", mag, err)
		}
		if dst[0] != want || dst[1] != want {
			t.Errorf("TokenLogProbs, logits all %g: %v, want %v", mag, dst, want)
		}
		if d := math.Abs(lse[0] - (float64(mag) + math.Log(v))); d > 1e-7*math.Abs(float64(mag))+1e-6 {
			t.Errorf("logits all %g: lse %v", mag, lse[0])
		}
		g := tensor.New(n, v)
		loss, err := Grading(g, logits, []int32{3, 0}, 2)
		if err != nil {
			t.Fatalf("Grading %g: %v", mag, err)
		}
		if math.Abs(loss-2*math.Log(v)) > 1e-12 {
			t.Errorf("Grading, logits all %g: %v, want 2·log 7 = %v", mag, loss, 2*math.Log(v))
		}
		if got, wantG := g.Data()[1], float32(2.0/v/n); math.Abs(float64(got-wantG)) > 1e-7 {
			t.Errorf("Grading, logits all %g: grad %v, want %v", mag, got, wantG)
		}
	}
}

func TestGradingErrors(t *testing.T) {
	if _, err := Grading(nil, nil, nil, 1); err == nil {
		t.Error("Grading(nil, nil): no error")
	}
	ninf := float32(math.Inf(-1))
	logits := tensor.FromSlice([]float32{0, 1, ninf, 2, 3, 4}, 2, 3)
	g := tensor.FromSlice([]float32{9, 9, 9, 9, 9, 9}, 2, 3)
	for _, c := range []struct {
		labels []int32
		lambda float64
		want   string
	}{
		{[]int32{2, 0}, 1, "−Inf at its label"}, // CrossEntropy rejects this too
		{[]int32{0, 1}, 1e308, "overflows"},
		{[]int32{0, 1}, math.MaxFloat32 * 4, "gradient scale"},
		{[]int32{0, 1}, math.Inf(1), "finite"},
	} {
		if _, err := Grading(g, logits, c.labels, c.lambda); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("labels %v λ %g: err = %v, want %q", c.labels, c.lambda, err, c.want)
		}
		if g.Data()[0] != 9 {
			t.Fatalf("labels %v λ %g: grad written on error", c.labels, c.lambda)
		}
	}
	// −Inf off the label masks a class and is fine.
	if loss, err := Grading(g, logits, []int32{1, 0}, 1); err != nil || !(loss > 0) || math.IsInf(loss, 0) {
		t.Errorf("masked class: %v, %v", loss, err)
	}
	// Without grad, only the loss must be finite.
	if _, err := Grading(nil, logits, []int32{0, 1}, math.MaxFloat32*4); err != nil {
		t.Errorf("λ past float32 without grad: %v", err)
	}
}

func TestExpandHuge(t *testing.T) {
	for _, lens := range [][]int{{math.MaxInt}, {math.MaxInt / 2, math.MaxInt / 2, 8}, {MaxExpand, 1}} {
		if _, err := Expand(make([]float64, len(lens)), lens); err == nil || !strings.Contains(err.Error(), "MaxExpand") {
			t.Errorf("lens %v: %v", lens, err)
		}
	}
}

func FuzzExpand(f *testing.F) {
	f.Add(int64(math.MaxInt64), int64(3))
	f.Add(int64(-1), int64(2))
	f.Fuzz(func(t *testing.T, a, b int64) {
		// Only lengths that are errors or small: a valid huge total would
		// allocate for real.
		if a >= 0 && a < 1<<20 && b >= 0 && b < 1<<20 || (a < 0 || b < 0) {
			out, err := Expand([]float64{1, 2}, []int{int(a), int(b)})
			if err == nil && len(out) != int(a+b) {
				t.Fatalf("%d + %d gave %d", a, b, len(out))
			}
			return
		}
		if a > MaxExpand || b > MaxExpand || a+b > MaxExpand || a+b < 0 {
			if _, err := Expand([]float64{1, 2}, []int{int(a), int(b)}); err == nil {
				t.Fatalf("lens %d, %d past MaxExpand: no error", a, b)
			}
		}
	})
}

// Rewards and advantages near float64's range: exact where representable,
// an error naming the entry where not. The probe: Reinforce and PPOClip
// gave −Inf, LeaveOneOut [−Inf −Inf], GRPO NaN, ShapeRewards +Inf.
func TestOnlineExtremes(t *testing.T) {
	big := 1e308
	adv, err := GRPO([]float64{big, -big, big, -big, big, -big}, 2, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range adv {
		want := math.Sqrt(0.5) * math.Copysign(1, []float64{1, -1}[i%2])
		if math.Abs(a-want) > 1e-15 {
			t.Fatalf("GRPO ±1e308 in pairs: %v, want ±1/√2", adv)
		}
	}
	adv, err = GRPO([]float64{big, -big, big, -big}, 4, 1e-4)
	if err != nil || math.Abs(adv[0]-math.Sqrt(3)/2) > 1e-15 || math.Abs(adv[1]+math.Sqrt(3)/2) > 1e-15 {
		t.Fatalf("GRPO k=4: %v, %v; want ±√3/2", adv, err)
	}
	if adv, err := LeaveOneOut([]float64{big, big, 1, 3}, 2); err != nil || adv[0] != 0 || adv[1] != 0 || adv[2] != -2 || adv[3] != 2 {
		t.Fatalf("LeaveOneOut equal 1e308 pair: %v, %v", adv, err)
	}
	if _, err := LeaveOneOut([]float64{1, 2, big, -big}, 2); err == nil || !strings.Contains(err.Error(), "rewards[2]") {
		t.Errorf("LeaveOneOut ±1e308: %v", err)
	}
	if _, err := Reinforce([]float64{-1, -2}, []float64{big, -big}, nil); err == nil || !strings.Contains(err.Error(), "entry 1") {
		t.Errorf("Reinforce ±1e308 rewards: %v", err)
	}
	// Large but representable: the mean of ±1e308·logp.
	res, err := Reinforce([]float64{-0.5, -0.5}, []float64{big, -big}, []float64{0, 0})
	if err != nil || res.Loss != 0 {
		t.Errorf("Reinforce with representable terms: %+v, %v", res, err)
	}
	if _, err := PPOClip([]float64{0, 1}, []float64{0, 0}, []float64{1, -big}, 0.2); err == nil || !strings.Contains(err.Error(), "adv[1]") {
		t.Errorf("PPOClip advantage −1e308 × ratio e: %v", err)
	}
	// Positive: the clip bounds the term; the mean of 1.2e308s is finite.
	if res, err := PPOClip([]float64{1, 1}, []float64{0, 0}, []float64{big, big}, 0.2); err != nil || math.Abs(res.Loss+1.2*big) > 1e294 {
		t.Errorf("PPOClip 1e308 clipped: %+v, %v", res, err)
	}
	if res, err := PPOClip([]float64{-0.1, 0}, []float64{0, 0}, []float64{big, big}, 0.2); err != nil || math.IsInf(res.Loss, 0) {
		t.Errorf("PPOClip 1e308 with ratio ≤ 1: %+v, %v", res, err)
	}
	if _, err := ShapeRewards([]float64{1, 2}, []float64{0, 1e9}, []float64{0, 0}, 1e300); err == nil || !strings.Contains(err.Error(), "entry 1") {
		t.Errorf("ShapeRewards β = 1e300: %v", err)
	}
}

// The fused backward with a saved log-sum-exp is exact at any magnitude
// too: (onehot − 1/V)·dlogp for all-equal logits.
func TestBackwardLSEHugeLogits(t *testing.T) {
	const v = 7
	for _, mag := range []float32{1e4, 1e16, 3e38, -1e30} {
		z := make([]float32, v)
		for i := range z {
			z[i] = mag
		}
		logits := tensor.FromSlice(z, 1, v)
		dst, lse := make([]float32, 1), make([]float64, 1)
		if err := TokenLogProbsLSE(dst, lse, logits, []int32{2}); err != nil {
			t.Fatal(err)
		}
		g := tensor.New(1, v)
		if err := TokenLogProbsBackwardLSE(g, logits, []int32{2}, []float32{1}, lse); err != nil {
			t.Fatal(err)
		}
		for k, x := range g.Data() {
			want := float32(-1.0 / v)
			if k == 2 {
				want += 1
			}
			if math.Abs(float64(x-want)) > 1e-6 {
				t.Errorf("logits all %g: grad[%d] = %v, want %v", mag, k, x, want)
			}
		}
	}
}

// grad shifted a row against the logits is an error; grad = logits works.
func TestGradOverlapPrefopt(t *testing.T) {
	const n, v = 2, 3
	mem := []float32{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0, 0, 0}
	logits := tensor.FromSlice(mem[:n*v], n, v)
	shifted := tensor.FromSlice(mem[v:], n, v)
	targets := []int32{0, 2}
	if err := TokenLogProbsBackward(shifted, logits, targets, []float32{1, 1}); err == nil || !strings.Contains(err.Error(), "overlaps") {
		t.Errorf("TokenLogProbsBackward, shifted grad: %v", err)
	}
	if _, err := Grading(shifted, logits, targets, 1); err == nil || !strings.Contains(err.Error(), "overlaps") {
		t.Errorf("Grading, shifted grad: %v", err)
	}
	want := tensor.New(n, v)
	if err := TokenLogProbsBackward(want, logits, targets, []float32{1, 1}); err != nil {
		t.Fatal(err)
	}
	if err := TokenLogProbsBackward(logits, logits, targets, []float32{1, 1}); err != nil {
		t.Fatal(err)
	}
	for i, x := range logits.Data() {
		if x != want.Data()[i] {
			t.Fatalf("in place differs at %d: %v vs %v", i, x, want.Data()[i])
		}
	}
}

// FuzzGroupSize fuzzes the group size and the rewards' magnitude of
// LeaveOneOut and GRPO: an error or finite advantages, never a panic.
func FuzzGroupSize(f *testing.F) {
	f.Add(2, 6, 1e308)
	f.Add(math.MaxInt, 4, 1.0)
	f.Add(-1, 0, 0.0)
	f.Fuzz(func(t *testing.T, k, n int, scale float64) {
		n = n % 64
		if n < 0 {
			n = -n
		}
		r := make([]float64, n)
		for i := range r {
			r[i] = scale * float64(i%3-1)
		}
		for name, fn := range map[string]func() ([]float64, error){
			"LeaveOneOut": func() ([]float64, error) { return LeaveOneOut(r, k) },
			"GRPO":        func() ([]float64, error) { return GRPO(r, k, 1e-4) },
		} {
			adv, err := fn()
			if err != nil {
				continue
			}
			for i, a := range adv {
				if math.IsNaN(a) || math.IsInf(a, 0) {
					t.Fatalf("%s(k = %d, scale %g): advantage %d is %v without an error", name, k, scale, i, a)
				}
			}
		}
	})
}

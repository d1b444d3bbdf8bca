package recipe

import (
	"context"
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/posttrain/posttrain/distill"
	"github.com/posttrain/posttrain/tensor"
	"github.com/posttrain/posttrain/tensor/nn"
)

// completionRows returns the logits rows (computed one unpadded sequence
// at a time) that predict the examples' completion tokens, and the labels.
func completionRows(t *testing.T, m *nn.Model, xs []Example) (*tensor.Dense, []int32) {
	v := m.Config.Vocab
	var data []float32
	var labels []int32
	for _, x := range xs {
		ids := append(slices.Clone(x.Prompt), x.Completion...)
		l, err := m.Logits(ids)
		if err != nil {
			t.Fatal(err)
		}
		for i := len(x.Prompt) - 1; i < len(ids)-1; i++ {
			data = append(data, l.Data()[i*v:(i+1)*v]...)
			labels = append(labels, ids[i+1])
		}
	}
	return tensor.FromSlice(data, len(labels), v), labels
}

func TestDistill(t *testing.T) {
	teacher, _ := nn.NewModel(testConfig, 40)
	pairs := randomPairs(6, 41)
	xs := make([]Example, len(pairs))
	for i, p := range pairs {
		xs[i] = Example{Prompt: p.Prompt, Completion: p.Chosen}
	}
	ctx := context.Background()
	tea, labels := completionRows(t, teacher, xs)
	// The first step's loss is the distill function on unbatched logits.
	for _, c := range []struct {
		loss DistillLoss
		want func(stu *tensor.Dense) (float64, error)
	}{
		{SoftTargetLoss{Temperature: 2}, func(stu *tensor.Dense) (float64, error) { return distill.SoftTarget(nil, stu, tea, 2) }},
		{JSDLoss{Beta: 0.5, Temperature: 1}, func(stu *tensor.Dense) (float64, error) { return distill.GeneralizedJSD(nil, stu, tea, 0.5, 1) }},
		{ConvexLoss{TeacherWeight: 0.9}, func(stu *tensor.Dense) (float64, error) {
			top := make([]int32, len(labels))
			for r := range top {
				top[r] = int32(tensor.ArgMax(tea.Row(r)))
			}
			return distill.ConvexCombination(nil, stu, labels, top, 0.9)
		}},
	} {
		student, _ := nn.NewModel(testConfig, 42)
		stu, _ := completionRows(t, student, xs)
		want, err := c.want(stu)
		if err != nil {
			t.Fatal(err)
		}
		d := &Distill{Student: student, Teacher: teacher, Loss: c.loss, Config: Config{Steps: 30, Batch: 6, LR: 1e-2, EvalEvery: 30}}
		h, err := d.Train(ctx, xs, xs)
		if err != nil {
			t.Fatal(err)
		}
		if got := h[0].Metrics["loss"]; math.Abs(got-want) > 1e-5*max(1, want) {
			t.Errorf("%T: first loss %v, unbatched %v", c.loss, got, want)
		}
		if last, _ := h.Last("eval_loss"); !(last < 0.8*want) {
			t.Errorf("%T: eval loss %v after training from %v", c.loss, last, want)
		}
	}
	// A cached teacher gives the live teacher's loss up to bfloat16.
	path := filepath.Join(t.TempDir(), "teacher.cache")
	c, err := PrecomputeTeacher(ctx, teacher, xs, 8, 4, true, 0, path)
	if err != nil {
		t.Fatal(err)
	}
	first := func(d *Distill) float64 {
		d.Config = Config{Steps: 1, Batch: 6, LR: 1e-9}
		h, err := d.Train(ctx, xs, nil)
		if err != nil {
			t.Fatal(err)
		}
		return h[0].Metrics["loss"]
	}
	sparse := SparseKLLoss{K: 8, Leftover: distill.Bucket, Alpha: 0.7}
	s1, _ := nn.NewModel(testConfig, 43)
	s2, _ := nn.NewModel(testConfig, 43)
	live, cached := first(&Distill{Student: s1, Teacher: teacher, Loss: sparse}), first(&Distill{Student: s2, Cache: c, Loss: sparse})
	if math.Abs(live-cached) > 1e-2*live {
		t.Errorf("SparseKL: live teacher %v, cache %v", live, cached)
	}
	c1, _ := PrecomputeTeacher(ctx, teacher, xs, 1, 3, false, 0, filepath.Join(t.TempDir(), "top1.cache"))
	s3, _ := nn.NewModel(testConfig, 43)
	s4, _ := nn.NewModel(testConfig, 43)
	live, cached = first(&Distill{Student: s3, Teacher: teacher, Loss: ConvexLoss{0.9}}), first(&Distill{Student: s4, Cache: c1, Loss: ConvexLoss{0.9}})
	if live != cached {
		t.Errorf("Convex: live teacher %v, top-1 cache %v", live, cached)
	}
	if _, err := OpenTeacherCache(path, xs[1:]); err == nil {
		t.Error("a cache for other examples was accepted")
	}
}

// TestPrecomputeTop1: the cache holds the teacher's argmax of every
// position of every whole window.
func TestPrecomputeTop1(t *testing.T) {
	teacher, _ := nn.NewModel(testConfig, 50)
	tokens := randomPairs(1, 51)[0].Prompt
	for len(tokens) < 70 {
		tokens = append(tokens, randomPairs(1, uint64(len(tokens)))[0].Chosen...)
	}
	const seq = 16
	got, err := PrecomputeTop1(context.Background(), teacher, tokens, seq, filepath.Join(t.TempDir(), "top1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != (len(tokens)/seq)*seq {
		t.Fatalf("%d predictions for %d tokens", len(got), len(tokens))
	}
	for w := 0; w+seq <= len(got); w += seq {
		l, _ := teacher.Logits(tokens[w : w+seq])
		for i := range seq {
			if want := int32(tensor.ArgMax(l.Row(i))); got[w+i] != want {
				t.Fatalf("token %d: %d, teacher argmax %d", w+i, got[w+i], want)
			}
		}
	}
}

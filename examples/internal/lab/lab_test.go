package lab

import (
	"context"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/posttrain/posttrain/prefopt"
	"github.com/posttrain/posttrain/tensor"
	"github.com/posttrain/posttrain/tensor/autograd"
	"github.com/posttrain/posttrain/tensor/nn"
)

func tinyLM(t *testing.T, seed uint64) *nn.TinyLM {
	t.Helper()
	m, err := nn.NewTinyLM(nn.Config{Vocab: 256, DModel: 16, Layers: 2, Heads: 2, Context: 32, Hidden: 24}, seed)
	require.NoError(t, err)
	// Random weights of N(0, 0.02) give near-uniform outputs; scale them
	// up so that the checks below see non-trivial logits.
	for _, p := range m.Params() {
		tensor.Scale(p.Var.Value.Data(), 20, p.Var.Value.Data())
	}
	return m
}

// LogProbsOf must sum the response tokens' log-probs and nothing else:
// checked against log-softmax of the model's own logits.
func TestLogProbsOf(t *testing.T) {
	m := tinyLM(t, 2)
	ps, rs := []string{"the Rays ", "of"}, []string{"of Light", "Colours!"}
	lp, err := LogProbsOf(m, ps, rs)
	require.NoError(t, err)
	var tok nn.ByteTokenizer
	for b := range ps {
		ids := tok.Encode(ps[b] + rs[b])
		logits, err := m.Logits(ids)
		require.NoError(t, err)
		var sum float64
		for j := len(ps[b]) - 1; j < len(ids)-1; j++ {
			ls := make([]float32, 256)
			tensor.LogSoftmax(ls, logits.Data()[j*256:(j+1)*256])
			sum += float64(ls[ids[j+1]])
		}
		if math.Abs(sum-lp[b]) > 1e-4*math.Abs(sum) {
			t.Errorf("sequence %d: log-prob %g, direct sum %g", b, lp[b], sum)
		}
	}
}

func TestOracle(t *testing.T) {
	var o Oracle
	for _, c := range []struct {
		s    string
		want float64
	}{
		{"the red and blue Rays of Light", 4},
		{"redden the coloured", 1}, // whole words only
		{"LIGHT, light;light", 3},
		{"", 0},
	} {
		assert.Equal(t, c.want, o.Reward(c.s), "Reward(%q)", c.s)
	}
	for _, c := range []struct {
		a, b    string
		preferA bool
		level   prefopt.Level
	}{
		{"red green", "the Glass", true, prefopt.SignificantlyBetter},
		{"the Glass", "a red Glass", false, prefopt.Better},
		{"the Glass of", "#$% ^&*()!", true, prefopt.SlightlyBetter},
		{"the Glass of", "the Glass,of", true, prefopt.NegligiblyBetter},
	} {
		p := o.Prefer(c.a, c.b)
		assert.Equal(t, c.preferA, p.PreferA, "Prefer(%q, %q)", c.a, c.b)
		assert.Equal(t, c.level, p.Level, "Prefer(%q, %q)", c.a, c.b)
	}
	pairs := LabelSamples([]string{"p"}, [][]string{{"x", "x", "red", "y"}}, 10, 1)
	for _, p := range pairs {
		assert.NotEqual(t, p.Chosen, p.Rejected, "identical responses paired")
	}
	assert.Len(t, pairs, 3, "pairs from 3 distinct responses")
}

// Generation is a pure function of (prompt, seed), printable ASCII only.
func TestGen(t *testing.T) {
	p := Gen(tinyLM(t, 3), 12)
	a, err := p.Generate(context.Background(), "the Rays", []uint64{1, 2, 1})
	require.NoError(t, err)
	assert.Equal(t, a[0], a[2], "the same seed twice")
	for _, s := range a {
		assert.Len(t, s, 12, "response %q", s)
		for i := 0; i < len(s); i++ {
			if (s[i] < ' ' && s[i] != '\n') || s[i] > '~' {
				t.Errorf("response %q holds byte %#x", s, s[i])
			}
		}
	}
	b, err := Sample(context.Background(), p, []string{"a", "the Rays"}, 2, 7)
	require.NoError(t, err)
	c, _ := Sample(context.Background(), p, []string{"a", "the Rays"}, 2, 7)
	assert.Equal(t, b[1], c[1], "Sample is not reproducible")
}

// The cache must hold the teacher's argmax for every position.
func TestPrecomputeTop1(t *testing.T) {
	m := tinyLM(t, 4)
	var tok nn.ByteTokenizer
	ids := tok.Encode(strings.Repeat("Light and Colours; ", 5))
	const seq = 16
	top1, err := PrecomputeTop1(context.Background(), m, ids, seq, filepath.Join(t.TempDir(), "c"), Bar{})
	require.NoError(t, err)
	n := len(ids) / seq * seq
	require.Len(t, top1, n, "a prediction per token")
	tp := autograd.NewTape()
	logits, err := m.Forward(tp, ids[:n], n/seq)
	require.NoError(t, err)
	for i := range n {
		if want := tensor.ArgMax(logits.Value.Data()[i*256 : (i+1)*256]); int(top1[i]) != want {
			t.Fatalf("position %d: cache %d, argmax %d", i, top1[i], want)
		}
	}
}

// A reward model trained on oracle-labeled pairs must rank held-out
// pairs better than chance on an easy version of the task.
func TestRewardModelLearns(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a model")
	}
	m, err := nn.NewTinyLM(nn.Config{Vocab: 256, DModel: 16, Layers: 1, Heads: 2, Context: 32, Hidden: 16}, 5)
	require.NoError(t, err)
	words := []string{"red", "the", "blue", "of", "green", "and", "Light", "by"}
	var train, test []prefopt.Pair
	var o Oracle
	for i := range 80 {
		a := words[i%8] + " " + words[(i/8)%8]
		b := words[(i+3)%8] + " " + words[(i/3)%8]
		if a == b || o.Reward(a) == o.Reward(b) {
			continue
		}
		p := o.PairOf("p ", a, b)
		if i%4 == 0 {
			test = append(test, p)
		} else {
			train = append(train, p)
		}
	}
	rm := NewRewardModel(m)
	_, err = TrainReward(context.Background(), rm, train, RewardConfig{Steps: 60, Batch: 16, LR: 1e-2, Seed: 1}, Bar{})
	require.NoError(t, err)
	acc, _, err := Accuracy(rm, test)
	require.NoError(t, err)
	t.Logf("held-out accuracy %.2f on %d pairs (%d training)", acc, len(test), len(train))
	assert.GreaterOrEqual(t, acc, 0.75, "held-out accuracy on %d pairs", len(test))
}

// TrainLM must line the teacher's predictions up with the labels: with a
// "teacher" that predicts the true next token everywhere, the convex
// combination is cross-entropy exactly, so the two runs must agree step
// for step (a misaligned window would make them differ).
func TestTrainLMTeacherAlignment(t *testing.T) {
	var tok nn.ByteTokenizer
	ids := tok.Encode(strings.Repeat("the Rays of Light are refracted; ", 12))
	perfect := ids[1:]
	cfg := LMConfig{Steps: 3, Batch: 2, Seq: 16, LR: 1e-2, Seed: 3}
	a, b := tinyLM(t, 6), tinyLM(t, 6)
	ce, err := TrainLM(context.Background(), a, ids, cfg, Bar{})
	require.NoError(t, err)
	cfg.Teacher, cfg.TeacherWeight = perfect, 0.9
	cc, err := TrainLM(context.Background(), b, ids, cfg, Bar{})
	require.NoError(t, err)
	for i := range ce.Loss {
		assert.InEpsilon(t, ce.Loss[i], cc.Loss[i], 1e-9, "step %d: convex combination with a perfect teacher against cross-entropy", i)
	}
	// And a teacher shifted by one token must not agree.
	cfg.Teacher = ids[2:]
	sh, err := TrainLM(context.Background(), tinyLM(t, 6), ids, cfg, Bar{})
	require.NoError(t, err)
	assert.NotEqual(t, ce.Loss[0], sh.Loss[0], "a misaligned teacher gave the cross-entropy loss")
}

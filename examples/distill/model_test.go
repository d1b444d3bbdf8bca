package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/posttrain/posttrain/examples/internal/lab"
	"github.com/posttrain/posttrain/examples/internal/labtest"
	"github.com/posttrain/posttrain/tensor/nn/hf"
)

// checkpoint writes a random model of lab.TinyConfig with hidden width
// in Hugging Face layout.
func checkpoint(t *testing.T, hidden int, seed uint64) string {
	cfg := lab.TinyConfig
	cfg.Hidden = hidden
	return labtest.Checkpoint(t, cfg, seed)
}

// TestModelDistill runs the -teacher -quick path with every target, into
// a pruned copy of the teacher and into a separate student: the student
// directory loads with its tokenizer at the student's shape, the report
// names the three rows, and the afm run is reproducible.
func TestModelDistill(t *testing.T) {
	teacher := checkpoint(t, 64, 7)
	data := labtest.Chat(t, 12)
	for _, x := range []struct{ loss, student string }{{"afm", ""}, {"topk", ""}, {"soft", ""}, {"jsd", ""}, {"ce", ""}, {"afm", checkpoint(t, 16, 8)}} {
		t.Run(x.loss+map[bool]string{true: "-student", false: "-prune"}[x.student != ""], func(t *testing.T) {
			c := modelDefaults()
			c.quick()
			c.Teacher, c.Student, c.Data, c.Loss, c.K = teacher, x.student, data, x.loss, 4
			var weights [2][]byte
			for i := range weights {
				c.Out = filepath.Join(t.TempDir(), "out")
				var w bytes.Buffer
				_, err := runModel(context.Background(), c, &w)
				require.NoError(t, err)
				for _, s := range []string{"11 records for training, 1 held out", "teacher", "student before", "student after " + x.loss} {
					assert.Contains(t, w.String(), s)
				}
				assert.NotContains(t, w.String(), "NaN")
				m, err := hf.LoadModel(c.Out)
				require.NoError(t, err)
				want := 32
				if x.student != "" {
					want = 16
				}
				assert.Equal(t, want, m.Config.Hidden)
				_, err = hf.LoadTokenizer(c.Out)
				require.NoError(t, err)
				weights[i], err = os.ReadFile(filepath.Join(c.Out, "model.safetensors"))
				require.NoError(t, err)
				if x.loss != "afm" || x.student != "" {
					break
				}
			}
			if weights[1] != nil {
				assert.Equal(t, weights[0], weights[1], "two runs with one seed wrote different students")
			}
		})
	}
}

// TestModelLearns: AFM's target with enough steps brings the pruned
// student's held-out loss below where it started.
func TestModelLearns(t *testing.T) {
	c := modelDefaults()
	c.quick()
	c.Teacher, c.Data, c.Out, c.Prune = checkpoint(t, 64, 7), labtest.Chat(t, 12), filepath.Join(t.TempDir(), "out"), 0.25
	c.Steps, c.LR = 20, 1e-2
	h, err := runModel(context.Background(), c, &bytes.Buffer{})
	require.NoError(t, err)
	first := h[0].Metrics["loss"]
	last, _ := h.Last("loss")
	assert.Less(t, last, first/2, "training loss, last step vs first")
}

// TestModelErrors: bad input is an error naming it, and no student is
// written.
func TestModelErrors(t *testing.T) {
	teacher := checkpoint(t, 64, 7)
	cfg := lab.TinyConfig
	cfg.Vocab = 300
	other := labtest.Checkpoint(t, cfg, 3)
	for _, x := range []struct {
		name   string
		change func(*modelConfig)
		want   string
	}{
		{"no data", func(c *modelConfig) { c.Data = "" }, "-data"},
		{"bad loss", func(c *modelConfig) { c.Loss = "mse" }, `-loss "mse"`},
		{"bad prune", func(c *modelConfig) { c.Prune = 1.5 }, "-prune 1.5"},
		{"other vocabulary", func(c *modelConfig) { c.Student = other }, "vocabulary 300"},
		{"no teacher", func(c *modelConfig) { c.Teacher = filepath.Join(teacher, "nope") }, "nope"},
	} {
		t.Run(x.name, func(t *testing.T) {
			c := modelDefaults()
			c.quick()
			c.Teacher, c.Data, c.Out = teacher, labtest.Chat(t, 4), filepath.Join(t.TempDir(), "out")
			x.change(&c)
			_, err := runModel(context.Background(), c, &bytes.Buffer{})
			require.Error(t, err)
			assert.Contains(t, err.Error(), x.want)
			assert.NoFileExists(t, filepath.Join(c.Out, "model.safetensors"))
		})
	}
}

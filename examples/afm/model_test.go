package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/posttrain/posttrain/examples/internal/lab"
	"github.com/posttrain/posttrain/examples/internal/labtest"
	"github.com/posttrain/posttrain/tensor/nn/hf"
)

// TestModel runs the -model -quick path on a tiny random checkpoint in
// Hugging Face layout: every stage reports, the student and the best
// member load back as model directories, and a second run with the same
// seed prints the same report.
func TestModel(t *testing.T) {
	dir := labtest.Checkpoint(t, lab.TinyConfig, 7)
	data := labtest.Chat(t, 12)
	var logs [2]string
	for i := range logs {
		c := modelDefaults()
		c.quick()
		c.Model, c.Data, c.Out, c.NoTimes = dir, data, filepath.Join(t.TempDir(), "out"), true
		var w bytes.Buffer
		st, err := runModel(context.Background(), c, &w)
		require.NoError(t, err)
		logs[i] = strings.ReplaceAll(w.String(), c.Out, "OUT")
		for _, s := range []string{"Stages 1–2.", "student, distilled", "Stages 3–4. iTeC", "r1-dpo", "r1-ipo", "r1-rejection-sampling", "r1-online-rl", "Best member"} {
			assert.Contains(t, w.String(), s)
		}
		assert.NotContains(t, w.String(), "NaN")
		assert.Len(t, st.History, 1)
		for _, d := range []string{"student", "best"} {
			m, err := hf.LoadModel(filepath.Join(c.Out, d))
			require.NoError(t, err)
			assert.Equal(t, lab.TinyConfig.Hidden/2, m.Config.Hidden)
			_, err = hf.LoadTokenizer(filepath.Join(c.Out, d))
			require.NoError(t, err)
		}
	}
	assert.Equal(t, logs[0], logs[1], "two runs with one seed differ")
}

// TestModelErrors: bad input is an error naming it.
func TestModelErrors(t *testing.T) {
	dir := labtest.Checkpoint(t, lab.TinyConfig, 7)
	few := labtest.Chat(t, 3)
	for _, x := range []struct {
		name   string
		change func(*modelConfig)
		want   string
	}{
		{"no data", func(c *modelConfig) { c.Data = "" }, "-data"},
		{"too few records", func(c *modelConfig) { c.Data = few }, "3 records"},
		{"bad prune", func(c *modelConfig) { c.Prune = 0 }, "-prune 0"},
		{"no model", func(c *modelConfig) { c.Model = filepath.Join(dir, "nope") }, "nope"},
	} {
		t.Run(x.name, func(t *testing.T) {
			c := modelDefaults()
			c.quick()
			c.Model, c.Data, c.Out = dir, few, filepath.Join(t.TempDir(), "out")
			x.change(&c)
			_, err := runModel(context.Background(), c, &bytes.Buffer{})
			require.Error(t, err)
			assert.Contains(t, err.Error(), x.want)
		})
	}
}

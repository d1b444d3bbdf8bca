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
	"github.com/posttrain/posttrain/tensor/nn"
	"github.com/posttrain/posttrain/tensor/nn/hf"
)

// TestSmoke runs the TinyLM demonstration at toy size: both rows, no
// NaN, the table written, the same table from a second run.
func TestSmoke(t *testing.T) {
	cfg := defaults()
	cfg.quick()
	cfg.Bytes = 30_000
	cfg.Model = nn.Config{Vocab: 256, DModel: 16, Layers: 1, Heads: 2, Context: 64, Hidden: 32}
	cfg.BaseSteps, cfg.Steps, cfg.Prompts, cfg.Test = 4, 3, 8, 4
	var a, b bytes.Buffer
	cfg.Out = filepath.Join(t.TempDir(), "a")
	require.NoError(t, run(context.Background(), cfg, &a))
	assert.Contains(t, a.String(), "after SFT")
	assert.NotContains(t, a.String(), "NaN")
	assert.FileExists(t, filepath.Join(cfg.Out, "results.md"))
	cfg.Out = filepath.Join(t.TempDir(), "b")
	require.NoError(t, run(context.Background(), cfg, &b))
	assert.Equal(t, a.String(), b.String(), "two runs with one seed differ")
}

// TestModelFull runs the -model -quick path with full fine-tuning: the
// written directory loads as a model with its tokenizer, differs from
// the base, and a second run with one seed writes the same weights.
func TestModelFull(t *testing.T) {
	dir := labtest.Checkpoint(t, lab.TinyConfig, 7)
	c := modelDefaults()
	c.quick()
	c.Model, c.Data = dir, labtest.Chat(t, 12)
	var outs [2][]byte
	for i := range outs {
		c.Out = filepath.Join(t.TempDir(), "out")
		var w bytes.Buffer
		_, err := runModel(context.Background(), c, &w)
		require.NoError(t, err)
		assert.Contains(t, w.String(), "11 records for training, 1 held out")
		assert.Contains(t, w.String(), "held out: loss")
		assert.NotContains(t, w.String(), "NaN")
		outs[i], err = os.ReadFile(filepath.Join(c.Out, "model.safetensors"))
		require.NoError(t, err)
	}
	assert.Equal(t, outs[0], outs[1], "two runs with one seed wrote different weights")
	m, err := hf.LoadModel(c.Out)
	require.NoError(t, err)
	_, err = hf.LoadTokenizer(c.Out)
	require.NoError(t, err)
	base, err := hf.LoadModel(dir)
	require.NoError(t, err)
	ids := []int32{261, 'h', 'i', 262}
	a, err := m.Logits(ids)
	require.NoError(t, err)
	b, err := base.Logits(ids)
	require.NoError(t, err)
	assert.NotEqual(t, a.Data(), b.Data(), "the tuned model computes what the base does")
}

// TestModelLoRA: with -lora, a PEFT adapter is written, it loads onto
// the base, and enough steps lower the held-out loss.
func TestModelLoRA(t *testing.T) {
	dir := labtest.Checkpoint(t, lab.TinyConfig, 7)
	c := modelDefaults()
	c.quick()
	c.Model, c.Data, c.Out, c.LoRA = dir, labtest.Chat(t, 12), filepath.Join(t.TempDir(), "out"), 4
	c.Steps, c.LR = 20, 1e-2
	var w bytes.Buffer
	h, err := runModel(context.Background(), c, &w)
	require.NoError(t, err)
	require.FileExists(t, filepath.Join(c.Out, hf.AdapterWeightsFile))
	assert.NoFileExists(t, filepath.Join(c.Out, "model.safetensors"))
	m, err := hf.LoadModel(dir)
	require.NoError(t, err)
	require.NoError(t, hf.LoadAdapter(m, c.Out))
	assert.Equal(t, 7*2, len(m.LoRA().Modules), "seven projections in each of 2 layers")
	first := h[0].Metrics["loss"]
	last, ok := h.Last("eval_loss")
	require.True(t, ok)
	assert.Less(t, last, first, "held-out loss after training vs the first step's training loss")
}

// TestModelErrors: bad input is an error naming it, and nothing is
// written.
func TestModelErrors(t *testing.T) {
	dir := labtest.Checkpoint(t, lab.TinyConfig, 7)
	bad := filepath.Join(t.TempDir(), "bad.jsonl")
	require.NoError(t, os.WriteFile(bad, []byte(`{"prompt": "a", "completion": "b"}`+"\n"+`{"prompt": "a"}`+"\n"), 0o644))
	for _, x := range []struct {
		name   string
		change func(*modelConfig)
		want   string
	}{
		{"no data", func(c *modelConfig) { c.Data = "" }, "-data"},
		{"missing data", func(c *modelConfig) { c.Data = filepath.Join(dir, "none.jsonl") }, "none.jsonl"},
		{"bad record", func(c *modelConfig) { c.Data = bad }, "line 2"},
		{"bad rank", func(c *modelConfig) { c.LoRA = -1 }, "-lora -1"},
		{"no model", func(c *modelConfig) { c.Model = filepath.Join(dir, "nope") }, "nope"},
	} {
		t.Run(x.name, func(t *testing.T) {
			c := modelDefaults()
			c.quick()
			c.Model, c.Data, c.Out = dir, bad, filepath.Join(t.TempDir(), "out")
			x.change(&c)
			_, err := runModel(context.Background(), c, &bytes.Buffer{})
			require.Error(t, err)
			assert.Contains(t, err.Error(), x.want)
			assert.NoDirExists(t, c.Out)
		})
	}
}

package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/posttrain/posttrain/examples/internal/lab"
	"github.com/posttrain/posttrain/examples/internal/labtest"
	"github.com/posttrain/posttrain/tensor/nn/hf"
)

// prefs writes n preference records to a JSONL file, alternating TRL's
// plain and conversational formats.
func prefs(t *testing.T, n int) string {
	t.Helper()
	var b strings.Builder
	for i := range n {
		if i%2 == 0 {
			b.WriteString(`{"prompt": "the colour of light is", "chosen": " refracted into a spectrum", "rejected": " of no concern"}` + "\n")
		} else {
			b.WriteString(`{"prompt": [{"role": "user", "content": "what is a prism?"}], "chosen": [{"role": "assistant", "content": "glass that bends light"}], "rejected": [{"role": "assistant", "content": "no idea"}]}` + "\n")
		}
	}
	p := filepath.Join(t.TempDir(), "prefs.jsonl")
	require.NoError(t, os.WriteFile(p, []byte(b.String()), 0o644))
	return p
}

// TestModelDPO runs the -model -quick path on a tiny random checkpoint:
// it writes a PEFT adapter that loads back onto a fresh load of the
// model and changes its logits, and a second run with the same seed
// writes the same adapter.
func TestModelDPO(t *testing.T) {
	dir := labtest.Checkpoint(t, lab.TinyConfig, 7)
	c := modelDefaults()
	c.Model, c.Data, c.LoRA = dir, prefs(t, 12), 4
	c.quick()
	var outs [2][]byte
	for i := range outs {
		c.Out = filepath.Join(t.TempDir(), "out")
		var w bytes.Buffer
		_, err := runModel(context.Background(), c, &w)
		require.NoError(t, err)
		assert.Contains(t, w.String(), "11 pairs for training, 1 held out")
		assert.Contains(t, w.String(), "held out: loss")
		assert.NotContains(t, w.String(), "NaN")
		for _, f := range []string{hf.AdapterConfigFile, hf.AdapterWeightsFile, filepath.Join("run", "metrics.jsonl")} {
			require.FileExists(t, filepath.Join(c.Out, f))
		}
		outs[i], err = os.ReadFile(filepath.Join(c.Out, hf.AdapterWeightsFile))
		require.NoError(t, err)
	}
	assert.Equal(t, outs[0], outs[1], "two runs with one seed wrote different adapters")

	// Started again on the same -out, the run resumes from its finished
	// checkpoint and writes the same adapter.
	var w bytes.Buffer
	_, err := runModel(context.Background(), c, &w)
	require.NoError(t, err)
	assert.Contains(t, w.String(), "resumed at step 3")
	again, err := os.ReadFile(filepath.Join(c.Out, hf.AdapterWeightsFile))
	require.NoError(t, err)
	assert.Equal(t, outs[1], again, "the resumed run wrote a different adapter")

	m, err := hf.LoadModel(dir)
	require.NoError(t, err)
	require.NoError(t, hf.LoadAdapter(m, c.Out))
	a := m.LoRA()
	require.NotNil(t, a)
	assert.Equal(t, 4, a.Config.Rank)
	assert.Equal(t, 8.0, a.Config.Alpha)
	assert.Len(t, a.Modules, 2*4, "q, k, v, o in each of 2 layers")
	ids := []int32{261, 'h', 'i', 262}
	on, err := m.Logits(ids)
	require.NoError(t, err)
	a.Enable(false)
	off, err := m.Logits(ids)
	require.NoError(t, err)
	assert.NotEqual(t, on.Data(), off.Data(), "the trained adapter leaves the logits unchanged")
}

// TestModelLearns: with enough steps and a large learning rate, the
// adapters learn the preference — the held-out DPO loss falls below its
// starting value log 2 (the adapters start as the identity: B = 0) and
// the held-out pairs are ranked right.
func TestModelLearns(t *testing.T) {
	c := modelDefaults()
	c.quick()
	c.Model, c.Data, c.Out, c.LoRA = labtest.Checkpoint(t, lab.TinyConfig, 7), prefs(t, 12), filepath.Join(t.TempDir(), "out"), 4
	c.Steps, c.LR = 30, 1e-2
	h, err := runModel(context.Background(), c, &bytes.Buffer{})
	require.NoError(t, err)
	loss, ok := h.Last("eval_loss")
	require.True(t, ok, "no held-out loss logged")
	assert.Less(t, loss, 0.6, "held-out DPO loss, log 2 = 0.693 before training")
	acc, _ := h.Last("eval_rewards/accuracies")
	assert.Equal(t, 1.0, acc)
}

// TestModelErrors: bad input is an error naming it, and no adapter is
// written.
func TestModelErrors(t *testing.T) {
	dir := labtest.Checkpoint(t, lab.TinyConfig, 7)
	bad := filepath.Join(t.TempDir(), "bad.jsonl")
	require.NoError(t, os.WriteFile(bad, []byte(`{"prompt": "a", "chosen": "b", "rejected": "c"}`+"\n"+`{"prompt": "a", "chosen": "b"}`+"\n"), 0o644))
	for _, x := range []struct {
		name   string
		change func(*modelConfig)
		want   string
	}{
		{"no data", func(c *modelConfig) { c.Data = "" }, "-data"},
		{"missing data", func(c *modelConfig) { c.Data = filepath.Join(dir, "none.jsonl") }, "none.jsonl"},
		{"bad record", func(c *modelConfig) { c.Data = bad }, "line 2"},
		{"bad rank", func(c *modelConfig) { c.LoRA = 0 }, "-lora 0"},
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
			assert.NoFileExists(t, filepath.Join(c.Out, hf.AdapterWeightsFile))
		})
	}
}

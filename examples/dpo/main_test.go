package main

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/posttrain/posttrain/tensor/nn"
)

// TestSmoke runs the comparison at toy size: a row per objective, no NaN,
// the files written, and the same table from a second run.
func TestSmoke(t *testing.T) {
	cfg := defaults()
	cfg.quick()
	cfg.Bytes = 20_000
	cfg.Model = nn.Config{Vocab: 256, DModel: 16, Layers: 1, Heads: 2, Context: 48, Hidden: 32}
	cfg.BaseSteps, cfg.Steps, cfg.Prompts, cfg.Test, cfg.Len, cfg.PromptLen = 4, 3, 6, 4, 8, 16
	dir := t.TempDir()
	var a, b bytes.Buffer
	cfg.Out = filepath.Join(dir, "a")
	require.NoError(t, run(context.Background(), cfg, &a))
	for _, s := range []string{"DPO", "IPO", "SimPO"} {
		assert.Contains(t, a.String(), s)
	}
	assert.NotContains(t, a.String(), "NaN")
	for _, f := range []string{"results.md", "curves.png"} {
		assert.FileExists(t, filepath.Join(cfg.Out, f))
	}
	cfg.Out = filepath.Join(dir, "b")
	require.NoError(t, run(context.Background(), cfg, &b))
	assert.Equal(t, a.String(), b.String(), "two runs with one seed differ")
}

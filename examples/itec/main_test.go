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

// TestSmoke runs two committee rounds at toy size: a row per round, every
// algorithm trained, no NaN, and the same table from a second run.
func TestSmoke(t *testing.T) {
	cfg := defaults()
	cfg.quick()
	cfg.Bytes = 20_000
	cfg.Model = nn.Config{Vocab: 256, DModel: 16, Layers: 1, Heads: 2, Context: 48, Hidden: 32}
	cfg.BaseSteps, cfg.Prompts, cfg.Test, cfg.Len, cfg.PromptLen = 4, 4, 3, 8, 16
	cfg.TuneSteps, cfg.RewardSteps, cfg.RLIters, cfg.RLBatch = 2, 3, 1, 2
	dir := t.TempDir()
	var a, b bytes.Buffer
	cfg.Out = filepath.Join(dir, "a")
	require.NoError(t, run(context.Background(), cfg, &a))
	out := a.String()
	for _, s := range []string{"r1-rejection-sampling", "r1-dpo", "r1-ipo", "r1-online-rl", "r2-online-rl"} {
		assert.Contains(t, out, s)
	}
	assert.NotContains(t, out, "NaN")
	cfg.Out = filepath.Join(dir, "b")
	require.NoError(t, run(context.Background(), cfg, &b))
	assert.Equal(t, a.String(), b.String(), "two runs with one seed differ")
}

package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/posttrain/posttrain/tensor/nn"
)

// TestSmoke runs the comparison at toy size: a row per student, no NaN,
// the cache and plot written, and the same table from a second run.
func TestSmoke(t *testing.T) {
	cfg := defaults()
	cfg.quick()
	cfg.Bytes = 20_000
	cfg.Model = nn.Config{Vocab: 256, DModel: 16, Layers: 1, Heads: 2, Context: 32, Hidden: 32}
	cfg.StudentFFN, cfg.TeacherSteps, cfg.StudentSteps = 8, 5, 3
	dir := t.TempDir()
	var a, b bytes.Buffer
	cfg.Out = filepath.Join(dir, "a")
	require.NoError(t, run(context.Background(), cfg, &a))
	for _, s := range []string{"teacher", "student w=0 ", "student w=0.9"} {
		assert.Contains(t, a.String(), s)
	}
	assert.NotContains(t, a.String(), "NaN")
	for _, f := range []string{"teacher-top1.cache", "results.md", "curves.png"} {
		assert.FileExists(t, filepath.Join(cfg.Out, f))
	}
	cfg.Out = filepath.Join(dir, "b")
	require.NoError(t, run(context.Background(), cfg, &b))
	// The cache's path differs; the numbers must not.
	assert.Equal(t, strings.ReplaceAll(a.String(), filepath.Join(dir, "a"), ""), strings.ReplaceAll(b.String(), filepath.Join(dir, "b"), ""),
		"two runs with one seed differ")
}

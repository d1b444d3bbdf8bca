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

// tiny is every stage at toy size, for the smoke test.
func tiny(out string) config {
	c := defaults()
	c.quick()
	c.Out = out
	c.NoTimes = true
	c.Bytes = 30_000
	c.Model = nn.Config{Vocab: 256, DModel: 16, Layers: 1, Heads: 2, Context: 48, Hidden: 32}
	c.StudentFFN, c.Seq, c.Batch = 8, 32, 4
	c.TeacherSteps, c.StudentSteps, c.EvalSeqs = 4, 3, 4
	c.PromptLen, c.RespLen = 16, 8
	c.TrainPrompts, c.TestPrompts, c.Samples = 6, 4, 3
	c.RewardSteps, c.ITeCPrompts, c.TuneSteps = 3, 4, 2
	c.RLIters, c.RLPrompts, c.FinalIters, c.EvalSamples = 1, 2, 2, 2
	return c
}

// TestSmoke runs all five stages at toy size and checks the report: a
// row per stage and round, no NaN, the files written, and the same
// table from a second run with the same seed.
func TestSmoke(t *testing.T) {
	dir := t.TempDir()
	var a bytes.Buffer
	_, err := run(context.Background(), tiny(filepath.Join(dir, "a")), &a)
	require.NoError(t, err)
	out := a.String()
	for _, s := range []string{"1 pre-train", "2 distill", "3 reward", "4 round 1", "4 round 2", "5 MDLOO"} {
		assert.Contains(t, out, s)
	}
	assert.NotContains(t, out, "NaN")
	assert.NotContains(t, out, "Inf")
	for _, f := range []string{"results.md", "curves.png", "teacher.safetensors", "student.safetensors", "final.safetensors", "teacher-top1.cache"} {
		assert.FileExists(t, filepath.Join(dir, "a", f))
	}
	var b bytes.Buffer
	_, err = run(context.Background(), tiny(filepath.Join(dir, "b")), &b)
	require.NoError(t, err)
	assert.Equal(t, a.String(), b.String(), "two runs with one seed differ")
}

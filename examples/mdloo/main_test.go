package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSmoke runs the comparison with tiny settings and checks the table
// has a row per learner and learning rate and no NaN.
func TestSmoke(t *testing.T) {
	var buf bytes.Buffer
	cfg := config{Seeds: 2, Iters: 5, Prompts: 4, Types: 2, Responses: 6, Noise: 0.1, LRs: []float64{8}}
	require.NoError(t, run(&buf, cfg))
	out := buf.String()
	for _, name := range []string{"MDLOO", "MDLOO t_k↓", "PPO-clip", "RLOO"} {
		assert.Contains(t, out, name)
	}
	assert.NotContains(t, out, "NaN")
	var a, b bytes.Buffer
	_ = run(&a, cfg)
	_ = run(&b, cfg)
	assert.Equal(t, a.String(), b.String(), "two runs with the same settings differ")
}

// TestMeanCI checks the interval against a printed t-table: t(0.975, 4) =
// 2.776, so for 1…5 (s = √2.5) the half-width is 2.776·√2.5/√5 = 1.963.
func TestMeanCI(t *testing.T) {
	mean, ci := meanCI([]float64{1, 2, 3, 4, 5})
	assert.Equal(t, 3.0, mean)
	assert.Equal(t, "1.963", ci)
	_, ci = meanCI([]float64{7})
	assert.Equal(t, "—", ci)
}

package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestSmoke runs the comparison with tiny settings and checks the table
// has a row per learner and learning rate and no NaN.
func TestSmoke(t *testing.T) {
	var buf bytes.Buffer
	cfg := config{Seeds: 2, Iters: 5, Prompts: 4, Types: 2, Responses: 6, Noise: 0.1, LRs: []float64{8}}
	if err := run(&buf, cfg); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, name := range []string{"MDLOO", "MDLOO t_k↓", "PPO-clip", "RLOO"} {
		if !strings.Contains(out, name) {
			t.Errorf("no %s row in\n%s", name, out)
		}
	}
	if strings.Contains(out, "NaN") {
		t.Errorf("NaN in\n%s", out)
	}
	var a, b bytes.Buffer
	_ = run(&a, cfg)
	_ = run(&b, cfg)
	if a.String() != b.String() {
		t.Error("two runs with the same settings differ")
	}
}

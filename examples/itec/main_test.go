package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

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
	if err := run(context.Background(), cfg, &a); err != nil {
		t.Fatal(err)
	}
	out := a.String()
	for _, s := range []string{"r1-rejection-sampling", "r1-dpo", "r1-ipo", "r1-online-rl", "r2-online-rl"} {
		if !strings.Contains(out, s) {
			t.Errorf("no %s in\n%s", s, out)
		}
	}
	if strings.Contains(out, "NaN") {
		t.Errorf("NaN in\n%s", out)
	}
	cfg.Out = filepath.Join(dir, "b")
	if err := run(context.Background(), cfg, &b); err != nil {
		t.Fatal(err)
	}
	if a.String() != b.String() {
		t.Errorf("two runs with one seed differ:\n%s\n---\n%s", a.String(), b.String())
	}
}

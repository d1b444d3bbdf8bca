package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
	if err := run(context.Background(), cfg, &a); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"DPO", "IPO", "SimPO"} {
		if !strings.Contains(a.String(), s) {
			t.Errorf("no %s row in\n%s", s, a.String())
		}
	}
	if strings.Contains(a.String(), "NaN") {
		t.Errorf("NaN in\n%s", a.String())
	}
	for _, f := range []string{"results.md", "curves.png"} {
		if _, err := os.Stat(filepath.Join(cfg.Out, f)); err != nil {
			t.Error(err)
		}
	}
	cfg.Out = filepath.Join(dir, "b")
	if err := run(context.Background(), cfg, &b); err != nil {
		t.Fatal(err)
	}
	if a.String() != b.String() {
		t.Errorf("two runs with one seed differ:\n%s\n---\n%s", a.String(), b.String())
	}
}

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/posttrain/posttrain/examples/internal/lab"
	"github.com/posttrain/posttrain/recipe"
	"github.com/posttrain/posttrain/tensor/nn"
	"github.com/posttrain/posttrain/tensor/nn/hf"
)

// modelConfig is the -model run: SFT of a Hugging Face checkpoint,
// whole or through LoRA adapters.
type modelConfig struct {
	Model, Data, Out         string
	LoRA                     int // rank on every projection (0: full fine-tuning); alpha is twice it
	Steps, Batch, Accum      int
	LR                       float64 // 0: 2e-5 for full fine-tuning, 2e-4 for LoRA
	MaxPrompt, MaxCompletion int
	Records                  int // use at most this many records of Data (0: all)
	Recompute                bool
	Seed                     uint64
	Progress                 io.Writer
}

func modelDefaults() modelConfig {
	return modelConfig{Out: filepath.Join("out", "sft"), Steps: 100, Batch: 4, Accum: 2, MaxPrompt: 512, MaxCompletion: 512, Seed: 1}
}

// quick shrinks the run to a few steps on a few short records: a check
// that the whole path works, in seconds on a small model.
func (c *modelConfig) quick() {
	c.Steps, c.Batch, c.Accum = 3, 2, 1
	c.MaxPrompt, c.MaxCompletion = 64, 32
	c.Records = 16
}

// runModel fine-tunes the model of c.Model on the SFT records of c.Data
// and writes it (or its adapter) to c.Out; it returns what the trainer
// logged.
func runModel(ctx context.Context, c modelConfig, w io.Writer) (recipe.History, error) {
	if c.LoRA < 0 {
		return nil, fmt.Errorf("-lora %d: need a rank ≥ 1, or 0 for full fine-tuning", c.LoRA)
	}
	if c.Data == "" {
		return nil, fmt.Errorf("-model needs -data, a JSONL file of SFT records")
	}
	h, err := lab.LoadHF(c.Model)
	if err != nil {
		return nil, err
	}
	xs, err := lab.ReadExamples(h.Encoder(c.MaxPrompt, c.MaxCompletion), c.Data, c.Records)
	if err != nil {
		return nil, err
	}
	n := lab.HoldOut(len(xs))
	train, eval := xs[:n], xs[n:]
	lr := c.LR
	fmt.Fprintln(w, h.Describe())
	if c.LoRA > 0 {
		ad, err := h.Model.AddLoRA(nn.LoRAConfig{Rank: c.LoRA, Alpha: float64(2 * c.LoRA), Targets: []string{"q", "k", "v", "o", "gate", "up", "down"}}, c.Seed)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(w, "LoRA rank %d on q,k,v,o,gate,up,down: %d trainable parameters\n", c.LoRA, ad.NumParams())
		if lr == 0 {
			lr = 2e-4
		}
	} else if lr == 0 {
		lr = 2e-5
	}
	fmt.Fprintf(w, "%s: %d records for training, %d held out; %d completion tokens in all\n", c.Data, len(train), len(eval), lab.CompletionTokens(xs))

	bar := lab.NewBar(c.Progress, c.Steps, "SFT")
	log := &lab.TrainLog{W: w, Bar: bar, Total: c.Steps, Line: func(r recipe.Record) string {
		return fmt.Sprintf("loss %.4f nats/token, token accuracy %.3f", r.Metrics["loss"], r.Metrics["mean_token_accuracy"])
	}}
	sft := &recipe.SFT{Model: h.Model, Config: recipe.Config{
		Steps: c.Steps, Batch: c.Batch, Accum: c.Accum, LR: lr, MinLR: lr / 10, Warmup: c.Steps / 10, ClipNorm: 1,
		Seed: c.Seed, Pad: h.Pad, Recompute: c.Recompute, Dir: filepath.Join(c.Out, "run"), Callback: log.Callback,
	}}
	var before map[string]float64
	if len(eval) > 0 {
		sft.Config.EvalEvery = c.Steps
		if before, err = sft.Evaluate(ctx, eval); err != nil {
			return nil, err
		}
	}
	log.Start()
	hist, err := sft.Train(ctx, train, eval)
	bar.Finish()
	if err != nil {
		return nil, err
	}
	if log.Ran() < c.Steps {
		fmt.Fprintf(w, "resumed at step %d from the checkpoint in %s\n", c.Steps-log.Ran(), sft.Config.Dir)
	}
	if log.Ran() > 0 {
		fmt.Fprintf(w, "%s of %d records\n", log.PerStep(), c.Batch*max(1, c.Accum))
	}
	if len(eval) > 0 {
		el, _ := hist.Last("eval_loss")
		ea, _ := hist.Last("eval_mean_token_accuracy")
		fmt.Fprintf(w, "held out: loss %.4f nats/token (%.4f before), token accuracy %.3f (%.3f before)\n", el, before["loss"], ea, before["mean_token_accuracy"])
	}
	if c.LoRA > 0 {
		if err := hf.SaveAdapter(h.Model, c.Out, c.Model); err != nil {
			return nil, err
		}
		fmt.Fprintf(w, "adapter: %s, %s\n", filepath.Join(c.Out, hf.AdapterConfigFile), filepath.Join(c.Out, hf.AdapterWeightsFile))
		return hist, nil
	}
	if err := os.MkdirAll(c.Out, 0o755); err != nil {
		return nil, err
	}
	if err := hf.SaveModel(h.Model, c.Out); err != nil {
		return nil, err
	}
	if err := lab.CopyTokenizer(c.Model, c.Out); err != nil {
		return nil, err
	}
	fmt.Fprintf(w, "model: %s (config.json, safetensors and the tokenizer's files)\n", c.Out)
	return hist, nil
}

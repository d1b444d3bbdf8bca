package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/posttrain/posttrain/examples/internal/lab"
	"github.com/posttrain/posttrain/prefopt"
	"github.com/posttrain/posttrain/recipe"
	"github.com/posttrain/posttrain/tensor/nn"
	"github.com/posttrain/posttrain/tensor/nn/hf"
)

// modelConfig is the -model run: DPO with LoRA on a Hugging Face
// checkpoint, through the trainer layer (package recipe).
type modelConfig struct {
	Model, Data, Out         string
	LoRA                     int // rank on q, k, v, o; alpha is twice it
	Steps, Batch, Accum      int
	LR                       float64
	Beta                     float64
	MaxPrompt, MaxCompletion int // token limits; the prompt keeps its end, the completion its start (TRL)
	Pairs                    int // use at most this many pairs of -data (0: all)
	Recompute                bool
	Seed                     uint64
	Progress                 io.Writer
}

func modelDefaults() modelConfig {
	return modelConfig{
		Out: filepath.Join("out", "dpo"), LoRA: 16, Steps: 100, Batch: 2, Accum: 4,
		LR: 5e-5, Beta: 0.1, MaxPrompt: 512, MaxCompletion: 512, Seed: 1,
	}
}

// quick shrinks the run to a few steps on a few short pairs: a check
// that the whole path works, in seconds on a small model.
func (c *modelConfig) quick() {
	c.Steps, c.Batch, c.Accum = 3, 2, 1
	c.MaxPrompt, c.MaxCompletion = 64, 32
	c.Pairs = 16
}

// runModel tunes the LoRA adapters of the model in c.Model by DPO on the
// preference pairs of c.Data (TRL's formats: prompt/chosen/rejected as
// text or conversations, or chosen/rejected conversations alone), holds
// out a tenth of the pairs (when there are ten or more) for evaluation,
// and writes the adapter in PEFT's format to c.Out, with the training
// log (metrics.jsonl) and the trainer's checkpoint under c.Out/run. It
// returns what the trainer logged.
func runModel(ctx context.Context, c modelConfig, w io.Writer) (recipe.History, error) {
	switch {
	case c.Data == "":
		return nil, errors.New("-model needs -data, a JSONL file of preference pairs")
	case c.LoRA <= 0:
		return nil, fmt.Errorf("-lora %d: need a rank ≥ 1", c.LoRA)
	}
	h, err := lab.LoadHF(c.Model)
	if err != nil {
		return nil, err
	}
	m, pad := h.Model, h.Pad
	f, err := os.Open(c.Data)
	if err != nil {
		return nil, err
	}
	pairs, err := h.Encoder(c.MaxPrompt, c.MaxCompletion).ReadPairs(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.Data, err)
	}
	if c.Pairs > 0 && len(pairs) > c.Pairs {
		pairs = pairs[:c.Pairs]
	}
	if len(pairs) == 0 {
		return nil, fmt.Errorf("%s: no preference pairs", c.Data)
	}
	train, eval := pairs, []recipe.Pair(nil)
	if n := len(pairs) / 10; n > 0 {
		train, eval = pairs[:len(pairs)-n], pairs[len(pairs)-n:]
	}
	ad, err := m.AddLoRA(nn.LoRAConfig{Rank: c.LoRA, Alpha: float64(2 * c.LoRA), Targets: []string{"q", "k", "v", "o"}}, c.Seed)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(w, "%s: %d layers, width %d, vocabulary %d, %d parameters; LoRA rank %d on q,k,v,o: %d trainable\n",
		c.Model, m.Config.Layers, m.Config.DModel, m.Config.Vocab, m.NumParams(), c.LoRA, ad.NumParams())
	fmt.Fprintf(w, "%s: %d pairs for training, %d held out, %d tokens\n", c.Data, len(train), len(eval), recipe.Tokens(pairs))

	log := &lab.TrainLog{W: w, Bar: lab.NewBar(c.Progress, c.Steps, "DPO"), Total: c.Steps, Line: func(r recipe.Record) string {
		return fmt.Sprintf("loss %.4f, pair accuracy %.2f, margin %.3g nats", r.Metrics["loss"], r.Metrics["rewards/accuracies"], r.Metrics["rewards/margins"])
	}}
	cfg := recipe.Config{
		Steps: c.Steps, Batch: c.Batch, Accum: c.Accum, LR: c.LR, MinLR: c.LR / 10,
		Warmup: c.Steps / 10, ClipNorm: 1, Seed: c.Seed, Pad: pad, Recompute: c.Recompute,
		Dir: filepath.Join(c.Out, "run"), Callback: log.Callback,
	}
	if len(eval) > 0 {
		cfg.EvalEvery = c.Steps
	}
	dpo := &recipe.Preference{Policy: m, Objective: prefopt.DPO{Beta: c.Beta}, Config: cfg}
	log.Start()
	hist, err := dpo.Train(ctx, train, eval)
	log.Bar.Finish()
	if err != nil {
		return nil, err
	}
	if err := hf.SaveAdapter(m, c.Out, c.Model); err != nil {
		return nil, err
	}
	if log.Ran() < c.Steps {
		fmt.Fprintf(w, "resumed at step %d from the checkpoint in %s\n", c.Steps-log.Ran(), cfg.Dir)
	}
	if log.Ran() > 0 {
		loss, _ := hist.Last("loss")
		fmt.Fprintf(w, "%s of %d pairs; last training loss %.4f\n", log.PerStep(), c.Batch*max(1, c.Accum), loss)
	}
	if len(eval) > 0 {
		el, _ := hist.Last("eval_loss")
		ea, _ := hist.Last("eval_rewards/accuracies")
		em, _ := hist.Last("eval_rewards/margins")
		fmt.Fprintf(w, "held out: loss %.4f (log 2 = 0.6931 before training), pair accuracy %.3f, margin %.3g nats\n", el, ea, em)
	}
	fmt.Fprintf(w, "adapter: %s, %s\n", filepath.Join(c.Out, hf.AdapterConfigFile), filepath.Join(c.Out, hf.AdapterWeightsFile))
	return hist, nil
}

// Command sft is supervised fine-tuning through the trainer layer
// (recipe.SFT): the mean negative log-likelihood of each example's
// completion given its prompt, the prompt masked out of the loss, as
// TRL's SFTTrainer with completion_only_loss.
//
// With -model DIR (a Hugging Face directory: config.json, the
// safetensors weights, tokenizer.json and tokenizer_config.json —
// SmolLM2, Qwen2.5, Llama…) it tunes that model on the SFT records of
// -data, JSONL in TRL's formats: {"prompt": …, "completion": …} as text,
// or conversations — {"messages": [{"role": …, "content": …}, …]}, whose
// last assistant turn is the completion, or a "prompt" and a
// "completion" of messages — rendered with the model's chat template.
// Prompts longer than the limit keep their end, completions their
// start. A tenth of the records (when there are ten or more) is held out
// and scored before and after training: loss in nats per completion token
// and the fraction of completion tokens predicted right. The tuned model
// is written under -out: the whole checkpoint in Hugging Face layout,
// with the tokenizer's files copied beside it (a directory that
// transformers and every -model flag load), or with -lora R only LoRA
// adapters of rank R on every projection (q, k, v, o, gate, up, down;
// alpha twice the rank) in PEFT's format. The training log is
// out/run/metrics.jsonl, beside the trainer's checkpoint: a run started
// again on the same -out resumes from it (remove out/run to start over).
//
// Without -model it shows the same trainer on the examples' byte-level
// TinyLM: a small model pre-trained for a few seconds on Newton's
// Opticks is tuned to continue prompts from the book with the book's own
// words in capitals — a style it never saw, as an instruction format is
// new to a base model — and the held-out loss and byte accuracy of such
// continuations are reported before and after, with samples.
//
// Usage:
//
//	go run ./examples/sft [-quick] [-out out/sft] [-seed 1] [-steps N]
//	go run ./examples/sft -model DIR -data chat.jsonl [-lora 0] [-quick] [-out out/sft] [-steps 100] [-batch 4] [-accum 2] [-lr 0] [-max-prompt 512] [-max-completion 512] [-records 0] [-recompute]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"

	"github.com/posttrain/posttrain/examples/internal/lab"
	"github.com/posttrain/posttrain/recipe"
	"github.com/posttrain/posttrain/tensor/nn"
)

type config struct {
	Out              string
	Seed             uint64
	Bytes            int
	Model            nn.Config
	BaseSteps, Steps int
	Prompts, Test    int
	PromptLen, Len   int
	Batch            int
	LR               float64
	Progress         io.Writer
}

func defaults() config {
	return config{
		Out: filepath.Join("out", "sft"), Seed: 1, Bytes: 200_000,
		Model:     nn.Config{Vocab: 256, DModel: 64, Layers: 2, Heads: 2, Context: 64, Hidden: 128},
		BaseSteps: 300, Steps: 100, Prompts: 256, Test: 64, PromptLen: 28, Len: 32, Batch: 16, LR: 1e-3,
	}
}

func (c *config) quick() {
	c.Bytes = 100_000
	c.Model = nn.Config{Vocab: 256, DModel: 32, Layers: 1, Heads: 2, Context: 64, Hidden: 64}
	c.BaseSteps, c.Steps, c.Prompts, c.Test = 60, 30, 64, 24
}

func main() {
	cfg := defaults()
	mc := modelDefaults()
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "Usage:\n  sft [-quick] [-out DIR] [-seed N] [-steps N]\n  sft -model DIR -data FILE.jsonl [-lora R] [flags]\n\nFlags:\n")
		flag.PrintDefaults()
	}
	quick := flag.Bool("quick", false, "a run of a few seconds (CI); with -model, 3 steps on 16 short records")
	flag.StringVar(&cfg.Out, "out", cfg.Out, "output directory: results.md (TinyLM), or the tuned model or its adapter and run/ (training log and checkpoint)")
	flag.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "seed of every random choice: data order, initialization, LoRA's A")
	steps := flag.Int("steps", 0, "optimizer steps (0: the default, "+fmt.Sprint(cfg.Steps)+" for TinyLM, "+fmt.Sprint(mc.Steps)+" with -model)")
	noBars := flag.Bool("no-progress", false, "no progress bars (they are drawn on stderr only when stdout and stderr are terminals)")
	flag.StringVar(&mc.Model, "model", "", "a Hugging Face model directory (config.json, safetensors, tokenizer.json) to fine-tune")
	flag.StringVar(&mc.Data, "data", "", "with -model: SFT records, JSONL in TRL's formats (prompt/completion, or messages rendered with the chat template)")
	flag.IntVar(&mc.LoRA, "lora", mc.LoRA, "with -model: train LoRA adapters of this rank on every projection and write them in PEFT's format (0: tune every weight and write the whole model)")
	batch := flag.Int("batch", 0, "with -model: records per micro-batch (0: the default, "+fmt.Sprint(mc.Batch)+")")
	accum := flag.Int("accum", 0, "with -model: micro-batches per optimizer step (0: the default, "+fmt.Sprint(mc.Accum)+")")
	lr := flag.Float64("lr", 0, "with -model: peak learning rate, warmup over a tenth of the steps then cosine to a tenth (0: 2e-5, or 2e-4 with -lora)")
	flag.IntVar(&mc.MaxPrompt, "max-prompt", mc.MaxPrompt, "with -model: prompt tokens kept (its end); at most half the model's context")
	flag.IntVar(&mc.MaxCompletion, "max-completion", mc.MaxCompletion, "with -model: completion tokens kept (its start)")
	flag.IntVar(&mc.Records, "records", 0, "with -model: use the first N records of -data (0: all)")
	flag.BoolVar(&mc.Recompute, "recompute", false, "with -model: gradient checkpointing (less memory, about a third more compute)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if mc.Model != "" {
		if *quick {
			mc.quick()
		}
		for _, x := range []struct{ dst, v *int }{{&mc.Steps, steps}, {&mc.Batch, batch}, {&mc.Accum, accum}} {
			if *x.v > 0 {
				*x.dst = *x.v
			}
		}
		mc.LR = *lr
		mc.Out, mc.Seed, mc.Progress = cfg.Out, cfg.Seed, lab.Progress(*noBars)
		if _, err := runModel(ctx, mc, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "sft:", err)
			os.Exit(1)
		}
		return
	}
	if *quick {
		cfg.quick()
	}
	if *steps > 0 {
		cfg.Steps = *steps
	}
	cfg.Progress = lab.Progress(*noBars)
	if err := run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "sft:", err)
		os.Exit(1)
	}
}

// run tunes a TinyLM pre-trained on the book to continue prompts from
// the book with its own words.
func run(ctx context.Context, cfg config, w io.Writer) error {
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return err
	}
	data := lab.Load(cfg.Bytes)
	m, err := lab.Pretrain(ctx, cfg.Model, data.Train, cfg.BaseSteps, cfg.Seed, cfg.Progress)
	if err != nil {
		return err
	}
	train, err := continuations(data.TrainText, cfg.Prompts, cfg.PromptLen, cfg.Len, cfg.Seed+1)
	if err != nil {
		return err
	}
	test, err := continuations(data.TestText, cfg.Test, cfg.PromptLen, cfg.Len, cfg.Seed+2)
	if err != nil {
		return err
	}
	base := m.Clone()
	sft := &recipe.SFT{Model: m}
	sft.Config = recipe.Config{Steps: cfg.Steps, Batch: cfg.Batch, LR: cfg.LR, MinLR: cfg.LR / 10, Warmup: cfg.Steps / 10, ClipNorm: 1, Seed: cfg.Seed + 3}
	before, err := sft.Evaluate(ctx, test)
	if err != nil {
		return err
	}
	bar := lab.NewBar(cfg.Progress, cfg.Steps, "SFT")
	sft.Config.Callback = func(recipe.Record) { bar.Add(1) }
	h, err := sft.Train(ctx, train, nil)
	bar.Finish()
	if err != nil {
		return err
	}
	after, err := sft.Evaluate(ctx, test)
	if err != nil {
		return err
	}
	tl, _ := h.Last("loss")
	t := lab.Table{
		Title: fmt.Sprintf("SFT of a %d-parameter TinyLM (pre-trained %d steps on the book) on %d prompt/continuation pairs of the book, %d steps of %d; %d held-out pairs from the end of the book",
			m.NumParams(), cfg.BaseSteps, len(train), cfg.Steps, cfg.Batch, len(test)),
		Head: []string{"model", "held-out loss (nats per completion byte)", "held-out completion bytes predicted right (%)"},
		Rows: [][]string{
			{"base", fmt.Sprintf("%.3f", before["loss"]), fmt.Sprintf("%.1f", 100*before["mean_token_accuracy"])},
			{"after SFT", fmt.Sprintf("%.3f", after["loss"]), fmt.Sprintf("%.1f", 100*after["mean_token_accuracy"])},
		},
		Note: fmt.Sprintf("Prompts are %d-byte stretches of the book, completions the %d bytes that follow in capitals; the loss counts completion bytes only (prompts are masked). Last training loss %.3f.",
			cfg.PromptLen, cfg.Len, tl),
	}
	if err := t.Print(w); err != nil {
		return err
	}
	fmt.Fprintln(w, "Samples on held-out prompts, same seed: the base, then after SFT.")
	for _, x := range test[:min(2, len(test))] {
		p, err := nn.ByteTokenizer{}.Decode(x.Prompt)
		if err != nil {
			return err
		}
		a, err := lab.Gen(base, cfg.Len).Generate(ctx, p, []uint64{cfg.Seed})
		if err != nil {
			return err
		}
		b, err := lab.Gen(m, cfg.Len).Generate(ctx, p, []uint64{cfg.Seed})
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "  prompt %q\n  base   %q\n  SFT    %q\n", p, a[0], b[0])
	}
	return os.WriteFile(filepath.Join(cfg.Out, "results.md"), []byte(t.Markdown()), 0o644)
}

// continuations draws n prompts from text (lab.Prompts) and pairs each
// with the length bytes of text that follow it, in capitals, as SFT
// examples.
func continuations(text string, n, promptLen, length int, seed uint64) ([]recipe.Example, error) {
	ps, err := lab.Prompts(text, 2*n, promptLen, seed)
	if err != nil {
		return nil, err
	}
	var tok nn.ByteTokenizer
	var out []recipe.Example
	for _, p := range ps {
		i := strings.Index(text, p)
		if i < 0 || i+len(p)+length > len(text) {
			continue
		}
		c := strings.ToUpper(text[i+len(p) : i+len(p)+length])
		out = append(out, recipe.Example{Prompt: tok.Encode(p), Completion: tok.Encode(c), Line: len(out) + 1})
		if len(out) == n {
			break
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no continuations of %d bytes", length)
	}
	return out, nil
}

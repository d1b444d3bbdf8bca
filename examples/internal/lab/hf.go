package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/posttrain/posttrain/internal/atomicfile"
	"github.com/posttrain/posttrain/recipe"
	"github.com/posttrain/posttrain/tensor/nn"
	"github.com/posttrain/posttrain/tensor/nn/hf"
)

// HF is a Hugging Face model directory loaded for an example's -model
// run: the model, its tokenizer, and the token that pads batches.
type HF struct {
	Dir   string
	Model *nn.Model
	Tok   *hf.Tokenizer
	Pad   int32
}

// LoadHF loads the model and the tokenizer of the directory dir.
func LoadHF(dir string) (*HF, error) {
	m, err := hf.LoadModel(dir)
	if err != nil {
		return nil, err
	}
	tok, err := hf.LoadTokenizer(dir)
	if err != nil {
		return nil, err
	}
	return &HF{Dir: dir, Model: m, Tok: tok, Pad: PadID(tok)}, nil
}

// PadID is tok's padding token, or its EOS, or 0: any id works, since
// padding is neither attended to nor scored.
func PadID(tok *hf.Tokenizer) int32 {
	if id, ok := tok.Pad(); ok {
		return id
	}
	if id, ok := tok.EOS(); ok {
		return id
	}
	return 0
}

// Describe is one line on the model: its shape and size.
func (h *HF) Describe() string {
	c := h.Model.Config
	return fmt.Sprintf("%s: %d layers, width %d, FFN %d, vocabulary %d, context %d, %.1fM parameters",
		h.Dir, c.Layers, c.DModel, c.Hidden, c.Vocab, c.Context, float64(h.Model.NumParams())/1e6)
}

// Encoder returns a recipe.Encoder for the tokenizer whose limits never
// exceed the model's context: the prompt gets at most half of it and
// keeps its end (TRL's truncation), the completion the rest and keeps its
// start. A record that still does not fit is refused by the trainer with
// its line.
func (h *HF) Encoder(maxPrompt, maxCompletion int) *recipe.Encoder {
	maxP := min(maxPrompt, h.Model.Config.Context/2)
	maxC := min(maxCompletion, h.Model.Config.Context-maxP)
	return &recipe.Encoder{Tokenizer: h.Tok, MaxPrompt: maxP, MaxCompletion: maxC,
		PromptTruncation: recipe.KeepEnd, CompletionTruncation: recipe.KeepStart}
}

// ReadExamples reads the SFT records of the JSONL file path (TRL's
// formats: prompt/completion as text or conversations, or messages),
// at most limit of them (0: all).
func ReadExamples(enc *recipe.Encoder, path string, limit int) ([]recipe.Example, error) {
	if path == "" {
		return nil, errors.New("no -data: need a JSONL file of SFT records")
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	xs, err := enc.ReadExamples(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if limit > 0 && len(xs) > limit {
		xs = xs[:limit]
	}
	if len(xs) == 0 {
		return nil, fmt.Errorf("%s: no records", path)
	}
	return xs, nil
}

// HoldOut splits off the last tenth of n records (none below ten) for
// evaluation: it returns the number kept for training.
func HoldOut(n int) int { return n - n/10 }

// CompletionTokens is the number of completion tokens of xs.
func CompletionTokens(xs []recipe.Example) int {
	n := 0
	for _, x := range xs {
		n += len(x.Completion)
	}
	return n
}

// TokenizerFiles are the files of a model directory that describe its
// tokenizer and generation settings; CopyTokenizer carries them over, so
// that a model written next to them loads as a whole model directory.
var TokenizerFiles = []string{"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json", "vocab.json", "merges.txt"}

// CopyTokenizer copies the TokenizerFiles that src has to dst, each
// written whole.
func CopyTokenizer(src, dst string) error {
	for _, f := range TokenizerFiles {
		b, err := os.ReadFile(filepath.Join(src, f))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if err := atomicfile.Write(filepath.Join(dst, f), b); err != nil {
			return err
		}
	}
	return nil
}

// TinyCheckpoint writes a random Llama-family model of cfg in Hugging
// Face layout to dir, with the tokenizer files of tokDir: the fixture of
// the examples' -model smoke tests.
func TinyCheckpoint(dir, tokDir string, cfg nn.Config, seed uint64) error {
	m, err := nn.NewModel(cfg, seed)
	if err != nil {
		return err
	}
	if err := hf.SaveModel(m, dir); err != nil {
		return err
	}
	return CopyTokenizer(tokDir, dir)
}

// TinyConfig is the shape of the smoke tests' checkpoints: two layers
// of width 32 with grouped-query attention, over the 263 tokens of
// recipe's test tokenizer (recipe/testdata/tok; 262 is <|im_end|>).
var TinyConfig = nn.Config{Vocab: 263, DModel: 32, Layers: 2, Heads: 4, KVHeads: 2, Context: 96, Hidden: 64, EOS: []int32{262}}

// TrainLog follows a training run of Total steps through
// recipe.Config.Callback: it advances Bar by one per training step and,
// when there is no bar (the zero Bar, as off a terminal), writes
// Line(r) to W about ten times over the run and at its last step. It
// counts the training steps it sees — fewer than Total when a run
// resumes — and the time of the last one, so that PerStep reports the
// steps' own time, without the evaluation and the checkpoint that
// follow the last.
type TrainLog struct {
	W     io.Writer
	Bar   Bar
	Total int
	Line  func(recipe.Record) string

	start, last time.Time
	ran         int
}

// Start marks the start of the run; call it just before Train.
func (l *TrainLog) Start() { l.start, l.last, l.ran = time.Now(), time.Now(), 0 }

// Callback is the recipe.Config.Callback.
func (l *TrainLog) Callback(r recipe.Record) {
	if _, ok := r.Metrics["loss"]; !ok {
		return // an evaluation record
	}
	l.ran++
	l.last = time.Now()
	l.Bar.Add(1)
	if every := max(1, l.Total/10); l.Bar.b == nil && l.Line != nil && (r.Step%every == 0 || r.Step == l.Total) {
		fmt.Fprintf(l.W, "step %d/%d: %s\n", r.Step, l.Total, l.Line(r))
	}
}

// Ran is the number of training steps seen since Start.
func (l *TrainLog) Ran() int { return l.ran }

// PerStep formats the time of the steps seen since Start: "N steps in D
// (S s/step)".
func (l *TrainLog) PerStep() string {
	d := l.last.Sub(l.start)
	return fmt.Sprintf("%d steps in %v (%.2f s/step)", l.ran, d.Round(time.Millisecond), d.Seconds()/float64(max(l.ran, 1)))
}

// ChatRecords returns n SFT records as JSONL for the smoke tests,
// alternating TRL's conversational "messages" form and the plain
// prompt/completion form.
func ChatRecords(n int) string {
	var b strings.Builder
	for i := range n {
		if i%2 == 0 {
			b.WriteString(`{"messages": [{"role": "user", "content": "what is a prism?"}, {"role": "assistant", "content": "glass that bends light"}]}` + "\n")
		} else {
			b.WriteString(`{"prompt": "the colour of light is", "completion": " refracted into a spectrum"}` + "\n")
		}
	}
	return b.String()
}

// CompletionScores are m's loss (nats per completion token) and top-1
// accuracy on the completions of xs, through recipe.SFT's evaluation:
// the measures a distilled or tuned model is compared on.
func CompletionScores(ctx context.Context, m *nn.Model, xs []recipe.Example, batch int, pad int32) (loss, acc float64, err error) {
	r, err := (&recipe.SFT{Model: m, Config: recipe.Config{Batch: batch, Pad: pad}}).Evaluate(ctx, xs)
	return r["loss"], r["mean_token_accuracy"], err
}

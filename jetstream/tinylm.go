package jetstream

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/posttrain/posttrain/distill/cache"
	"github.com/posttrain/posttrain/itec"
	"github.com/posttrain/posttrain/tensor"
	"github.com/posttrain/posttrain/tensor/nn"
	"github.com/posttrain/posttrain/tensor/nn/hf"
)

// TinyLM is a Loader of nn.TinyLM checkpoints (nn.(*TinyLM).Save) over the
// byte tokenizer. A member samples Len bytes per seed at Temperature with
// top-K; bytes outside printable ASCII and newline come out as '?', so a
// response is valid UTF-8 and survives JSON exactly. A reward model scores
// a response by its mean log-probability given the prompt.
type TinyLM struct {
	Len         int // bytes per response; 0 means 32
	Temperature float64
	TopK        int
}

// Generator implements Loader.
func (l TinyLM) Generator(ctx context.Context, m Model) (itec.Generator, error) {
	lm, err := l.load(m)
	if err != nil {
		return nil, err
	}
	return lmGen{m: lm, n: cmp.Or(l.Len, 32), temp: l.Temperature, topK: l.TopK, encode: byteEncode, decode: printable}, nil
}

// Scorer implements Loader.
func (l TinyLM) Scorer(ctx context.Context, m Model) (itec.Scorer, error) {
	lm, err := l.load(m)
	if err != nil {
		return nil, err
	}
	return lmScorer{lm, byteEncode}, nil
}

func (l TinyLM) load(m Model) (*nn.TinyLM, error) {
	if m.File == "" {
		return nil, fmt.Errorf("jetstream: TinyLM: %q names no checkpoint file the coordinator could store", m.Ref)
	}
	lm, err := nn.LoadTinyLM(m.File)
	if err != nil {
		return nil, err
	}
	if lm.Config.Vocab != 256 {
		return nil, fmt.Errorf("jetstream: TinyLM: %s has a vocabulary of %d, not the byte tokenizer's 256", m.Ref, lm.Config.Vocab)
	}
	return lm, nil
}

// lmGen samples from a decoder-only model: the prompt's tokens, then n
// sampled ones, decoded.
type lmGen struct {
	m      *nn.Model
	n      int
	temp   float64
	topK   int
	encode func(string) ([]int32, error)
	decode func([]int32) string
}

func (g lmGen) Generate(ctx context.Context, prompt string, seeds []uint64) ([]string, error) {
	in, err := g.encode(prompt)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(seeds))
	for i, seed := range seeds {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ids, err := g.m.Generate(in, g.n, nn.NewSampler(seed, g.temp, g.topK, 0))
		if err != nil {
			return nil, err
		}
		out[i] = g.decode(ids)
	}
	return out, nil
}

func byteEncode(s string) ([]int32, error) { return nn.ByteTokenizer{}.Encode(s), nil }

// printable writes bytes outside printable ASCII and newline as '?'.
func printable(ids []int32) string {
	var b strings.Builder
	for _, t := range ids {
		if (t < ' ' && t != '\n') || t > '~' {
			t = '?'
		}
		b.WriteByte(byte(t))
	}
	return b.String()
}

// lmScorer scores a response by its mean log-probability given the prompt.
type lmScorer struct {
	m      *nn.Model
	encode func(string) ([]int32, error)
}

func (s lmScorer) Score(ctx context.Context, prompt string, responses []string) ([]float64, error) {
	in, err := s.encode(prompt)
	if err != nil {
		return nil, err
	}
	if len(in) == 0 {
		return nil, errors.New("jetstream: scoring: empty prompt")
	}
	out := make([]float64, len(responses))
	lp := make([]float32, s.m.Config.Vocab)
	for i, r := range responses {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		resp, err := s.encode(r)
		if err != nil {
			return nil, err
		}
		if len(in)+len(resp) > s.m.Config.Context {
			return nil, fmt.Errorf("jetstream: scoring: prompt and response %d are %d tokens, context is %d", i, len(in)+len(resp), s.m.Config.Context)
		}
		if err := s.m.CheckTokens(resp); err != nil {
			return nil, err
		}
		d := s.m.NewDecoder()
		var logits []float32
		for _, t := range in {
			if logits, err = d.Step(t); err != nil {
				return nil, err
			}
		}
		var sum float64
		for j, t := range resp {
			tensor.LogSoftmax(lp, logits)
			sum += float64(lp[t])
			if j+1 < len(resp) {
				if logits, err = d.Step(t); err != nil {
					return nil, err
				}
			}
		}
		if len(resp) > 0 {
			out[i] = sum / float64(len(resp))
		}
	}
	return out, nil
}

// Teacher implements TeacherLoader: each batch of tokens is one sequence
// from the start of the context, and row i of the logits predicts the
// token after tokens[i].
func (l TinyLM) Teacher(ctx context.Context, m Model) (cache.Teacher, error) {
	lm, err := l.load(m)
	if err != nil {
		return nil, err
	}
	return ModelTeacher(lm), nil
}

// ModelTeacher is the cache.Teacher of a decoder-only model, as the
// TinyLM and HF loaders' Teacher methods load it: a coordinator computing
// in process uses the same function.
func ModelTeacher(lm *nn.Model) cache.Teacher {
	return func(tokens []int32) (*tensor.Dense, error) {
		if len(tokens) > lm.Config.Context {
			return nil, fmt.Errorf("jetstream: teacher: batch of %d tokens, context is %d", len(tokens), lm.Config.Context)
		}
		if err := lm.CheckTokens(tokens); err != nil {
			return nil, err
		}
		d := lm.NewDecoder()
		out := tensor.New(len(tokens), lm.Config.Vocab)
		for i, t := range tokens {
			z, err := d.Step(t)
			if err != nil {
				return nil, err
			}
			copy(out.Row(i), z)
		}
		return out, nil
	}
}

// HF is a Loader of transformers checkpoint directories (hf.LoadModel and
// hf.LoadTokenizer: Llama, Mistral and Qwen2 causal LMs). A member samples
// Len tokens per seed at Temperature with top-K after the prompt's tokens
// (with the tokenizer's special prefix, as transformers adds it), decoded
// to text; invalid UTF-8 becomes U+FFFD. Reward models score, and teachers
// predict, as TinyLM's do.
type HF struct {
	Len         int // tokens per response; 0 means 32
	Temperature float64
	TopK        int
}

func (l HF) load(m Model) (*nn.Model, *hf.Tokenizer, error) {
	if m.File == "" || !m.Dir {
		return nil, nil, fmt.Errorf("jetstream: HF: %q names no checkpoint directory the coordinator could store", m.Ref)
	}
	lm, err := hf.LoadModel(m.File)
	if err != nil {
		return nil, nil, err
	}
	tok, err := hf.LoadTokenizer(m.File)
	if err != nil {
		return nil, nil, err
	}
	if tok.VocabSize() > lm.Config.Vocab {
		return nil, nil, fmt.Errorf("jetstream: HF: %s: the tokenizer's %d tokens exceed the model's vocabulary of %d", m.Ref, tok.VocabSize(), lm.Config.Vocab)
	}
	return lm, tok, nil
}

func hfEncode(tok *hf.Tokenizer) func(string) ([]int32, error) {
	return func(s string) ([]int32, error) {
		ids, err := tok.Encode(s)
		return tok.AddSpecial(ids), err
	}
}

// Generator implements Loader.
func (l HF) Generator(ctx context.Context, m Model) (itec.Generator, error) {
	lm, tok, err := l.load(m)
	if err != nil {
		return nil, err
	}
	decode := func(ids []int32) string {
		s, err := tok.Decode(ids)
		if err != nil { // an id past the tokenizer's, in the model's padding
			return strings.Repeat("\uFFFD", len(ids))
		}
		return strings.ToValidUTF8(s, "\uFFFD")
	}
	return lmGen{m: lm, n: cmp.Or(l.Len, 32), temp: l.Temperature, topK: l.TopK, encode: hfEncode(tok), decode: decode}, nil
}

// Scorer implements Loader.
func (l HF) Scorer(ctx context.Context, m Model) (itec.Scorer, error) {
	lm, tok, err := l.load(m)
	if err != nil {
		return nil, err
	}
	return lmScorer{lm, hfEncode(tok)}, nil
}

// Teacher implements TeacherLoader.
func (l HF) Teacher(ctx context.Context, m Model) (cache.Teacher, error) {
	lm, _, err := l.load(m)
	if err != nil {
		return nil, err
	}
	return ModelTeacher(lm), nil
}

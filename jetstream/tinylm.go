package jetstream

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/posttrain/posttrain/distill/cache"
	"github.com/posttrain/posttrain/itec"
	"github.com/posttrain/posttrain/tensor"
	"github.com/posttrain/posttrain/tensor/nn"
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
	return tinyGen{lm, l}, nil
}

// Scorer implements Loader.
func (l TinyLM) Scorer(ctx context.Context, m Model) (itec.Scorer, error) {
	lm, err := l.load(m)
	if err != nil {
		return nil, err
	}
	return tinyScorer{lm}, nil
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

type tinyGen struct {
	m *nn.TinyLM
	l TinyLM
}

func (g tinyGen) Generate(ctx context.Context, prompt string, seeds []uint64) ([]string, error) {
	var tok nn.ByteTokenizer
	in := tok.Encode(prompt)
	n := g.l.Len
	if n == 0 {
		n = 32
	}
	out := make([]string, len(seeds))
	for i, seed := range seeds {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ids, err := g.m.Generate(in, n, nn.NewSampler(seed, g.l.Temperature, g.l.TopK, 0))
		if err != nil {
			return nil, err
		}
		var b strings.Builder
		for _, t := range ids {
			if (t < ' ' && t != '\n') || t > '~' {
				t = '?'
			}
			b.WriteByte(byte(t))
		}
		out[i] = b.String()
	}
	return out, nil
}

type tinyScorer struct{ m *nn.TinyLM }

func (s tinyScorer) Score(ctx context.Context, prompt string, responses []string) ([]float64, error) {
	var tok nn.ByteTokenizer
	in := tok.Encode(prompt)
	if len(in) == 0 {
		return nil, errors.New("jetstream: TinyLM: empty prompt")
	}
	out := make([]float64, len(responses))
	lp := make([]float32, s.m.Config.Vocab)
	for i, r := range responses {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		resp := tok.Encode(r)
		if len(in)+len(resp) > s.m.Config.Context {
			return nil, fmt.Errorf("jetstream: TinyLM: prompt and response %d are %d tokens, context is %d", i, len(in)+len(resp), s.m.Config.Context)
		}
		d := s.m.NewDecoder()
		var logits []float32
		var err error
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
	return TinyLMTeacher(lm), nil
}

// TinyLMTeacher is the cache.Teacher of a TinyLM, as TinyLM.Teacher loads
// it: a coordinator computing in process uses the same function.
func TinyLMTeacher(lm *nn.TinyLM) cache.Teacher {
	return func(tokens []int32) (*tensor.Dense, error) {
		if len(tokens) > lm.Config.Context {
			return nil, fmt.Errorf("jetstream: TinyLM teacher: batch of %d tokens, context is %d", len(tokens), lm.Config.Context)
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

package lab

import (
	"context"
	"errors"
	"math"

	"github.com/posttrain/posttrain/tensor/nn"
)

// Policy samples continuations from a TinyLM: Len bytes at Temperature
// with top-K, restricted to printable ASCII and newline, so responses stay
// valid UTF-8 text (JSONL round-trips them exactly). It implements
// itec.Generator: a response is a pure function of (prompt, seed).
type Policy struct {
	M           *nn.TinyLM
	Len         int
	Temperature float64
	TopK        int
}

// Generate implements itec.Generator.
func (p Policy) Generate(ctx context.Context, prompt string, seeds []uint64) ([]string, error) {
	var tok nn.ByteTokenizer
	in := tok.Encode(prompt)
	if len(in) == 0 {
		return nil, errors.New("lab: empty prompt")
	}
	d := p.M.NewDecoder()
	out := make([]string, len(seeds))
	buf := make([]byte, 0, p.Len)
	for i, seed := range seeds {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		d.Reset()
		s := nn.NewSamplerWith(seed, nn.SamplerOptions{Temperature: p.Temperature, TopK: p.TopK})
		var logits []float32
		var err error
		for _, t := range in {
			if logits, err = d.Step(t); err != nil {
				return nil, err
			}
		}
		buf = buf[:0]
		for range p.Len {
			mask(logits)
			t, err := s.Sample(logits)
			if err != nil {
				return nil, err
			}
			buf = append(buf, byte(t))
			if len(buf) == p.Len {
				break
			}
			if logits, err = d.Step(t); err != nil {
				return nil, err
			}
		}
		out[i] = string(buf)
	}
	return out, nil
}

var negInf = float32(math.Inf(-1))

// mask rules out every byte but printable ASCII and newline.
func mask(logits []float32) {
	for i := range logits {
		if (i < ' ' && i != '\n') || i > '~' {
			logits[i] = negInf
		}
	}
}

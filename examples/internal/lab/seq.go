package lab

import (
	"fmt"

	"github.com/posttrain/posttrain/prefopt"
	"github.com/posttrain/posttrain/tensor"
	"github.com/posttrain/posttrain/tensor/autograd"
	"github.com/posttrain/posttrain/tensor/nn"
)

// Seqs is a batch of prompt+response token sequences, right-padded to a
// common width, in the layout prefopt's sequence log-probs read.
type Seqs struct {
	Tokens []int32
	Layout prefopt.Layout
	Labels []int32
}

// MakeSeqs lays out prompt i followed by response i for every i.
func MakeSeqs(prompts, responses []string) (Seqs, error) {
	if len(prompts) != len(responses) {
		return Seqs{}, fmt.Errorf("lab: %d prompts, %d responses", len(prompts), len(responses))
	}
	var tok nn.ByteTokenizer
	var s Seqs
	for i := range prompts {
		n := len(prompts[i]) + len(responses[i])
		s.Layout.Width = max(s.Layout.Width, n)
		s.Layout.PromptLen = append(s.Layout.PromptLen, len(prompts[i]))
		s.Layout.Len = append(s.Layout.Len, n)
	}
	w := s.Layout.Width
	s.Tokens = make([]int32, len(prompts)*w)
	for i := range prompts {
		copy(s.Tokens[i*w:], tok.Encode(prompts[i]+responses[i]))
	}
	s.Labels = make([]int32, len(s.Tokens))
	if err := s.Layout.Labels(s.Labels, s.Tokens); err != nil {
		return Seqs{}, err
	}
	return s, nil
}

// N is the number of sequences.
func (s Seqs) N() int { return len(s.Layout.Len) }

// SeqLogProbs runs m over s on tape t and returns each response's summed
// log-prob with the logits, for SeqBackward.
func SeqLogProbs(t *autograd.Tape, m *nn.TinyLM, s Seqs) ([]float64, *autograd.Var, error) {
	logits, err := m.Forward(t, s.Tokens, s.N())
	if err != nil {
		return nil, nil, err
	}
	tok := make([]float32, len(s.Labels))
	if err := prefopt.TokenLogProbs(tok, logits.Value, s.Labels); err != nil {
		return nil, nil, err
	}
	lp := make([]float64, s.N())
	if err := prefopt.SequenceLogProbs(lp, tok, s.Layout, false); err != nil {
		return nil, nil, err
	}
	return lp, logits, nil
}

// SeqBackward backpropagates dSeq = dLoss/d(summed log-prob) through the
// logits that SeqLogProbs returned, into m's gradients.
func SeqBackward(t *autograd.Tape, logits *autograd.Var, s Seqs, dSeq []float64) error {
	dTok := make([]float32, len(s.Labels))
	if err := prefopt.SequenceLogProbsBackward(dTok, dSeq, s.Layout, false); err != nil {
		return err
	}
	grad := tensor.New(logits.Value.Shape()...)
	if err := prefopt.TokenLogProbsBackward(grad, logits.Value, s.Labels, dTok); err != nil {
		return err
	}
	t.Backward(logits, grad)
	return nil
}

// LogProbsOf returns the summed response log-probs under m, in batches,
// without gradients.
func LogProbsOf(m *nn.TinyLM, prompts, responses []string) ([]float64, error) {
	const per = 32
	out := make([]float64, 0, len(prompts))
	t := autograd.NewTape()
	for i := 0; i < len(prompts); i += per {
		j := min(i+per, len(prompts))
		s, err := MakeSeqs(prompts[i:j], responses[i:j])
		if err != nil {
			return nil, err
		}
		t.Reset()
		lp, _, err := SeqLogProbs(t, m, s)
		if err != nil {
			return nil, err
		}
		out = append(out, lp...)
	}
	return out, nil
}

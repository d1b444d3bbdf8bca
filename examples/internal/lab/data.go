// Package lab is the shared workbench of posttrain's example programs:
// what is specific to them — the corpus as byte tokens, the byte-level
// pre-training loop and its held-out measures, an oracle labeler and a
// calibrated rater, means with 95 % intervals, tables, plots and progress
// bars (on a terminal only) — and the few lines that point package
// recipe, where the trainers live, at bytes and text: a byte-level
// recipe.Generator (Gen), the examples' recipe.Committee (NewCommittee),
// online RL with held-out oracle curves (RL), and loading a Hugging Face
// directory for the -model runs (LoadHF). It is internal: the examples
// are what to read, and this package keeps them from repeating each
// other.
package lab

import (
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/posttrain/posttrain/examples/internal/corpus"
	"github.com/posttrain/posttrain/tensor/nn"
)

// Data is the corpus as byte tokens, split into a training part and a
// held-out part (the end of the book).
type Data struct {
	Train, Test []int32
	TrainText   string
	TestText    string
}

// Load returns the first maxBytes bytes of the corpus (all of it for
// maxBytes ≤ 0), the last tenth held out.
func Load(maxBytes int) Data {
	text := corpus.Opticks
	if maxBytes > 0 && maxBytes < len(text) {
		text = text[:maxBytes]
	}
	cut := len(text) * 9 / 10
	var tok nn.ByteTokenizer
	return Data{
		Train: tok.Encode(text[:cut]), Test: tok.Encode(text[cut:]),
		TrainText: text[:cut], TestText: text[cut:],
	}
}

// Prompts draws n prompts from text: stretches of about length bytes
// (at most length) that start at the beginning of a word and end at a
// word boundary, printable ASCII on one line, so a model continues
// mid-sentence. The draw is seeded; prompts are distinct.
func Prompts(text string, n, length int, seed uint64) ([]string, error) {
	if length < 2 || len(text) < 4*length {
		return nil, fmt.Errorf("lab: no prompts of %d bytes in a text of %d", length, len(text))
	}
	rng := rand.New(rand.NewPCG(seed, 0x9e0))
	seen := map[string]bool{}
	var out []string
	for tries := 0; len(out) < n; tries++ {
		if tries > 1000*n {
			return nil, fmt.Errorf("lab: found only %d of %d prompts of %d bytes", len(out), n, length)
		}
		i := rng.IntN(len(text) - 2*length)
		for i < len(text)-2*length && text[i] != ' ' {
			i++
		}
		s := text[i+1 : i+1+length]
		if j := strings.LastIndexByte(s, ' '); j > length/2 {
			s = s[:j]
		}
		if len(s) < length/2 || !printable(s) || seen[s] {
			continue
		}
		seen[s] = true
		out = append(out, s)
	}
	return out, nil
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

package lab

import (
	"context"
	"math/rand/v2"
	"strings"

	"github.com/posttrain/posttrain/itec"
	"github.com/posttrain/posttrain/prefopt"
)

// Words are the words the oracle looks for: light, rays and colours,
// Newton's seven colours of the spectrum among them.
var Words = []string{
	"light", "lights", "ray", "rays", "colour", "colours", "coloured",
	"red", "orange", "yellow", "green", "blue", "indigo", "violet", "purple",
}

// Oracle is the programmatic labeler of the synthetic preference task:
// it prefers continuations that talk about light and colour. Its reward
// is the number of whole words of Words (case-insensitive) in the
// response; between responses with as many it prefers the one more made
// of words (letters and spaces), weakly.
type Oracle struct{}

// Reward is the number of words of Words in s.
func (Oracle) Reward(s string) float64 {
	n := 0
	for _, w := range strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return r < 'a' || r > 'z' }) {
		for _, c := range Words {
			if w == c {
				n++
				break
			}
		}
	}
	return float64(n)
}

// wordiness is the fraction of s that is letters or spaces.
func wordiness(s string) float64 {
	if s == "" {
		return 0
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i] | 0x20
		if (c >= 'a' && c <= 'z') || s[i] == ' ' {
			n++
		}
	}
	return float64(n) / float64(len(s))
}

// Prefer labels a pair on AFM's four-point scale: two or more colours
// apart is significantly better, one is better; with as many colours,
// wordiness decides, slightly if it differs by 0.1 or more, else
// negligibly (a near tie, labeled anyway, as annotators must).
func (o Oracle) Prefer(a, b string) itec.Preference {
	d := o.Reward(a) - o.Reward(b)
	if d != 0 {
		lv := prefopt.Better
		if d >= 2 || d <= -2 {
			lv = prefopt.SignificantlyBetter
		}
		return itec.Preference{PreferA: d > 0, Level: lv}
	}
	w := wordiness(a) - wordiness(b)
	lv := prefopt.NegligiblyBetter
	if w >= 0.1 || w <= -0.1 {
		lv = prefopt.SlightlyBetter
	}
	return itec.Preference{PreferA: w >= 0, Level: lv}
}

// Label implements itec.Labeler.
func (o Oracle) Label(_ context.Context, _, a, b string) (itec.Preference, error) {
	return o.Prefer(a, b), nil
}

// PairOf returns the labeled pair for responses a and b to prompt.
func (o Oracle) PairOf(prompt, a, b string) prefopt.Pair {
	p := o.Prefer(a, b)
	if !p.PreferA {
		a, b = b, a
	}
	return prefopt.Pair{Prompt: prompt, Chosen: a, Rejected: b, Level: p.Level}
}

// LabelSamples draws up to perPrompt pairs of different responses per
// prompt at random (seeded), no pair of texts twice, and labels them with
// the oracle.
func LabelSamples(prompts []string, samples [][]string, perPrompt int, seed uint64) []prefopt.Pair {
	rng := rand.New(rand.NewPCG(seed, 0x1abe1))
	var o Oracle
	var out []prefopt.Pair
	for i, p := range prompts {
		s := samples[i]
		seen := map[[2]string]bool{}
		for tries := 0; len(seen) < perPrompt && tries < 20*perPrompt; tries++ {
			a, b := rng.IntN(len(s)), rng.IntN(len(s))
			if s[a] == s[b] || seen[[2]string{s[a], s[b]}] || seen[[2]string{s[b], s[a]}] {
				continue
			}
			seen[[2]string{s[a], s[b]}] = true
			out = append(out, o.PairOf(p, s[a], s[b]))
		}
	}
	return out
}

// LevelCounts counts pairs per level, in AFM's order (significantly …
// negligibly better).
func LevelCounts(pairs []prefopt.Pair) [4]int {
	var c [4]int
	for _, p := range pairs {
		if p.Level.Valid() {
			c[p.Level-prefopt.SignificantlyBetter]++
		}
	}
	return c
}

// Decided returns the pairs labeled above negligibly better: the ones a
// hard-label objective (DPO, IPO, SimPO) should learn from. Near ties
// carry little signal and, labeled either way, mostly teach noise; the
// soft-label reward model keeps them with their low weight instead.
func Decided(pairs []prefopt.Pair) []prefopt.Pair {
	var out []prefopt.Pair
	for _, p := range pairs {
		if p.Level != prefopt.NegligiblyBetter {
			out = append(out, p)
		}
	}
	return out
}

// Rater returns pairs as a rater whose confidence is calibrated labels
// them: each keeps its level, but its chosen and rejected responses are
// swapped with probability 1 − Level.Prob() (5 % for significantly
// better up to 35 % for negligibly better), the probability that AFM's
// soft-label ranking loss assigns to the label being wrong. It also
// returns how many pairs it swapped. The draw is seeded.
func Rater(pairs []prefopt.Pair, seed uint64) ([]prefopt.Pair, int) {
	rng := rand.New(rand.NewPCG(seed, 0x7a7e))
	out := make([]prefopt.Pair, len(pairs))
	n := 0
	for i, p := range pairs {
		if rng.Float64() < 1-p.Level.Prob() {
			p.Chosen, p.Rejected = p.Rejected, p.Chosen
			n++
		}
		out[i] = p
	}
	return out, n
}

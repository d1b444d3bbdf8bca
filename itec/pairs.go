package itec

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"

	"github.com/posttrain/posttrain/internal/parallel"
	"github.com/posttrain/posttrain/prefopt"
)

// PairStrategy chooses which of a prompt's samples are sent to the labeler.
type PairStrategy int

const (
	// BestWorst pairs the best-scored sample with the worst: the most
	// informative single comparison when the reward model is decent.
	BestWorst PairStrategy = iota
	// RandomPairs draws PerPrompt pairs of distinct responses at random
	// (seeded): unbiased by the reward model, and the only choice before a
	// reward model exists.
	RandomPairs
	// AboveGap takes every pair whose scores differ by at least Gap.
	AboveGap
)

// PairOptions sets how candidate pairs are drawn.
type PairOptions struct {
	Strategy  PairStrategy
	PerPrompt int     // RandomPairs: pairs per prompt; 0 means 1
	Gap       float64 // AboveGap: the minimum score difference
	Seed      uint64
	Round     int
}

// Candidate is a pair of responses awaiting a label.
type Candidate struct {
	Prompt string `json:"prompt"`
	A      string `json:"a"`
	B      string `json:"b"`
}

// Candidates draws pairs to label from each prompt's samples (as Collect or
// RejectionSample return them). Identical responses are never paired.
// Scored strategies need scored samples.
func Candidates(prompts []string, samples [][]Sample, opt PairOptions) ([]Candidate, error) {
	if len(prompts) != len(samples) {
		return nil, fmt.Errorf("itec: Candidates: %d prompts but %d sample sets", len(prompts), len(samples))
	}
	if opt.PerPrompt > MaxSamples {
		return nil, fmt.Errorf("itec: Candidates: PerPrompt = %d, above MaxSamples = %d", opt.PerPrompt, MaxSamples)
	}
	var out []Candidate
	for p, s := range samples {
		// Distinct texts only, keeping each text's best score and its first
		// position for determinism.
		var uniq []Sample
		pos := map[string]int{}
		for _, x := range s {
			if j, ok := pos[x.Text]; ok {
				if x.Score > uniq[j].Score {
					uniq[j].Score = x.Score
				}
				continue
			}
			pos[x.Text] = len(uniq)
			uniq = append(uniq, x)
		}
		if len(uniq) < 2 {
			continue
		}
		add := func(a, b Sample) { out = append(out, Candidate{Prompt: prompts[p], A: a.Text, B: b.Text}) }
		switch opt.Strategy {
		case BestWorst:
			byScore := append([]Sample(nil), uniq...)
			sort.SliceStable(byScore, func(i, j int) bool { return byScore[i].Score > byScore[j].Score })
			add(byScore[0], byScore[len(byScore)-1])
		case RandomPairs:
			r := rand.New(rand.NewPCG(Seed(opt.Seed, opt.Round, p, -1, -1), 0x5eed))
			k := max(opt.PerPrompt, 1)
			for range k {
				i := r.IntN(len(uniq))
				j := r.IntN(len(uniq) - 1)
				if j >= i {
					j++
				}
				add(uniq[i], uniq[j])
			}
		case AboveGap:
			for i := range uniq {
				for j := i + 1; j < len(uniq); j++ {
					if d := uniq[i].Score - uniq[j].Score; d >= opt.Gap || -d >= opt.Gap {
						add(uniq[i], uniq[j])
					}
				}
			}
		default:
			return nil, fmt.Errorf("itec: unknown PairStrategy %d", opt.Strategy)
		}
	}
	return out, nil
}

// Label sends every candidate to the labeler, at most workers at a time,
// and returns the labeled pairs in candidate order. done, if not nil, is
// called (from one goroutine at a time) after each label, with the
// candidate's index, so a caller can save labels as they arrive: human
// labels are the one thing a run must never lose.
func Label(ctx context.Context, l Labeler, cands []Candidate, workers int, done func(i int, p prefopt.Pair) error) ([]prefopt.Pair, error) {
	if l == nil {
		return nil, fmt.Errorf("itec: Label: nil labeler")
	}
	return labelEach(ctx, func(ctx context.Context, i int, c Candidate) (Preference, error) {
		return l.Label(ctx, c.Prompt, c.A, c.B)
	}, cands, workers, done)
}

// labelEach is Label with the labeler's call given as ask, which also
// receives the candidate's index.
func labelEach(ctx context.Context, ask func(ctx context.Context, i int, c Candidate) (Preference, error), cands []Candidate, workers int, done func(i int, p prefopt.Pair) error) ([]prefopt.Pair, error) {
	out := make([]prefopt.Pair, len(cands))
	var mu sync.Mutex
	err := parallel.Each(ctx, len(cands), max(workers, 1), func(ctx context.Context, i int) error {
		p, err := label(ctx, i, ask, cands[i])
		if err != nil {
			return fmt.Errorf("itec: labeling candidate %d: %w", i, err)
		}
		out[i] = p
		if done != nil {
			mu.Lock()
			defer mu.Unlock()
			return done(i, p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func label(ctx context.Context, i int, ask func(context.Context, int, Candidate) (Preference, error), c Candidate) (prefopt.Pair, error) {
	pref, err := ask(ctx, i, c)
	if err != nil {
		return prefopt.Pair{}, err
	}
	if !pref.Level.Valid() {
		return prefopt.Pair{}, fmt.Errorf("labeler returned invalid level %v", pref.Level)
	}
	p := prefopt.Pair{Prompt: c.Prompt, Chosen: c.A, Rejected: c.B, Level: pref.Level}
	if !pref.PreferA {
		p.Chosen, p.Rejected = c.B, c.A
	}
	return p, nil
}

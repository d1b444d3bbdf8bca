package itec_test

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/posttrain/posttrain/itec"
	"github.com/posttrain/posttrain/prefopt"
)

// byWords is a labeler that prefers the longer response; a bigger gap in
// words is a stronger preference.
type byWords struct{}

func (byWords) Label(_ context.Context, _, a, b string) (itec.Preference, error) {
	na, nb := len(strings.Fields(a)), len(strings.Fields(b))
	lvl := prefopt.NegligiblyBetter
	if d := max(na-nb, nb-na); d >= 3 {
		lvl = prefopt.SignificantlyBetter
	}
	return itec.Preference{PreferA: na > nb, Level: lvl}, nil
}

// fixedRM is a reward model that is never retrained: the word count.
type fixedRM struct{}

func (fixedRM) Refresh(context.Context, int, []prefopt.Pair) (itec.Scorer, string, error) {
	return wordCount{}, "words", nil
}
func (fixedRM) LoadReward(context.Context, string) (itec.Scorer, error) { return wordCount{}, nil }

// imitator "trains" a member by memorizing the round's distilled demos:
// rejection sampling in miniature.
type imitator struct{ trained map[string]fixed }

func (m *imitator) Train(_ context.Context, req itec.TrainRequest) (itec.Member, error) {
	g := fixed{}
	for _, d := range req.Demos {
		g[d.Prompt] = d.Response
	}
	ref := fmt.Sprintf("imitator-%d", req.Round)
	m.trained[ref] = g
	return itec.Member{Algorithm: req.Algorithm, Ref: ref, Model: g}, nil
}

func (m *imitator) LoadMember(_ context.Context, mem itec.Member) (itec.Generator, error) {
	g, ok := m.trained[mem.Ref]
	if !ok {
		return nil, fmt.Errorf("no member %q", mem.Ref)
	}
	return g, nil
}

// meanWords evaluates a member by its responses' mean word count.
type meanWords struct{ prompts []string }

func (e meanWords) Evaluate(ctx context.Context, m itec.Member) (float64, error) {
	var s float64
	for _, p := range e.prompts {
		out, err := m.Model.Generate(ctx, p, []uint64{0})
		if err != nil {
			return 0, err
		}
		s += float64(len(strings.Fields(out[0])))
	}
	return s / float64(len(e.prompts)), nil
}

// Run drives AFM's iTeC loop: each round the committee samples, a labeler
// labels pairs, the reward model is refreshed, committee rejection
// sampling keeps each prompt's best response, new members are trained on
// it and the best members form the next committee. Every step is
// checkpointed in Dir, so a killed run resumes where it stopped.
func ExampleRun() {
	dir, err := os.MkdirTemp("", "itec-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	prompts := []string{"sum", "poem"}
	st, err := itec.Run(context.Background(), itec.Config{
		Dir:     dir,
		Prompts: prompts,
		Rounds:  2,
		Initial: []itec.Member{
			{Name: "terse", Algorithm: itec.SFT, Model: fixed{"sum": "4", "poem": "roses are red violets are blue"}},
			{Name: "wordy", Algorithm: itec.SFT, Model: fixed{"sum": "two plus two is four", "poem": "roses"}},
		},
		Algorithms: []itec.Algorithm{itec.RejectionSampling},
		Samples:    1,
		Seed:       1,
		Labeler:    byWords{},
		Rewards:    fixedRM{},
		Trainer:    &imitator{trained: map[string]fixed{}},
		Evaluator:  meanWords{prompts},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range st.History {
		fmt.Printf("round %d: committee %v, %d new pairs, wins %v, trained %v, next %v\n",
			r.Round, r.Committee, r.NewPairs, r.Wins, r.Trained, r.Next)
	}
	for _, m := range st.Members {
		fmt.Printf("%s: %.1f words\n", m.Name, *m.Eval)
	}
	// Output:
	// round 1: committee [terse wordy], 2 new pairs, wins map[terse:1 wordy:1], trained [r1-rejection-sampling], next [r1-rejection-sampling terse wordy]
	// round 2: committee [r1-rejection-sampling terse wordy], 2 new pairs, wins map[r1-rejection-sampling:2 terse:0 wordy:0], trained [r2-rejection-sampling], next [r2-rejection-sampling r1-rejection-sampling terse]
	// terse: 3.5 words
	// wordy: 3.0 words
	// r1-rejection-sampling: 5.5 words
	// r2-rejection-sampling: 5.5 words
}

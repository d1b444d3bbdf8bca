package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/posttrain/posttrain/examples/internal/lab"
	"github.com/posttrain/posttrain/internal/parallel"
	"github.com/posttrain/posttrain/prefopt"
	"github.com/posttrain/posttrain/tensor/nn"
)

// rewardStage builds the preference task from the student's samples and
// the book's own continuations, and compares soft-label and Bradley–Terry
// reward models trained on a calibrated rater's noisy labels.
func rewardStage(ctx context.Context, cfg config, data lab.Data, student *nn.TinyLM, res *results, w io.Writer) (prefTask, error) {
	p := prefTask{student: student}
	var err error
	if p.trainPrompts, err = lab.Prompts(data.TrainText, cfg.TrainPrompts, cfg.PromptLen, cfg.Seed); err != nil {
		return p, err
	}
	if p.testPrompts, err = lab.Prompts(data.TestText, cfg.TestPrompts, cfg.PromptLen, cfg.Seed+1); err != nil {
		return p, err
	}
	pol := policy(cfg, student)
	// Candidates per prompt: the student's samples, the book's own
	// continuation and two other stretches of the book, which talk about
	// light and colour far more often than the small student does, so
	// that pairs span all four levels.
	const other = 2
	cands := func(prompts []string, text string, seed uint64) ([][]string, error) {
		s, err := lab.Sample(ctx, pol, prompts, cfg.Samples, seed)
		if err != nil {
			return nil, err
		}
		snips, err := lab.Prompts(text, other*len(prompts), cfg.RespLen, seed+1)
		if err != nil {
			return nil, err
		}
		for i, q := range prompts {
			if c := continuation(text, q, cfg.RespLen); c != "" {
				s[i] = append(s[i], c)
			}
			s[i] = append(s[i], snips[other*i:other*(i+1)]...)
		}
		return s, nil
	}
	trainC, err := cands(p.trainPrompts, data.TrainText, cfg.Seed+10)
	if err != nil {
		return p, err
	}
	testC, err := cands(p.testPrompts, data.TestText, cfg.Seed+11)
	if err != nil {
		return p, err
	}
	truth := lab.LabelSamples(p.trainPrompts, trainC, 6, cfg.Seed+12)
	// The held-out verdicts that matter: every pair of a held-out prompt's
	// candidates whose oracle rewards differ (the oracle's own reward, not
	// its tie-break on wordiness), higher reward chosen.
	var graded []prefopt.Pair
	var o lab.Oracle
	for i, q := range p.testPrompts {
		c := testC[i]
		for a := range c {
			for b := a + 1; b < len(c); b++ {
				ra, rb := o.Reward(c[a]), o.Reward(c[b])
				switch {
				case ra > rb:
					graded = append(graded, prefopt.Pair{Prompt: q, Chosen: c[a], Rejected: c[b]})
				case rb > ra:
					graded = append(graded, prefopt.Pair{Prompt: q, Chosen: c[b], Rejected: c[a]})
				}
			}
		}
	}

	kinds := []struct {
		name string
		bt   bool
	}{{"soft-label ranking (AFM)", false}, {"Bradley–Terry (control)", true}}
	accG := make([][]float64, len(kinds))
	var flipped []int
	noisy := make([][]prefopt.Pair, cfg.RMSeeds)
	for s := range noisy {
		var nf int
		noisy[s], nf = lab.Rater(truth, cfg.Seed+40+uint64(s))
		flipped = append(flipped, nf)
	}
	for i := range kinds {
		accG[i] = make([]float64, cfg.RMSeeds)
	}
	// Seeds × losses independent runs, two at a time.
	bar := lab.NewBar(cfg.Progress, cfg.RMSeeds*len(kinds)*cfg.RewardSteps, fmt.Sprintf("3/5 reward models: %d losses × %d seeds", len(kinds), cfg.RMSeeds))
	err = parallel.Each(ctx, cfg.RMSeeds*len(kinds), 0, func(ctx context.Context, job int) error {
		s, i := job/len(kinds), job%len(kinds)
		rm := lab.NewRewardModel(student)
		rc := lab.RewardConfig{Steps: cfg.RewardSteps, Batch: 16, LR: cfg.RewardLR, Seed: cfg.Seed + 14 + uint64(s), BradleyTerry: kinds[i].bt}
		if _, err := lab.TrainReward(ctx, rm, noisy[s], rc, bar); err != nil {
			return err
		}
		accG[i][s] = math.NaN() // no pair to judge
		if len(graded) > 0 {
			g, _, err := lab.Accuracy(rm, graded)
			if err != nil {
				return err
			}
			accG[i][s] = g
		}
		return nil
	})
	bar.Finish()
	if err != nil {
		return p, err
	}
	p.testPairs = graded
	lv := lab.LevelCounts(truth)
	t := lab.Table{
		Title: fmt.Sprintf("Stage 3. Reward models: %d training pairs labeled by a calibrated rater; %d held-out pairs whose oracle rewards differ", len(truth), len(graded)),
		Head:  []string{"reward-model loss", "ranks the held-out pairs as the oracle does (%)", "this − Bradley–Terry's, same seed (points)"},
	}
	for i, k := range kinds {
		d := ""
		if i == 0 {
			d = pct(lab.MeanCI(diff(accG[0], accG[1]))).Format("%+.1f")
		}
		t.Rows = append(t.Rows, []string{k.name, pct(lab.MeanCI(accG[i])).Format("%.1f"), d})
	}
	t.Note = fmt.Sprintf("The oracle's reward is the number of light and colour words in a response; it grades a pair significantly better (%d training pairs), better (%d), "+
		"slightly better (%d) or negligibly better (%d): the last two are ties on that reward broken by wordiness. The rater reports the grade but prefers the wrong response "+
		"with probability 1 − p(grade) = 5, 15, 25, 35 %% (mean %.0f flipped pairs per seed), which only the soft-label loss is told. Held-out pairs: every two of a held-out prompt's %d to %d candidates (the student's samples, the book's continuation, two other stretches of the book) whose rewards differ (n/a: none). ",
		lv[0], lv[1], lv[2], lv[3], mean(flipped), cfg.Samples+other, cfg.Samples+other+1) + seedsNote(cfg.RMSeeds) + " One seed = one draw of the rater's noise and one order of batches."
	return p, res.add(w, t)
}

// continuation returns the n bytes of text that follow the first
// occurrence of prompt (and a space), or "" if there is none.
func continuation(text, prompt string, n int) string {
	i := strings.Index(text, prompt)
	if i < 0 {
		return ""
	}
	s := text[i+len(prompt):]
	if len(s) < n {
		return ""
	}
	s = s[:n]
	for j := 0; j < len(s); j++ {
		if (s[j] < ' ' && s[j] != '\n') || s[j] > '~' {
			return ""
		}
	}
	return s
}

func mean(v []int) float64 {
	var s float64
	for _, x := range v {
		s += float64(x)
	}
	return s / float64(max(1, len(v)))
}

package itec

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"

	"github.com/posttrain/posttrain/internal/parallel"
)

// SampleOptions sets how the committee samples.
type SampleOptions struct {
	N       int    // responses per member per prompt; 0 means 4
	Workers int    // prompts processed at once; 0 means GOMAXPROCS
	Seed    uint64 // the run's seed (see Seed)
	Round   int
	// Executor runs the sampling and scoring; nil means InProcess.
	Executor Executor
	// Step and RewardRef qualify the scoring tasks' IDs (ScoreID): which
	// step of Round scores, and the RewardTrainer's handle of the reward
	// model, which a remote executor loads by it.
	Step      Step
	RewardRef string
}

func (o SampleOptions) withDefaults() SampleOptions {
	if o.N == 0 {
		o.N = 4
	}
	if o.Workers == 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	return o
}

// Sample is one response of one member.
type Sample struct {
	Member int     `json:"member"` // index into the committee
	Index  int     `json:"index"`  // 0 … N−1 within the member
	Text   string  `json:"text"`
	Score  float64 `json:"score"` // the reward model's score; 0 before scoring
}

// Choice is committee distillation's pick for one prompt: the best response
// across every member's samples by the reward model, with its provenance.
type Choice struct {
	Prompt    string    `json:"prompt"`
	Response  string    `json:"response"`
	Member    string    `json:"member"`
	Algorithm Algorithm `json:"algorithm"`
	Sample    int       `json:"sample"` // the response's index among its member's N
	Score     float64   `json:"score"`
	// Ranking lists the members from best to worst by their best score on
	// this prompt; Ranking[0] is Member. Margin is the chosen score minus
	// the runner-up member's best (0 for a one-member committee).
	Ranking []string `json:"ranking"`
	Margin  float64  `json:"margin"`
}

// Selection is the result of RejectionSample.
type Selection struct {
	Choices []Choice   // one per prompt, in prompt order
	Samples [][]Sample // per prompt, every sample, member by member
	Wins    []int      // per committee member, the prompts it won
}

// Demos returns the choices as fine-tuning examples.
func (s *Selection) Demos() []Demo {
	d := make([]Demo, len(s.Choices))
	for i, c := range s.Choices {
		d[i] = Demo{Prompt: c.Prompt, Response: c.Response}
	}
	return d
}

// Collect samples opt.N responses per prompt from every member, unscored.
// Samples come back per prompt, member by member, whatever the number of
// workers.
func Collect(ctx context.Context, committee []Member, prompts []string, opt SampleOptions) ([][]Sample, error) {
	opt = opt.withDefaults()
	if err := checkCommittee(committee, opt); err != nil {
		return nil, err
	}
	out := make([][]Sample, len(prompts))
	err := parallel.Each(ctx, len(prompts), opt.Workers, func(ctx context.Context, p int) error {
		s, err := generate(ctx, committee, prompts[p], p, opt)
		out[p] = s
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// RejectionSample is AFM's committee distillation: for every prompt, every
// member samples opt.N responses, the reward model scores them all in one
// batch, and the best response across the whole committee is kept — per
// prompt, not one best model overall. Ties go to the earlier member, then
// the earlier sample, so the result is the same for any number of workers.
//
// Cancelling ctx stops the work promptly: RejectionSample returns ctx's
// error once every worker has stopped, leaving no goroutine behind.
func RejectionSample(ctx context.Context, committee []Member, rm Scorer, prompts []string, opt SampleOptions) (*Selection, error) {
	opt = opt.withDefaults()
	if err := checkCommittee(committee, opt); err != nil {
		return nil, err
	}
	if rm == nil {
		return nil, errors.New("itec: RejectionSample: nil reward model")
	}
	sel := &Selection{
		Choices: make([]Choice, len(prompts)),
		Samples: make([][]Sample, len(prompts)),
		Wins:    make([]int, len(committee)),
	}
	err := parallel.Each(ctx, len(prompts), opt.Workers, func(ctx context.Context, p int) error {
		s, err := generate(ctx, committee, prompts[p], p, opt)
		if err != nil {
			return err
		}
		if err := score(ctx, rm, prompts[p], p, s, opt); err != nil {
			return fmt.Errorf("itec: prompt %d: %w", p, err)
		}
		sel.Samples[p] = s
		sel.Choices[p] = choose(committee, prompts[p], s)
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, c := range sel.Choices {
		for m := range committee {
			if committee[m].Name == c.Member {
				sel.Wins[m]++
				break
			}
		}
	}
	return sel, nil
}

// MaxSamples bounds SampleOptions.N (and Config.Samples): a count from a
// corrupt config is an error, not an allocation that kills the process.
const MaxSamples = 1 << 20

func checkCommittee(committee []Member, opt SampleOptions) error {
	if len(committee) == 0 {
		return errors.New("itec: empty committee")
	}
	if opt.N < 1 || opt.Workers < 1 {
		return fmt.Errorf("itec: need N ≥ 1 and Workers ≥ 1, have N = %d, Workers = %d", opt.N, opt.Workers)
	}
	if opt.N > MaxSamples {
		return fmt.Errorf("itec: N = %d samples per member and prompt, above MaxSamples = %d", opt.N, MaxSamples)
	}
	seen := map[string]bool{}
	for i, m := range committee {
		switch {
		case m.Model == nil:
			return fmt.Errorf("itec: committee member %d (%q) has no model", i, m.Name)
		case m.Name == "" || seen[m.Name]:
			return fmt.Errorf("itec: committee member %d has an empty or repeated name %q", i, m.Name)
		}
		seen[m.Name] = true
	}
	return nil
}

// generate samples every member's N responses to prompt p.
func generate(ctx context.Context, committee []Member, prompt string, p int, opt SampleOptions) ([]Sample, error) {
	out := make([]Sample, 0, len(committee)*opt.N)
	seeds := make([]uint64, opt.N)
	for m, mem := range committee {
		for i := range seeds {
			seeds[i] = Seed(opt.Seed, opt.Round, p, m, i)
		}
		texts, err := executorOr(opt.Executor).Generate(ctx, GenerateTask{
			ID:     GenerateID(opt.Round, p, m, mem.Name, 0, opt.N),
			Member: mem,
			Prompt: prompt,
			Seeds:  seeds,
		})
		if err != nil {
			return nil, fmt.Errorf("itec: member %q on prompt %d: %w", mem.Name, p, err)
		}
		if len(texts) != opt.N {
			return nil, fmt.Errorf("itec: member %q returned %d responses for %d seeds on prompt %d", mem.Name, len(texts), opt.N, p)
		}
		for i, t := range texts {
			out = append(out, Sample{Member: m, Index: i, Text: t})
		}
	}
	return out, nil
}

func score(ctx context.Context, rm Scorer, prompt string, p int, s []Sample, opt SampleOptions) error {
	texts := make([]string, len(s))
	for i := range s {
		texts[i] = s[i].Text
	}
	scores, err := executorOr(opt.Executor).Score(ctx, ScoreTask{
		ID:        ScoreID(opt.Round, opt.Step, p, opt.RewardRef),
		Reward:    rm,
		RewardRef: opt.RewardRef,
		Prompt:    prompt,
		Responses: texts,
	})
	if err != nil {
		return err
	}
	if len(scores) != len(s) {
		return fmt.Errorf("reward model returned %d scores for %d responses", len(scores), len(s))
	}
	for i, v := range scores {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("reward model scored response %d (member %d, sample %d) as %v", i, s[i].Member, s[i].Index, v)
		}
		s[i].Score = v
	}
	return nil
}

// choose picks the best sample (ties: earlier member, then earlier sample)
// and ranks the members by their best scores.
func choose(committee []Member, prompt string, s []Sample) Choice {
	best := make([]int, len(committee)) // index into s of each member's best
	for i := range best {
		best[i] = -1
	}
	for i, x := range s {
		if b := best[x.Member]; b < 0 || x.Score > s[b].Score {
			best[x.Member] = i
		}
	}
	order := make([]int, 0, len(committee))
	for m := range committee {
		if best[m] >= 0 {
			order = append(order, m)
		}
	}
	// Stable insertion sort by best score, descending: committees are small.
	for i := 1; i < len(order); i++ {
		for j := i; j > 0 && s[best[order[j]]].Score > s[best[order[j-1]]].Score; j-- {
			order[j], order[j-1] = order[j-1], order[j]
		}
	}
	w := s[best[order[0]]]
	c := Choice{
		Prompt:    prompt,
		Response:  w.Text,
		Member:    committee[w.Member].Name,
		Algorithm: committee[w.Member].Algorithm,
		Sample:    w.Index,
		Score:     w.Score,
	}
	for _, m := range order {
		c.Ranking = append(c.Ranking, committee[m].Name)
	}
	if len(order) > 1 {
		c.Margin = w.Score - s[best[order[1]]].Score
	}
	return c
}

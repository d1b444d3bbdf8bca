package itec

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/posttrain/posttrain/prefopt"
)

// A synthetic world with a known true reward. Each prompt "q<i>" has a
// target digit; a response is "a<d>" and its true reward is −|d − target|.
// Members are noisy samplers around the target, each accurate on its own
// kind of prompt, so that no single member is best everywhere.

type world struct {
	prompts []string
	target  map[string]int
}

func newWorld(n int) *world {
	w := &world{target: map[string]int{}}
	r := rand.New(rand.NewPCG(42, 0))
	for i := range n {
		p := fmt.Sprintf("q%d", i)
		w.prompts = append(w.prompts, p)
		w.target[p] = r.IntN(10)
	}
	return w
}

func (w *world) reward(prompt, resp string) float64 {
	d, err := strconv.Atoi(strings.TrimPrefix(resp, "a"))
	if err != nil {
		return -100
	}
	return -math.Abs(float64(d - w.target[prompt]))
}

func hash(parts ...string) uint64 {
	h := fnv.New64a()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return h.Sum64()
}

// sampler draws a digit around the target: within ±1 with probability
// skill on the prompts it is good at (parity == prompt index parity, or
// always if parity < 0), uniformly at random otherwise.
type sampler struct {
	w      *world
	parity int
	skill  float64
	calls  atomic.Int64
}

func (s *sampler) Generate(ctx context.Context, prompt string, seeds []uint64) ([]string, error) {
	s.calls.Add(1)
	idx, _ := strconv.Atoi(strings.TrimPrefix(prompt, "q"))
	good := s.parity < 0 || idx%2 == s.parity
	out := make([]string, len(seeds))
	for i, seed := range seeds {
		r := rand.New(rand.NewPCG(seed, hash(prompt)))
		d := r.IntN(10)
		if good && r.Float64() < s.skill {
			d = min(max(s.w.target[prompt]+r.IntN(3)-1, 0), 9)
		}
		out[i] = fmt.Sprintf("a%d", d)
	}
	return out, nil
}

// noisyRM is the true reward plus a fixed pseudo-random error per response.
type noisyRM struct {
	w     *world
	noise float64
}

func (m noisyRM) Score(ctx context.Context, prompt string, responses []string) ([]float64, error) {
	out := make([]float64, len(responses))
	for i, t := range responses {
		u := float64(hash(prompt, t)%1000)/1000 - 0.5
		out[i] = m.w.reward(prompt, t) + m.noise*u
	}
	return out, nil
}

// oracle labels by true reward, with AFM's levels by the size of the gap.
type oracle struct {
	w     *world
	calls atomic.Int64
}

func (o *oracle) Label(ctx context.Context, prompt, a, b string) (Preference, error) {
	o.calls.Add(1)
	ra, rb := o.w.reward(prompt, a), o.w.reward(prompt, b)
	gap := math.Abs(ra - rb)
	lvl := prefopt.NegligiblyBetter
	switch {
	case gap >= 3:
		lvl = prefopt.SignificantlyBetter
	case gap >= 2:
		lvl = prefopt.Better
	case gap >= 1:
		lvl = prefopt.SlightlyBetter
	}
	return Preference{PreferA: ra > rb || ra == rb && a < b, Level: lvl}, nil
}

// rmTrainer "refreshes" to a reward model whose noise shrinks with the
// number of labels: a stand-in with the right interface and determinism.
type rmTrainer struct{ w *world }

func (t rmTrainer) Refresh(ctx context.Context, round int, pairs []prefopt.Pair) (Scorer, string, error) {
	ref := fmt.Sprintf("rm/%d", len(pairs))
	s, err := t.LoadReward(ctx, ref)
	return s, ref, err
}

func (t rmTrainer) LoadReward(ctx context.Context, ref string) (Scorer, error) {
	n, err := strconv.Atoi(strings.TrimPrefix(ref, "rm/"))
	if err != nil {
		return nil, err
	}
	return noisyRM{t.w, 4 / math.Sqrt(1+float64(n))}, nil
}

// memo is a trained member: it answers the distilled response for prompts
// it was trained on and defers to a fallback sampler elsewhere. It is saved
// to a file, as real weights would be.
type memo struct {
	Table    map[string]string `json:"table"`
	fallback Generator
}

func (m *memo) Generate(ctx context.Context, prompt string, seeds []uint64) ([]string, error) {
	if t, ok := m.Table[prompt]; ok {
		out := make([]string, len(seeds))
		for i := range out {
			out[i] = t
		}
		return out, nil
	}
	return m.fallback.Generate(ctx, prompt, seeds)
}

type memoTrainer struct {
	dir      string
	fallback Generator
	calls    atomic.Int64
}

func (t *memoTrainer) Train(ctx context.Context, req TrainRequest) (Member, error) {
	t.calls.Add(1)
	m := &memo{Table: map[string]string{}, fallback: t.fallback}
	switch req.Algorithm {
	case DPO, IPO: // learn the chosen side of every pair
		for _, p := range req.Pairs {
			m.Table[p.Prompt] = p.Chosen
		}
	default: // imitate the committee's best
		for _, d := range req.Demos {
			m.Table[d.Prompt] = d.Response
		}
	}
	b, _ := json.Marshal(m)
	path := filepath.Join(t.dir, fmt.Sprintf("member-r%d-%s-%d.json", req.Round, req.Algorithm, req.Seed))
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return Member{}, err
	}
	return Member{Model: m, Ref: path}, nil
}

func (t *memoTrainer) LoadMember(ctx context.Context, mem Member) (Generator, error) {
	b, err := os.ReadFile(mem.Ref)
	if err != nil {
		return nil, err
	}
	m := &memo{fallback: t.fallback}
	return m, json.Unmarshal(b, m)
}

// trueEval is a member's mean true reward over the prompts, one sample each.
type trueEval struct{ w *world }

func (e trueEval) Evaluate(ctx context.Context, m Member) (float64, error) {
	var sum float64
	for i, p := range e.w.prompts {
		out, err := m.Model.Generate(ctx, p, []uint64{Seed(7, 0, i, 0, 0)})
		if err != nil {
			return 0, err
		}
		sum += e.w.reward(p, out[0])
	}
	return sum / float64(len(e.w.prompts)), nil
}

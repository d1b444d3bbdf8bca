package jetstream

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/posttrain/posttrain/itec"
	"github.com/posttrain/posttrain/prefopt"
)

// A synthetic world with a known true reward, as in package itec's tests:
// prompt "q<i>" has a target digit, a response "a<d>" earns −|d − target|,
// and members are noisy samplers each accurate on its own prompts. The
// coordinator's models and the workers' (built by world.loader from the
// same refs and checkpoint files) are the same functions, which is what a
// distributed run equal to the in-process one requires.

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
// skill on prompts of its parity (all if parity < 0), at random otherwise.
// delay makes each call slow, as a real generation is.
type sampler struct {
	w      *world
	parity int
	skill  float64
	delay  time.Duration
}

func (s sampler) Generate(ctx context.Context, prompt string, seeds []uint64) ([]string, error) {
	if s.delay > 0 {
		select {
		case <-time.After(s.delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
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

// specialists are the initial committee; Ref names each for the workers.
func (w *world) specialists() []itec.Member {
	var out []itec.Member
	for _, name := range []string{"even", "odd", "all"} {
		g, _ := w.initial(name, 0)
		out = append(out, itec.Member{Name: "spec-" + name, Algorithm: itec.SFT, Ref: "spec/" + name, Model: g})
	}
	return out
}

func (w *world) initial(name string, delay time.Duration) (itec.Generator, error) {
	switch name {
	case "even":
		return sampler{w, 0, 0.7, delay}, nil
	case "odd":
		return sampler{w, 1, 0.7, delay}, nil
	case "all":
		return sampler{w, -1, 0.3, delay}, nil
	}
	return nil, fmt.Errorf("no initial member %q", name)
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

func (w *world) rewardModel(ref string) (itec.Scorer, error) {
	n, err := strconv.Atoi(strings.TrimPrefix(ref, "rm/"))
	if err != nil {
		return nil, fmt.Errorf("bad reward ref %q", ref)
	}
	return noisyRM{w, 4 / math.Sqrt(1+float64(n))}, nil
}

type rewards struct{ w *world }

func (r rewards) Refresh(ctx context.Context, round int, pairs []prefopt.Pair) (itec.Scorer, string, error) {
	ref := fmt.Sprintf("rm/%d", len(pairs))
	s, err := r.w.rewardModel(ref)
	return s, ref, err
}

func (r rewards) LoadReward(ctx context.Context, ref string) (itec.Scorer, error) {
	return r.w.rewardModel(ref)
}

// oracle labels by true reward and counts the labels it gives.
type oracle struct {
	w     *world
	calls atomic.Int64
}

func (o *oracle) Label(ctx context.Context, prompt, a, b string) (itec.Preference, error) {
	o.calls.Add(1)
	ra, rb := o.w.reward(prompt, a), o.w.reward(prompt, b)
	lvl := prefopt.NegligiblyBetter
	switch gap := math.Abs(ra - rb); {
	case gap >= 3:
		lvl = prefopt.SignificantlyBetter
	case gap >= 2:
		lvl = prefopt.Better
	case gap >= 1:
		lvl = prefopt.SlightlyBetter
	}
	return itec.Preference{PreferA: ra > rb || ra == rb && a < b, Level: lvl}, nil
}

// memo is a trained member, saved to a JSON file as weights would be: the
// distilled response for prompts it was trained on, the all-rounder
// elsewhere.
type memo struct {
	Table    map[string]string `json:"table"`
	fallback itec.Generator
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

func (w *world) loadMemo(path string, delay time.Duration) (itec.Generator, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	fb, _ := w.initial("all", delay)
	m := &memo{fallback: fb}
	if err := json.Unmarshal(b, m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

type trainer struct {
	w   *world
	dir string
}

func (t trainer) Train(ctx context.Context, req itec.TrainRequest) (itec.Member, error) {
	m := &memo{Table: map[string]string{}}
	switch req.Algorithm {
	case itec.DPO, itec.IPO:
		for _, p := range req.Pairs {
			m.Table[p.Prompt] = p.Chosen
		}
	default:
		for _, d := range req.Demos {
			m.Table[d.Prompt] = d.Response
		}
	}
	b, _ := json.Marshal(m)
	path := filepath.Join(t.dir, fmt.Sprintf("member-r%d-%s.json", req.Round, req.Algorithm))
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return itec.Member{}, err
	}
	g, err := t.w.loadMemo(path, 0)
	return itec.Member{Model: g, Ref: path}, err
}

func (t trainer) LoadMember(ctx context.Context, m itec.Member) (itec.Generator, error) {
	return t.w.loadMemo(m.Ref, 0)
}

type trueEval struct{ w *world }

func (e trueEval) Evaluate(ctx context.Context, m itec.Member) (float64, error) {
	var sum float64
	for i, p := range e.w.prompts {
		out, err := m.Model.Generate(ctx, p, []uint64{itec.Seed(7, 0, i, 0, 0)})
		if err != nil {
			return 0, err
		}
		sum += e.w.reward(p, out[0])
	}
	return sum / float64(len(e.w.prompts)), nil
}

// loader is the workers' Loader over the world: initial members by ref,
// trained ones from their checkpoint files, reward models by ref. fail
// makes every generation fail, a poison task.
type loader struct {
	w     *world
	delay time.Duration
	fail  bool
	loads atomic.Int64
}

func (l *loader) Generator(ctx context.Context, m Model) (itec.Generator, error) {
	l.loads.Add(1)
	if l.fail {
		return failing{}, nil
	}
	if name, ok := strings.CutPrefix(m.Ref, "spec/"); ok {
		return l.w.initial(name, l.delay)
	}
	if m.File == "" {
		return nil, fmt.Errorf("member %q: no checkpoint file", m.Name)
	}
	return l.w.loadMemo(m.File, l.delay)
}

func (l *loader) Scorer(ctx context.Context, m Model) (itec.Scorer, error) {
	return l.w.rewardModel(m.Ref)
}

type failing struct{}

func (failing) Generate(context.Context, string, []uint64) ([]string, error) {
	return nil, fmt.Errorf("this member always fails")
}

// config is a two-round run over the world; dir holds the checkpoints.
func (w *world) config(dir string, lab itec.Labeler, ex itec.Executor, workers int) itec.Config {
	return itec.Config{
		Dir:       dir,
		Prompts:   w.prompts,
		Rounds:    2,
		Initial:   w.specialists(),
		Samples:   3,
		Pairs:     itec.PairOptions{Strategy: itec.BestWorst},
		Workers:   workers,
		Seed:      5,
		Labeler:   lab,
		Rewards:   rewards{w},
		Trainer:   trainer{w, dir},
		Evaluator: trueEval{w},
		Executor:  ex,
	}
}

// reference runs the world's loop in process and returns its final state
// files and the labels it asked for.
func reference(t *testing.T, w *world) (map[string]string, int64) {
	st, lab := referenceLabels(t, w)
	return st, lab.calls.Load()
}

func referenceLabels(t *testing.T, w *world) (map[string]string, *countingOracle) {
	t.Helper()
	dir := t.TempDir()
	lab := &countingOracle{oracle: &oracle{w: w}, seen: map[string]int{}}
	if _, err := itec.Run(context.Background(), w.config(dir, lab, nil, 2)); err != nil {
		t.Fatal(err)
	}
	return snapshot(t, dir), lab
}

// snapshot reads the run's state.json and the data files, with the run
// directory's path replaced so two runs compare.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, ".") {
			// A write killed mid-way leaves a temporary file; the next
			// itec.Run removes it, so none is left after a run completes.
			t.Errorf("%s left in the run directory", n)
			continue
		}
		if e.IsDir() || strings.HasPrefix(n, "member-") || strings.HasSuffix(n, ".log") || n == "lock" {
			continue // the trainer's files, the label logs (kept for audit), the run's lock
		}
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		v := strings.ReplaceAll(string(b), dir, "DIR")
		if n == "state.json" {
			// The state's checksum covers the run directory's path.
			v = stateSum.ReplaceAllString(v, `"sha256": "SUM"`)
		}
		out[n] = v
	}
	return out
}

var stateSum = regexp.MustCompile(`"sha256": "[0-9a-f]{64}"`)

func sameState(t *testing.T, got, want map[string]string) {
	t.Helper()
	if reflect.DeepEqual(got, want) {
		return
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s differs:\n got %.300s\nwant %.300s", k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("extra file %s", k)
		}
	}
	t.FailNow()
}

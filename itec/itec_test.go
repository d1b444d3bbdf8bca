package itec

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func specialists(w *world) []Member {
	return []Member{
		{Name: "even", Algorithm: SFT, Model: &sampler{w: w, parity: 0, skill: 0.9}},
		{Name: "odd", Algorithm: DPO, Model: &sampler{w: w, parity: 1, skill: 0.9}},
		{Name: "generalist", Algorithm: IPO, Model: &sampler{w: w, parity: -1, skill: 0.4}},
	}
}

func meanTrue(w *world, cs []Choice) float64 {
	var s float64
	for _, c := range cs {
		s += w.reward(c.Prompt, c.Response)
	}
	return s / float64(len(cs))
}

// Committee rejection sampling beats every member's own best-of-N, judged
// by the true reward, the reward model being imperfect.
func TestCommitteeBeatsEachMember(t *testing.T) {
	w := newWorld(200)
	rm := noisyRM{w, 1.5}
	committee := specialists(w)
	opt := SampleOptions{N: 4, Seed: 1}
	sel, err := RejectionSample(context.Background(), committee, rm, w.prompts, opt)
	if err != nil {
		t.Fatal(err)
	}
	got := meanTrue(w, sel.Choices)
	wins := 0
	for i, m := range committee {
		own, err := RejectionSample(context.Background(), []Member{m}, rm, w.prompts, opt)
		if err != nil {
			t.Fatal(err)
		}
		solo := meanTrue(w, own.Choices)
		t.Logf("%-10s best-of-%d true reward %.3f, won %d prompts", m.Name, opt.N, solo, sel.Wins[i])
		if got <= solo {
			t.Errorf("committee %.3f does not beat %s's own best-of-N %.3f", got, m.Name, solo)
		}
		wins += sel.Wins[i]
	}
	t.Logf("committee  true reward %.3f", got)
	if wins != len(w.prompts) {
		t.Errorf("wins sum to %d, want %d", wins, len(w.prompts))
	}
	for _, c := range sel.Choices {
		if c.Ranking[0] != c.Member || len(c.Ranking) != len(committee) || c.Margin < 0 {
			t.Fatalf("bad provenance %+v", c)
		}
	}
}

func TestDeterministicAcrossWorkers(t *testing.T) {
	w := newWorld(60)
	rm := noisyRM{w, 2}
	var first *Selection
	for _, workers := range []int{1, 2, 3, 16} {
		sel, err := RejectionSample(context.Background(), specialists(w), rm, w.prompts, SampleOptions{N: 3, Seed: 9, Round: 2, Workers: workers})
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = sel
			continue
		}
		if !reflect.DeepEqual(sel, first) {
			t.Fatalf("workers=%d gives a different selection than workers=1", workers)
		}
	}
	other, _ := RejectionSample(context.Background(), specialists(w), rm, w.prompts, SampleOptions{N: 3, Seed: 10, Round: 2})
	if reflect.DeepEqual(other.Samples, first.Samples) {
		t.Fatal("a different seed gives the same samples")
	}
}

// Ties go to the earlier member, then the earlier sample.
func TestTieBreak(t *testing.T) {
	w := newWorld(5)
	c := []Member{
		{Name: "a", Model: constGen("x")},
		{Name: "b", Model: constGen("y")},
	}
	sel, err := RejectionSample(context.Background(), c, flatRM{}, w.prompts, SampleOptions{N: 2, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range sel.Choices {
		if ch.Member != "a" || ch.Sample != 0 || ch.Margin != 0 {
			t.Fatalf("tie broken as %+v", ch)
		}
	}
}

type constGen string

func (g constGen) Generate(ctx context.Context, prompt string, seeds []uint64) ([]string, error) {
	out := make([]string, len(seeds))
	for i := range out {
		out[i] = string(g)
	}
	return out, nil
}

type flatRM struct{}

func (flatRM) Score(ctx context.Context, prompt string, r []string) ([]float64, error) {
	return make([]float64, len(r)), nil
}

// blockingGen waits for cancellation: RejectionSample must return promptly
// and leave no goroutine behind.
type blockingGen struct{ started chan struct{} }

func (g blockingGen) Generate(ctx context.Context, prompt string, seeds []uint64) ([]string, error) {
	select {
	case g.started <- struct{}{}:
	default:
	}
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestCancellation(t *testing.T) {
	before := runtime.NumGoroutine()
	w := newWorld(100)
	ctx, cancel := context.WithCancel(context.Background())
	g := blockingGen{started: make(chan struct{}, 1)}
	done := make(chan error, 1)
	go func() {
		_, err := RejectionSample(ctx, []Member{{Name: "m", Model: g}}, flatRM{}, w.prompts, SampleOptions{Workers: 4})
		done <- err
	}()
	select {
	case <-g.started:
	case err := <-done:
		t.Fatalf("RejectionSample returned before sampling: %v", err)
	case <-time.After(hangBound(t)):
		t.Fatal("RejectionSample never called the generator")
	}
	cancel()
	if err := await(t, done, "RejectionSample after cancellation"); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("%d goroutines after cancellation, %d before", n, before)
	}
}

type badGen struct{ n int }

func (g badGen) Generate(ctx context.Context, prompt string, seeds []uint64) ([]string, error) {
	return make([]string, g.n), nil
}

type nanRM struct{}

func (nanRM) Score(ctx context.Context, prompt string, r []string) ([]float64, error) {
	s := make([]float64, len(r))
	s[len(s)-1] = math.NaN()
	return s, nil
}

func TestErrors(t *testing.T) {
	w := newWorld(3)
	ctx := context.Background()
	for _, c := range []struct {
		name      string
		committee []Member
		rm        Scorer
		want      string
	}{
		{"empty committee", nil, flatRM{}, "empty committee"},
		{"no model", []Member{{Name: "m"}}, flatRM{}, "no model"},
		{"same names", []Member{{Name: "m", Model: constGen("x")}, {Name: "m", Model: constGen("y")}}, flatRM{}, "repeated name"},
		{"short batch", []Member{{Name: "m", Model: badGen{1}}}, flatRM{}, "returned 1 responses"},
		{"NaN score", []Member{{Name: "m", Model: constGen("x")}}, nanRM{}, "NaN"},
		{"nil rm", []Member{{Name: "m", Model: constGen("x")}}, nil, "nil reward model"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := RejectionSample(ctx, c.committee, c.rm, w.prompts, SampleOptions{N: 2})
			assert.ErrorContains(t, err, c.want)
		})
	}
}

func TestCandidates(t *testing.T) {
	prompts := []string{"p"}
	s := [][]Sample{{{Text: "a", Score: 1}, {Text: "b", Score: 3}, {Text: "a", Score: 5}, {Text: "c", Score: -2}}}
	bw, err := Candidates(prompts, s, PairOptions{Strategy: BestWorst})
	if err != nil || len(bw) != 1 || bw[0].A != "a" || bw[0].B != "c" {
		t.Fatalf("BestWorst = %+v, %v; want a (best score 5) against c", bw, err)
	}
	gap, _ := Candidates(prompts, s, PairOptions{Strategy: AboveGap, Gap: 4})
	if len(gap) != 2 { // a–c (7) and b–c (5); a–b is 2
		t.Fatalf("AboveGap = %+v", gap)
	}
	rnd, _ := Candidates(prompts, s, PairOptions{Strategy: RandomPairs, PerPrompt: 20, Seed: 3})
	for _, c := range rnd {
		if c.A == c.B {
			t.Fatalf("random pair of identical responses %+v", c)
		}
	}
	if one, _ := Candidates(prompts, [][]Sample{{{Text: "a"}, {Text: "a"}}}, PairOptions{}); len(one) != 0 {
		t.Fatalf("identical responses paired: %+v", one)
	}
}

// loopConfig is a small two-round run in the synthetic world.
func loopConfig(t *testing.T, dir string, w *world, lab *oracle, tr *memoTrainer) Config {
	return Config{
		Dir:       dir,
		Prompts:   w.prompts,
		Rounds:    2,
		Initial:   specialists(w),
		Samples:   3,
		Pairs:     PairOptions{Strategy: BestWorst},
		Workers:   2,
		Seed:      5,
		Labeler:   lab,
		Rewards:   rmTrainer{w},
		Trainer:   tr,
		Evaluator: trueEval{w},
	}
}

func TestLoopImproves(t *testing.T) {
	w := newWorld(40)
	dir := testDir(t)
	lab := &oracle{w: w}
	tr := &memoTrainer{dir: dir, fallback: &sampler{w: w, parity: -1, skill: 0.2}}
	st, err := Run(context.Background(), loopConfig(t, dir, w, lab, tr))
	if err != nil {
		t.Fatal(err)
	}
	if st.Round != 3 || st.Done != 0 || len(st.History) != 2 {
		t.Fatalf("state after 2 rounds: round %d done %v, %d summaries", st.Round, st.Done, len(st.History))
	}
	best := map[int]float64{}
	for _, m := range st.Members {
		if m.Eval == nil {
			t.Fatalf("member %s never evaluated", m.Name)
		}
		if b, ok := best[m.Round]; !ok || *m.Eval > b {
			best[m.Round] = *m.Eval
		}
	}
	t.Logf("best eval by round: %v; history %+v", best, st.History)
	if !(best[2] >= best[1] && best[1] > best[0]) {
		t.Fatalf("no improvement across rounds: %v", best)
	}
	if got := len(st.Committee); got != 4+2 {
		t.Fatalf("committee of %d, want 4 new + 2 kept", got)
	}
}

// A run killed over and over, each time after a few progress events, and
// resumed ends exactly as an uninterrupted one, and no pair is ever labeled
// twice.
func TestLoopResume(t *testing.T) {
	w := newWorld(12)
	ref := testDir(t)
	refLab := &oracle{w: w}
	refTr := &memoTrainer{dir: ref, fallback: &sampler{w: w, parity: -1, skill: 0.2}}
	events := 0
	cfg := loopConfig(t, ref, w, refLab, refTr)
	cfg.Progress = func(Event) { events++ }
	if _, err := Run(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	want := snapshot(t, ref)

	for kill := 2; kill < events; kill += 3 {
		dir := testDir(t)
		lab := &oracle{w: w}
		tr := &memoTrainer{dir: ref, fallback: refTr.fallback} // same model paths as the reference
		tr.dir = dir
		for attempt := 0; ; attempt++ {
			if attempt > 500 {
				t.Fatalf("kill %d: no progress after 500 resumes", kill)
			}
			ctx, cancel := context.WithCancel(context.Background())
			n := 0
			cfg := loopConfig(t, dir, w, lab, tr)
			cfg.Progress = func(Event) {
				if n++; n == kill {
					cancel()
				}
			}
			_, err := Run(ctx, cfg)
			cancel()
			if err == nil {
				break
			}
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("kill %d: %v", kill, err)
			}
		}
		got := snapshot(t, dir)
		if g, w := normalizeRefs(got, dir), normalizeRefs(want, ref); !reflect.DeepEqual(g, w) {
			for k := range w {
				if g[k] != w[k] {
					t.Logf("%s differs:\n%s\nwant\n%s", k, g[k], w[k])
				}
			}
			t.Fatalf("kill every %d events: the resumed run ends in a different state", kill)
		}
		if lab.calls.Load() != refLab.calls.Load() {
			t.Fatalf("kill every %d events: %d labels asked, uninterrupted run asked %d", kill, lab.calls.Load(), refLab.calls.Load())
		}
	}
}

// snapshot reads state.json and every data file it names.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "member-") || strings.HasSuffix(e.Name(), ".log") || e.Name() == lockName {
			continue // the trainer's own files; the label logs (kept for audit); the lock
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = string(b)
	}
	return out
}

func normalizeRefs(s map[string]string, dir string) map[string]string {
	out := map[string]string{}
	for k, v := range s {
		if k == stateFile { // its checksum covers the paths normalized here
			_, v, _ = strings.Cut(v, "\n")
		}
		out[k] = strings.ReplaceAll(v, dir, "DIR")
	}
	return out
}

func TestCorruptCheckpoint(t *testing.T) {
	w := newWorld(6)
	dir := testDir(t)
	lab := &oracle{w: w}
	tr := &memoTrainer{dir: dir, fallback: &sampler{w: w, parity: -1, skill: 0.2}}
	cfg := loopConfig(t, dir, w, lab, tr)
	cfg.Rounds = 1
	if _, err := Run(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "pairs-r1.jsonl")
	b, _ := os.ReadFile(p)
	b[len(b)/2] ^= 1
	os.WriteFile(p, b, 0o644)
	cfg.Rounds = 2
	if _, err := Run(context.Background(), cfg); !errors.Is(err, ErrCheckpoint) {
		t.Fatalf("corrupt pairs file: err = %v, want a checksum error", err)
	}
	cfg.Seed++
	if _, err := Run(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "seed") {
		t.Fatalf("resuming with another seed: err = %v", err)
	}
}

package itec

import (
	"context"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// recorder is an Executor that runs tasks in process, records their IDs and
// answers a repeated ID from its record, as a result store would.
type recorder struct {
	mu     sync.Mutex
	gen    map[string][]string
	counts map[string]int
}

func (r *recorder) Generate(ctx context.Context, t GenerateTask) ([]string, error) {
	r.mu.Lock()
	r.counts[t.ID]++
	if out, ok := r.gen[t.ID]; ok {
		r.mu.Unlock()
		return out, nil
	}
	r.mu.Unlock()
	out, err := InProcess{}.Generate(ctx, t)
	r.mu.Lock()
	r.gen[t.ID] = out
	r.mu.Unlock()
	return out, err
}

func (r *recorder) Score(ctx context.Context, t ScoreTask) ([]float64, error) {
	r.note(t.ID)
	return InProcess{}.Score(ctx, t)
}

func (r *recorder) Label(ctx context.Context, t LabelTask) (Preference, error) {
	r.note(t.ID)
	return InProcess{}.Label(ctx, t)
}

func (r *recorder) note(id string) {
	r.mu.Lock()
	r.counts[id]++
	r.mu.Unlock()
}

// A run through an Executor that reuses results by task ID ends in the same
// state as the in-process one: IDs name exactly what a task computes.
func TestExecutorSeam(t *testing.T) {
	w := newWorld(12)
	fallback := &sampler{w: w, parity: -1, skill: 0.2}
	ref := testDir(t)
	refLab := &oracle{w: w}
	if _, err := Run(context.Background(), loopConfig(t, ref, w, refLab, &memoTrainer{dir: ref, fallback: fallback})); err != nil {
		t.Fatal(err)
	}
	dir := testDir(t)
	lab := &oracle{w: w}
	rec := &recorder{gen: map[string][]string{}, counts: map[string]int{}}
	cfg := loopConfig(t, dir, w, lab, &memoTrainer{dir: dir, fallback: fallback})
	cfg.Executor = rec
	if _, err := Run(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(normalizeRefs(snapshot(t, dir), dir), normalizeRefs(snapshot(t, ref), ref)) {
		t.Fatal("a run through a result-reusing executor ends in a different state")
	}
	if lab.calls.Load() != refLab.calls.Load() {
		t.Fatalf("%d labels asked through the executor, %d in process", lab.calls.Load(), refLab.calls.Load())
	}
	var gens, reused, labels int
	for id, n := range rec.counts {
		switch {
		case strings.Contains(id, "/sample/"):
			gens++
			if n > 1 {
				reused++ // distillation re-samples collection's seeds
			}
		case strings.Contains(id, "/label/"):
			labels++
			if n != 1 {
				t.Errorf("label task %s asked %d times", id, n)
			}
		default:
			if n != 1 {
				t.Errorf("score task %s run %d times", id, n)
			}
		}
	}
	if int64(labels) != refLab.calls.Load() {
		t.Errorf("%d label IDs for %d labels", labels, refLab.calls.Load())
	}
	// Round 2 collects with a reward model, so its samples are the
	// distillation's: every round-2 sampling task is asked twice.
	if reused == 0 || gens == 0 {
		t.Errorf("%d sampling tasks, %d asked again; want collection's reused by distillation", gens, reused)
	}
}

func TestTaskIDs(t *testing.T) {
	if got, want := GenerateID(2, 7, 1, "r1-dpo", 0, 4), "r2/sample/p7/m1=r1-dpo/s0+4"; got != want {
		t.Errorf("GenerateID = %q, want %q", got, want)
	}
	if got, want := ScoreID(2, Distilling, 7, "rm/3"), "r2/distill/p7/score=rm/3"; got != want {
		t.Errorf("ScoreID = %q, want %q", got, want)
	}
	if got, want := LabelID(3, 11), "r3/label/c11"; got != want {
		t.Errorf("LabelID = %q, want %q", got, want)
	}
}

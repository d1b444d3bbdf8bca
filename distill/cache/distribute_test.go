package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// shuffled is an Executor that answers batches out of order, after random
// delays, as a fleet of workers would, and records the task IDs.
type shuffled struct {
	teacher Teacher
	fail    int64 // batch to fail, or −1
	mu      sync.Mutex
	ids     []string
	r       *rand.Rand
}

func (s *shuffled) Predict(ctx context.Context, t Task) (Prediction, error) {
	s.mu.Lock()
	s.ids = append(s.ids, t.ID)
	d := time.Duration(s.r.IntN(2000)) * time.Microsecond
	s.mu.Unlock()
	select {
	case <-time.After(d):
	case <-ctx.Done():
		return Prediction{}, ctx.Err()
	}
	if t.Batch == s.fail {
		return Prediction{}, fmt.Errorf("worker lost batch %d", t.Batch)
	}
	s.mu.Lock() // toyTeacher counts its calls
	defer s.mu.Unlock()
	return Predict(t.Format, s.teacher, t.Tokens, t.First)
}

// Distributed precomputation, batches in flight at once and answered out
// of order, writes the very bytes of the in-process one.
func TestDistribute(t *testing.T) {
	const v, n = 50, 1003
	f := Format{Vocab: v, K: 4, LogProbs: BF16, BlockTokens: 64}
	r := rand.New(rand.NewPCG(9, 9))
	tokens := make([]int32, n)
	for i := range tokens {
		tokens[i] = int32(r.IntN(v))
	}
	dir := t.TempDir()
	write := func(name string, opts ...Option) ([]byte, error) {
		path := filepath.Join(dir, name)
		w, err := Create(path, f)
		if err != nil {
			t.Fatal(err)
		}
		var calls int
		teacher := toyTeacher(v, &calls)
		if len(opts) > 0 {
			teacher = nil // the executor has its own
		}
		if _, err := Precompute(context.Background(), w, teacher, SliceTokens(tokens), 10, nil, opts...); err != nil {
			w.Abort()
			return nil, err
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return os.ReadFile(path)
	}
	want, err := write("local.ptc")
	if err != nil {
		t.Fatal(err)
	}
	var calls int
	ex := &shuffled{teacher: toyTeacher(v, &calls), fail: -1, r: rand.New(rand.NewPCG(1, 2))}
	got, err := write("dist.ptc", Distribute(ex, "corpus-a", 8))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("distributed precomputation wrote different bytes")
	}
	if len(ex.ids) != 101 || !strings.HasPrefix(ex.ids[0], "corpus-a/b") {
		t.Fatalf("%d tasks, first %q; want 101 batches named corpus-a/b<i>", len(ex.ids), ex.ids[0])
	}
	bad := &shuffled{teacher: toyTeacher(v, &calls), fail: 37, r: rand.New(rand.NewPCG(1, 2))}
	if _, err := write("bad.ptc", Distribute(bad, "corpus-a", 8)); err == nil || !strings.Contains(err.Error(), "lost batch 37") {
		t.Fatalf("a failed batch: %v; want its error, not a cancellation", err)
	} else if errors.Is(err, context.Canceled) {
		t.Fatalf("a failed batch reported as %v", err)
	}
}

// failing is an Executor whose batches fail on a schedule, ignoring
// cancellation as a remote worker past the point of no return would, and
// that records how many of its calls ever ran at once.
type failing struct {
	teacher  Teacher
	errs     map[int64]error
	delay    map[int64]time.Duration
	mu       sync.Mutex
	running  int
	inFlight int // the most calls at once
}

func (e *failing) Predict(ctx context.Context, t Task) (Prediction, error) {
	e.mu.Lock()
	e.running++
	e.inFlight = max(e.inFlight, e.running)
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		e.running--
		e.mu.Unlock()
	}()
	time.Sleep(e.delay[t.Batch])
	if err := e.errs[t.Batch]; err != nil {
		return Prediction{}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return Predict(t.Format, e.teacher, t.Tokens, t.First)
}

// Of two batches that fail, the earlier one's error is returned whichever
// fails first: batch 40 fails at once, batch 35 after a delay (during
// which 40 is usually in flight), and the report is batch 35's. No more
// than window batches are ever in flight.
func TestDistributeEarliestFailure(t *testing.T) {
	const v = 50
	f := Format{Vocab: v, K: 2, LogProbs: BF16, BlockTokens: 16}
	tokens := make([]int32, 1000)
	e35, e40 := errors.New("batch 35 lost"), errors.New("batch 40 lost")
	for _, window := range []int{1, 3, 8} {
		t.Run(fmt.Sprintf("window=%d", window), func(t *testing.T) {
			w, err := Create(filepath.Join(t.TempDir(), "c.ptc"), f)
			require.NoError(t, err)
			defer w.Abort()
			var calls int
			ex := &failing{teacher: toyTeacher(v, &calls),
				errs:  map[int64]error{35: e35, 40: e40},
				delay: map[int64]time.Duration{35: 5 * time.Millisecond}}
			done, err := Precompute(t.Context(), w, nil, SliceTokens(tokens), 10, nil, Distribute(ex, "c", window))
			require.ErrorIs(t, err, e35)
			assert.LessOrEqual(t, done, int64(350), "tokens written past the failed batch")
			assert.LessOrEqual(t, ex.inFlight, window, "batches in flight")
		})
	}
}

package itec

import (
	"context"
	"errors"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testDir returns a fresh directory, removed when t ends, for a checkpoint.
// On Linux it is on /dev/shm (tmpfs) when that is writable. The package's
// tests call fsync some 4,500 times (two per checkpoint file, one per
// label-log line); on a disk shared with other jobs a fsync can take a
// tenth of a second (ext4 commits its journal, everyone's dirty data
// included), and the package once ran into go test's 10-minute timeout
// that way, busy in fsync rather than hung. On tmpfs the same syscalls
// run and return at once; nothing the tests check depends on the data
// reaching a disk (a process killed with SIGKILL leaves the page cache
// behind), and internal/atomicfile's own tests write to the disk.
func testDir(t testing.TB) string {
	t.Helper()
	if runtime.GOOS == "linux" {
		if d, err := os.MkdirTemp("/dev/shm", "itec-test-"); err == nil {
			t.Cleanup(func() {
				if err := os.RemoveAll(d); err != nil {
					t.Errorf("removing %s: %v", d, err)
				}
			})
			return d
		}
	}
	return t.TempDir()
}

// hangBound is how long a test waits for something that takes
// milliseconds before it reports a hang: two minutes, or less if the
// test binary's deadline comes sooner, so that the failure — with every
// goroutine's stack — is reported before go test's own timeout kills the
// binary with no word on which wait never ended.
func hangBound(t testing.TB) time.Duration {
	bound := 2 * time.Minute
	if tt, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if dl, ok := tt.Deadline(); ok {
			bound = min(bound, time.Until(dl)*3/4)
		}
	}
	return bound
}

// await returns what ch delivers, or fails t, with every goroutine's
// stack, once hangBound has passed.
func await[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	bound := hangBound(t)
	select {
	case v := <-ch:
		return v
	case <-time.After(bound):
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Fatalf("%s: nothing after %v, a hang; goroutines:\n%s", what, bound, buf)
		panic("unreachable")
	}
}

// runAsync runs Run in a goroutine; await its result.
func runAsync(ctx context.Context, cfg Config) <-chan error {
	errc := make(chan error, 1)
	go func() {
		_, err := Run(ctx, cfg)
		errc <- err
	}()
	return errc
}

// lossyExec is an Executor whose label task for candidate 0 fails after
// the labeler has answered (a result store that went down between the
// answer and its record). The task for candidate 1 asks the labeler only
// once that answer is in, so it meets the label step's gate shut: the
// answer not yet durable.
type lossyExec struct {
	InProcess
	second   chan struct{} // closed when candidate 1's task has started
	answered chan struct{} // closed when candidate 0's labeler has answered
}

var errStoreDown = errors.New("result store unavailable")

func (e *lossyExec) Label(ctx context.Context, t LabelTask) (Preference, error) {
	switch t.ID {
	case LabelID(1, 0):
		if _, err := e.InProcess.Label(ctx, t); err != nil {
			return Preference{}, err
		}
		select { // the other worker holds candidate 1 by now
		case <-e.second:
		case <-ctx.Done():
			return Preference{}, ctx.Err()
		}
		close(e.answered)
		return Preference{}, errStoreDown
	case LabelID(1, 1):
		close(e.second)
		select {
		case <-e.answered:
		case <-ctx.Done():
			return Preference{}, ctx.Err()
		}
	}
	return e.InProcess.Label(ctx, t)
}

// An answer lost after the labeler gave it is reported as the executor's
// error, and the other worker's request does not wait for that answer to
// become durable: it never will. (Run hung here: the gate's count was
// only ever lowered by the log's write, which a lost answer never
// reaches.)
func TestLostAnswerDoesNotHang(t *testing.T) {
	w := newWorld(12)
	dir := testDir(t)
	tr := &memoTrainer{dir: dir, fallback: &sampler{w: w, parity: -1, skill: 0.2}}
	cfg := loopConfig(t, dir, w, &oracle{w: w}, tr)
	cfg.Rounds, cfg.Workers = 1, 2
	cfg.Executor = &lossyExec{second: make(chan struct{}), answered: make(chan struct{})}
	err := await(t, runAsync(context.Background(), cfg), "Run with an answer lost")
	require.ErrorIs(t, err, errStoreDown)
	assert.ErrorContains(t, err, "candidate 0")

	// The run resumes without the executor and asks again for the lost
	// answer, and for no answer it has logged.
	cfg.Executor = nil
	st, err := Run(context.Background(), cfg)
	require.NoError(t, err)
	assert.Equal(t, 2, st.Round)
}

// A request waiting at the gate returns when its context is cancelled,
// though the answer it waits on is never uncounted.
func TestGateWaitCancellable(t *testing.T) {
	w := newWorld(1)
	g := newGatedLabeler(&oracle{w: w})
	_, err := g.Label(context.Background(), w.prompts[0], "a1", "a2")
	require.NoError(t, err) // counted, never uncounted
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := g.Label(ctx, w.prompts[0], "a3", "a4")
		errc <- err
	}()
	select { // a broken gate may pass later than this: then the check misses it, it never fails wrongly
	case err := <-errc:
		t.Fatalf("a request passed the gate with an answer pending: %v", err)
	case <-time.After(10 * time.Millisecond):
	}
	cancel()
	assert.ErrorIs(t, await(t, errc, "a cancelled wait at the gate"), context.Canceled)
	g.durable()
	_, err = g.Label(context.Background(), w.prompts[0], "a3", "a4")
	assert.NoError(t, err, "the gate opens once its answer is uncounted")
}

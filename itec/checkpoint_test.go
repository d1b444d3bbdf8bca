package itec

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// oneRound runs round 1 of a small run in a fresh directory and returns its
// config (Rounds = 2, so running it again does round 2).
func oneRound(t testing.TB) (Config, *oracle) {
	t.Helper()
	w := newWorld(6)
	dir := testDir(t)
	lab := &oracle{w: w}
	tr := &memoTrainer{dir: dir, fallback: &sampler{w: w, parity: -1, skill: 0.2}}
	cfg := loopConfig(nil, dir, w, lab, tr)
	cfg.Rounds = 1
	if _, err := Run(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	cfg.Rounds = 2
	return cfg, lab
}

// FuzzState feeds arbitrary bytes as state.json to a resume: an error
// wrapping ErrCheckpoint (or naming the seed), never a panic.
func FuzzState(f *testing.F) {
	cfg, _ := oneRound(f)
	path := filepath.Join(cfg.Dir, stateFile)
	orig, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(orig)
	f.Add(orig[:len(orig)/2])
	f.Add([]byte(`{"sha256":"","state":{}}`))
	flipped := bytes.Clone(orig)
	flipped[len(flipped)/3] ^= 1
	f.Add(flipped)
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		r, err := open(context.Background(), cfg)
		if err == nil {
			r.lock.unlock()
			return
		}
		if !errors.Is(err, ErrCheckpoint) && !strings.Contains(err.Error(), "seed") {
			t.Fatalf("err = %v, want ErrCheckpoint", err)
		}
	})
}

// blockingLabeler blocks every request until its context ends, and says
// when the first one arrives.
type blockingLabeler struct {
	once    sync.Once
	started chan struct{}
}

func (b *blockingLabeler) Label(ctx context.Context, prompt, x, y string) (Preference, error) {
	b.once.Do(func() { close(b.started) })
	<-ctx.Done()
	return Preference{}, ctx.Err()
}

func TestLockExcludesSecondRun(t *testing.T) {
	cfg, _ := oneRound(t)
	bl := &blockingLabeler{started: make(chan struct{})}
	first := cfg
	first.Labeler = bl
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := runAsync(ctx, first)
	select {
	case <-bl.started:
	case err := <-errc:
		t.Fatalf("first run returned before labeling: %v", err)
	case <-time.After(hangBound(t)):
		t.Fatal("first run never reached the labeler")
	}
	if _, err := Run(context.Background(), cfg); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Run on a directory in use: err = %v, want ErrLocked", err)
	}
	cancel()
	if err := await(t, errc, "first run after cancellation"); !errors.Is(err, context.Canceled) {
		t.Fatalf("first run: %v", err)
	}
	// Released on return: the directory is usable again, and the run
	// completes round 2.
	st, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if st.Round != 3 {
		t.Fatalf("round %d after resuming, want 3", st.Round)
	}
}

// TestLockHelper is the other process of TestLockAcrossProcesses.
func TestLockHelper(t *testing.T) {
	dir := os.Getenv("ITEC_LOCK_HELPER")
	if dir == "" {
		t.Skip("helper process only")
	}
	if _, err := lockDir(dir); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("locked")
	time.Sleep(time.Minute) // until killed
}

// A lock held by another process excludes this one, and is released when
// that process is killed.
func TestLockAcrossProcesses(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "js" || runtime.GOOS == "wasip1" || runtime.GOOS == "plan9" {
		t.Skip("no subprocess flock test here")
	}
	dir := testDir(t)
	// The helper is killed at the bound if it never says "locked", so the
	// read below ends.
	ctx, cancel := context.WithTimeout(context.Background(), hangBound(t))
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestLockHelper$")
	cmd.Env = append(os.Environ(), "ITEC_LOCK_HELPER="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, _ := bufio.NewReader(out).ReadString('\n')
	if line != "locked\n" {
		t.Fatalf("helper: %q", line)
	}
	if l, err := lockDir(dir); !errors.Is(err, ErrLocked) {
		l.unlock()
		t.Fatalf("lock held by process %d: err = %v, want ErrLocked", cmd.Process.Pid, err)
	} else if !strings.Contains(err.Error(), fmt.Sprint(cmd.Process.Pid)) {
		t.Errorf("error does not name the holder %d: %v", cmd.Process.Pid, err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	l, err := lockDir(dir)
	if err != nil {
		t.Fatalf("lock of a killed process is stale: %v", err)
	}
	l.unlock()
}

// Single-byte changes to state.json (every byte) are each an error wrapping
// ErrCheckpoint, or leaves the same state (whitespace outside the
// checksummed part); never a panic, never a different resume.
func TestStateEveryByte(t *testing.T) {
	cfg, _ := oneRound(t)
	path := filepath.Join(cfg.Dir, stateFile)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want, err := decodeState(orig)
	if err != nil {
		t.Fatal(err)
	}
	defer os.WriteFile(path, orig, 0o644)
	// The checks open does before touching anything else, in memory; a
	// change they pass is resumed for real.
	vcfg := cfg
	vcfg.Algorithms = []Algorithm{RejectionSampling, DPO, IPO, OnlineRL}
	same := 0
	for i := range orig {
		flips := []byte{0x01, 0x80, 0x20}
		if testing.Short() && i%7 != 0 {
			flips = flips[:1]
		}
		for _, x := range flips {
			b := bytes.Clone(orig)
			b[i] ^= x
			st, err := decodeState(b)
			if err == nil {
				r := &run{cfg: vcfg, st: st}
				err = r.validate()
			}
			if err != nil {
				if !errors.Is(err, ErrCheckpoint) {
					t.Fatalf("byte %d ^ %#x: err = %v, want ErrCheckpoint", i, x, err)
				}
				continue
			}
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			r, err := open(context.Background(), cfg)
			if err != nil {
				t.Fatalf("byte %d ^ %#x: passed the checks but not open: %v", i, x, err)
			}
			r.lock.unlock()
			if !reflect.DeepEqual(r.st, want) {
				t.Fatalf("byte %d ^ %#x: resumed into a different state", i, x)
			}
			same++
		}
	}
	t.Logf("%d bytes changed: %d changes left the state as it was, the rest were errors", len(orig), same)
}

// A state.json with a valid checksum but contradictory content is an
// error wrapping ErrCheckpoint.
func TestStateInvariants(t *testing.T) {
	cfg, _ := oneRound(t)
	path := filepath.Join(cfg.Dir, stateFile)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer os.WriteFile(path, orig, 0o644)
	for _, c := range []struct {
		name   string
		mutate func(*State)
	}{
		{"label step marked done, no pairs file", func(s *State) { s.Done = Labeling }},
		{"round skipped", func(s *State) { s.Round = 3 }},
		{"round 0", func(s *State) { s.Round = 0 }},
		{"done out of range", func(s *State) { s.Done = 9 }},
		{"files null", func(s *State) { s.Files = nil }},
		{"pairs file missing", func(s *State) { delete(s.Files, pairsFile(1)) }},
		{"extra file", func(s *State) { s.Files[pairsFile(2)] = strings.Repeat("0", 64) }},
		{"bad checksum text", func(s *State) { s.Files[pairsFile(1)] = "xyz" }},
		{"unknown committee member", func(s *State) { s.Committee[0] = "ghost" }},
		{"empty committee", func(s *State) { s.Committee = nil }},
		{"member repeated", func(s *State) { s.Members = append(s.Members, s.Members[len(s.Members)-1]) }},
		{"member renamed", func(s *State) { s.Members[4].Name = "r1-xyz" }},
		{"member of a later round", func(s *State) { s.Members[4].Round = 2 }},
		{"member not evaluated", func(s *State) { s.Members[4].Eval = nil }},
		{"initial member dropped", func(s *State) { s.Members = s.Members[1:] }},
		{"history lost", func(s *State) { s.History = nil }},
		{"history misnumbered", func(s *State) { s.History[0].Round = 2 }},
		{"next committee differs", func(s *State) { s.History[0].Next = s.History[0].Next[1:] }},
		{"no reward model", func(s *State) { s.RewardRef = "" }},
		{"negative pairs", func(s *State) { s.History[0].NewPairs = -1 }},
		{"pair count differs", func(s *State) { s.History[0].NewPairs++ }},
	} {
		t.Run(c.name, func(t *testing.T) {
			st, err := decodeState(orig)
			require.NoError(t, err)
			c.mutate(&st)
			b, err := encodeState(&st)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(path, b, 0o644))
			_, err = Run(context.Background(), cfg)
			assert.ErrorIs(t, err, ErrCheckpoint)
		})
	}
	// An unchecksummed state (the format before checksums) is refused.
	st, _ := decodeState(orig)
	plain, _ := json.Marshal(&st)
	os.WriteFile(path, plain, 0o644)
	if _, err := Run(context.Background(), cfg); !errors.Is(err, ErrCheckpoint) {
		t.Errorf("unchecksummed state: err = %v, want ErrCheckpoint", err)
	}
}

// countingLabeler records, at each request, how many of the answers it has
// returned are in the label log.
type countingLabeler struct {
	inner    Labeler
	log      string
	returned atomic.Int64
	mu       sync.Mutex
	lag      int64 // the most answers returned but missing from the log at a request
	stop     int64 // cancel after this many answers, if > 0
	cancel   func()
}

func (c *countingLabeler) Label(ctx context.Context, prompt, a, b string) (Preference, error) {
	ret := c.returned.Load()
	n := int64(0)
	if b, err := os.ReadFile(c.log); err == nil {
		n = int64(bytes.Count(b, []byte("\n")))
	}
	c.mu.Lock()
	c.lag = max(c.lag, ret-n)
	c.mu.Unlock()
	p, err := c.inner.Label(ctx, prompt, a, b)
	if err == nil {
		if c.returned.Add(1) == c.stop {
			c.cancel()
		}
	}
	return p, err
}

// Each answer is in the log before the next request goes out (exactly so
// with one worker; with more, only requests racing an answer can miss it).
func TestLabelDurableBeforeNextRequest(t *testing.T) {
	for _, workers := range []int{1, 4} {
		t.Run(fmt.Sprintf("workers=%d", workers), func(t *testing.T) {
			w := newWorld(12)
			dir := testDir(t)
			lab := &countingLabeler{inner: &oracle{w: w}, log: filepath.Join(dir, "labels-r1.log")}
			tr := &memoTrainer{dir: dir, fallback: &sampler{w: w, parity: -1, skill: 0.2}}
			cfg := loopConfig(t, dir, w, nil, tr)
			cfg.Labeler, cfg.Rounds, cfg.Workers = lab, 1, workers
			if _, err := Run(context.Background(), cfg); err != nil {
				t.Fatal(err)
			}
			if lab.returned.Load() == 0 {
				t.Fatal("no labels asked")
			}
			if limit := int64(workers - 1); lab.lag > limit {
				t.Errorf("workers %d: a request went out with %d answers not yet logged, want ≤ %d", workers, lab.lag, limit)
			}
		})
	}
}

// A damaged or edited label-log line is an error wrapping ErrCheckpoint; a
// torn last line is dropped and its candidate asked again, once.
func TestLabelLog(t *testing.T) {
	setup := func(t *testing.T) (Config, *oracle, string) {
		w := newWorld(8)
		dir := testDir(t)
		lab := &oracle{w: w}
		tr := &memoTrainer{dir: dir, fallback: &sampler{w: w, parity: -1, skill: 0.2}}
		cfg := loopConfig(t, dir, w, nil, tr)
		cfg.Rounds, cfg.Workers = 1, 1
		cl := &countingLabeler{inner: lab, log: filepath.Join(dir, "labels-r1.log"), stop: 3}
		ctx, cancel := context.WithCancel(context.Background())
		cl.cancel = cancel
		cfg.Labeler = cl
		if _, err := Run(ctx, cfg); !errors.Is(err, context.Canceled) {
			t.Fatalf("interrupted run: %v", err)
		}
		cfg.Labeler = lab
		return cfg, lab, cl.log
	}
	t.Run("edited", func(t *testing.T) {
		cfg, _, log := setup(t)
		b, _ := os.ReadFile(log)
		lines := strings.SplitAfter(string(b), "\n")
		for _, edit := range []func(string) string{
			func(s string) string { return strings.Replace(s, `"level":"`, `"level":"x`, 1) },
			func(s string) string { return strings.Replace(s, `{"i":`, `{"i":1`, 1) },
			func(s string) string { return s[65:] }, // no checksum
		} {
			e := bytes.Clone(b)
			e = []byte(strings.Replace(string(e), lines[1], edit(lines[1]), 1))
			os.WriteFile(log, e, 0o644)
			if _, err := Run(context.Background(), cfg); !errors.Is(err, ErrCheckpoint) || !strings.Contains(err.Error(), "line 2") {
				t.Errorf("edited line 2: err = %v, want ErrCheckpoint naming line 2", err)
			}
		}
	})
	t.Run("torn", func(t *testing.T) {
		cfg, lab, log := setup(t)
		b, _ := os.ReadFile(log)
		logged := bytes.Count(b, []byte("\n"))
		// The process died in the middle of writing one more line.
		os.WriteFile(log, append(b, "0123456789abcdef {\"i\":"...), 0o644)
		before := lab.calls.Load()
		st, err := Run(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := lab.calls.Load()-before, int64(st.History[0].NewPairs-logged); got != want {
			t.Fatalf("resumed run asked %d labels, want %d (the pairs not logged)", got, want)
		}
		b, _ = os.ReadFile(log)
		if _, _, err := readLabelLog(log); err != nil || bytes.Count(b, []byte("\n")) != st.History[0].NewPairs {
			t.Fatalf("log after resuming: %v, %d lines for %d pairs", err, bytes.Count(b, []byte("\n")), st.History[0].NewPairs)
		}
	})
}

// durableQueue is a DurableLabeler: it keeps answers until committed, and
// returns a kept answer again without asking its oracle.
type durableQueue struct {
	inner     Labeler
	mu        sync.Mutex
	kept      map[string]Preference
	committed atomic.Int64
}

func (q *durableQueue) Label(ctx context.Context, prompt, a, b string) (Preference, error) {
	key := prompt + "\x00" + a + "\x00" + b
	q.mu.Lock()
	p, ok := q.kept[key]
	q.mu.Unlock()
	if ok {
		return p, nil
	}
	p, err := q.inner.Label(ctx, prompt, a, b)
	if err == nil {
		q.mu.Lock()
		q.kept[key] = p
		q.mu.Unlock()
	}
	return p, err
}

func (q *durableQueue) Commit(ctx context.Context, prompt, a, b string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.kept, prompt+"\x00"+a+"\x00"+b)
	q.committed.Add(1)
	return nil
}

// With a DurableLabeler every answer is committed once it is logged, so an
// answer in flight at a crash is not asked again.
func TestDurableLabeler(t *testing.T) {
	w := newWorld(8)
	dir := testDir(t)
	o := &oracle{w: w}
	q := &durableQueue{inner: o, kept: map[string]Preference{}}
	tr := &memoTrainer{dir: dir, fallback: &sampler{w: w, parity: -1, skill: 0.2}}
	cfg := loopConfig(t, dir, w, nil, tr)
	cfg.Labeler, cfg.Rounds = q, 1
	st, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if q.committed.Load() != int64(st.History[0].NewPairs) || len(q.kept) != 0 || o.calls.Load() != int64(st.History[0].NewPairs) {
		t.Fatalf("%d commits, %d kept, %d asked for %d pairs", q.committed.Load(), len(q.kept), o.calls.Load(), st.History[0].NewPairs)
	}
}

// Counts from the far end of int's range are errors, not a panic or an
// allocation that kills the process.
func TestHugeCounts(t *testing.T) {
	w := newWorld(3)
	for _, n := range []int{math.MaxInt, 1 << 62, MaxSamples + 1} {
		if _, err := Collect(context.Background(), specialists(w), w.prompts, SampleOptions{N: n, Workers: 1}); err == nil {
			t.Errorf("Collect with N = %d: no error", n)
		}
		if _, err := Candidates([]string{"p"}, [][]Sample{{{Text: "a"}, {Text: "b"}}}, PairOptions{Strategy: RandomPairs, PerPrompt: n}); err == nil {
			t.Errorf("Candidates with PerPrompt = %d: no error", n)
		}
		cfg := loopConfig(nil, testDir(t), w, &oracle{w: w}, &memoTrainer{})
		cfg.Samples = n
		if _, err := Run(context.Background(), cfg); err == nil {
			t.Errorf("Run with Samples = %d: no error", n)
		}
	}
}

// Temporary files left by a run killed mid-write (here: a torn state.json
// and a half-written candidates file of the next round) are removed by the
// next Run, which ends in the same state as a run that found none; files
// that are not provably such temporaries stay.
func TestStaleTemporaries(t *testing.T) {
	ref, _ := oneRound(t)
	if _, err := Run(context.Background(), ref); err != nil {
		t.Fatal(err)
	}
	cfg, _ := oneRound(t)
	state, err := os.ReadFile(filepath.Join(cfg.Dir, stateFile))
	if err != nil {
		t.Fatal(err)
	}
	stale := map[string][]byte{
		".state.json.atomicfile-3141592653.tmp":     state[:len(state)/2],
		".candidates-r2.jsonl.atomicfile-27182.tmp": []byte(`{"prompt":`),
	}
	keep := map[string][]byte{
		".state.json.tmp123":             state, // not our name: another program's
		"notes.atomicfile-1.tmp":         []byte("mine"),
		".state.json.atomicfile-x1.tmp":  []byte("mine"),
		".state.json.atomicfile-1.tmp.1": []byte("mine"),
	}
	for _, m := range []map[string][]byte{stale, keep} {
		for n, b := range m {
			if err := os.WriteFile(filepath.Join(cfg.Dir, n), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := Run(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	for n := range stale {
		if _, err := os.Lstat(filepath.Join(cfg.Dir, n)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left after Run: %v", n, err)
		}
	}
	for n, b := range keep {
		got, err := os.ReadFile(filepath.Join(cfg.Dir, n))
		if err != nil || !bytes.Equal(got, b) {
			t.Errorf("%s changed by Run: %v", n, err)
		}
		os.Remove(filepath.Join(cfg.Dir, n))
	}
	g, w := normalizeRefs(snapshot(t, cfg.Dir), cfg.Dir), normalizeRefs(snapshot(t, ref.Dir), ref.Dir)
	if !reflect.DeepEqual(g, w) {
		for k := range w {
			if g[k] != w[k] {
				t.Logf("%s differs", k)
			}
		}
		t.Fatal("a run that found stale temporaries ends in a different state")
	}
}

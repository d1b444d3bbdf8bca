package itec

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/posttrain/posttrain/prefopt"
)

// fileLabeler answers with an oracle, slowly (a stand-in for a person), and
// records every answer it returns in a synced file before returning it:
// the ground truth of what a crash may lose. With durable set it is a
// DurableLabeler whose record doubles as its queue: an answer found there
// is returned again without asking.
type fileLabeler struct {
	o       Labeler
	path    string
	durable bool
	mu      sync.Mutex
	kept    map[string]Preference
	asked   []string
}

func answerKey(prompt, a, b string) string { return strconv.Quote(prompt + "\x00" + a + "\x00" + b) }

func newFileLabeler(o Labeler, path string, durable bool) *fileLabeler {
	l := &fileLabeler{o: o, path: path, durable: durable, kept: map[string]Preference{}}
	if f, err := os.Open(path); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var key string
			var p Preference
			var lvl int
			if _, err := fmt.Sscanf(sc.Text(), "%s %t %d", &key, &p.PreferA, &lvl); err == nil {
				p.Level = prefopt.Level(lvl)
				l.kept[key] = p
			}
		}
		f.Close()
	}
	return l
}

func (l *fileLabeler) Label(ctx context.Context, prompt, a, b string) (Preference, error) {
	key := answerKey(prompt, a, b)
	l.mu.Lock()
	if p, ok := l.kept[key]; ok && l.durable {
		l.mu.Unlock()
		return p, nil
	}
	l.asked = append(l.asked, key)
	l.mu.Unlock()
	time.Sleep(2 * time.Millisecond)
	p, err := l.o.Label(ctx, prompt, a, b)
	if err != nil {
		return p, err
	}
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return p, err
	}
	fmt.Fprintf(f, "%s %t %d\n", key, p.PreferA, int(p.Level))
	f.Sync()
	f.Close()
	return p, nil
}

type commitLabeler struct{ *fileLabeler }

func (commitLabeler) Commit(ctx context.Context, prompt, a, b string) error { return nil }

func killConfig(dir string, lab Labeler, workers int) Config {
	w := newWorld(12)
	tr := &memoTrainer{dir: dir, fallback: &sampler{w: w, parity: -1, skill: 0.2}}
	cfg := loopConfig(nil, dir, w, nil, tr)
	cfg.Labeler, cfg.Rounds, cfg.Workers = lab, 1, workers
	return cfg
}

func labelerFor(dir string, durable bool) Labeler {
	l := newFileLabeler(&oracle{w: newWorld(12)}, filepath.Join(dir, "answers"), durable)
	if durable {
		return commitLabeler{l}
	}
	return l
}

// TestKillHelper is the process TestLabelsSurviveKill kills.
func TestKillHelper(t *testing.T) {
	dir := os.Getenv("ITEC_KILL_HELPER")
	if dir == "" {
		t.Skip("helper process only")
	}
	workers, _ := strconv.Atoi(os.Getenv("ITEC_KILL_WORKERS"))
	durable := os.Getenv("ITEC_KILL_DURABLE") != ""
	Run(context.Background(), killConfig(dir, labelerFor(dir, durable), workers))
	time.Sleep(time.Minute)
}

// SIGKILL at random moments of the label step: a resumed run asks again
// only for answers that were in flight — at most one per worker — and,
// with a DurableLabeler, for none. (The probe: 8 of 120 trials asked again
// for an answer already returned.)
func TestLabelsSurviveKill(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "js" || runtime.GOOS == "wasip1" || runtime.GOOS == "plan9" {
		t.Skip("no SIGKILL here")
	}
	rng := rand.New(rand.NewPCG(20, 20))
	trials := 3 // ITEC_KILL_TRIALS=120 for the probe's count
	if os.Getenv("ITEC_KILL_TRIALS") != "" {
		trials, _ = strconv.Atoi(os.Getenv("ITEC_KILL_TRIALS"))
	}
	for _, workers := range []int{1, 3} {
		for _, durable := range []bool{false, true} {
			lost := 0
			for trial := range trials {
				dir := testDir(t)
				// Killed below; at the latest at the bound, should the
				// test itself stop waiting for it.
				ctx, cancel := context.WithTimeout(context.Background(), hangBound(t))
				cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestKillHelper$")
				cmd.Env = append(os.Environ(), "ITEC_KILL_HELPER="+dir, fmt.Sprintf("ITEC_KILL_WORKERS=%d", workers))
				if durable {
					cmd.Env = append(cmd.Env, "ITEC_KILL_DURABLE=1")
				}
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				// Kill once labeling is under way, at a random moment.
				deadline := time.Now().Add(10 * time.Second)
				for time.Now().Before(deadline) {
					if fi, err := os.Stat(filepath.Join(dir, "answers")); err == nil && fi.Size() > 0 {
						break
					}
					time.Sleep(time.Millisecond)
				}
				time.Sleep(time.Duration(rng.IntN(20000)) * time.Microsecond)
				cmd.Process.Signal(syscall.SIGKILL)
				cmd.Wait()
				cancel()

				answered := newFileLabeler(nil, filepath.Join(dir, "answers"), false).kept
				resumed := newFileLabeler(&oracle{w: newWorld(12)}, filepath.Join(dir, "answers.resumed"), false)
				lab := Labeler(resumed)
				if durable {
					resumed.kept, resumed.durable = answered, true
					lab = commitLabeler{resumed}
				}
				if _, err := Run(context.Background(), killConfig(dir, lab, workers)); err != nil {
					t.Fatalf("workers %d durable %v trial %d: resume: %v", workers, durable, trial, err)
				}
				again := 0
				for _, k := range resumed.asked {
					if _, ok := answered[k]; ok {
						again++
					}
				}
				limit := workers
				if durable {
					limit = 0
				}
				if again > limit {
					t.Errorf("workers %d durable %v trial %d: %d answers asked again, want ≤ %d", workers, durable, trial, again, limit)
				}
				lost += again
			}
			t.Logf("workers %d, durable %v: %d answers asked again in %d kills", workers, durable, lost, trials)
		}
	}
}

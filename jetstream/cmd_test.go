package jetstream

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/posttrain/posttrain/itec"
)

var (
	buildOnce sync.Once
	workerBin string
	buildErr  error
)

// workerCommand builds cmd/posttrain-worker once per test binary.
func workerCommand(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "posttrain-worker-bin-")
		if err != nil {
			buildErr = err
			return
		}
		workerBin = filepath.Join(dir, "posttrain-worker")
		out, err := exec.Command("go", "build", "-o", workerBin, "./cmd/posttrain-worker").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("%v: %s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return workerBin
}

// The worker command drains on SIGTERM: the task in hand is finished,
// stored and acknowledged once, and the process exits cleanly.
func TestWorkerCommandDrains(t *testing.T) {
	bin := workerCommand(t)
	_, path := tinyModel(t, 5, 32)
	s := startServer(t, "127.0.0.1:0")
	ex := open(t, connect(t, s), Options{Run: "drain", AckWait: 30 * time.Second})
	cmd := exec.Command(bin, "-url", s.URL(), "-run", "drain", "-concurrency", "1", "-name", "drainer", "-len", "48")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	seeds := make([]uint64, 64) // long enough to be caught in hand
	for i := range seeds {
		seeds[i] = uint64(i)
	}
	type res struct {
		texts []string
		err   error
	}
	got := make(chan res, 1)
	go func() {
		texts, err := ex.Generate(context.Background(), itec.GenerateTask{ID: "drain/1", Member: itec.Member{Name: "m", Ref: path}, Prompt: "hello", Seeds: seeds})
		got <- res{texts, err}
	}()
	// Wait until the worker holds the task, then ask it to stop.
	for deadline := time.Now().Add(20 * time.Second); ; {
		c, err := ex.js.Consumer(context.Background(), ex.n.tasks, "work")
		if err == nil && c.CachedInfo().NumAckPending == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the worker never took the task")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("worker exited with %v after SIGTERM", err)
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the worker did not drain")
	}
	r := <-got
	if r.err != nil || len(r.texts) != len(seeds) {
		t.Fatalf("task: %d texts, %v", len(r.texts), r.err)
	}
	done := storedResult(t, ex, taskKey("drain/1", ex.uploads[path]))
	if done.Worker != "drainer" || done.Deliveries != 1 {
		t.Fatalf("result from %q after %d deliveries; want the draining worker's, delivered once", done.Worker, done.Deliveries)
	}
}

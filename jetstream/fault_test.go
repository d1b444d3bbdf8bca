package jetstream

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/posttrain/posttrain/itec"
)

// The fault tests run workers and coordinators as child processes (this
// test binary, re-executed in a role) so they can be SIGKILLed.

func TestMain(m *testing.M) {
	switch os.Getenv("PT_JS_ROLE") {
	case "":
		os.Exit(m.Run())
	case "worker":
		os.Exit(helperWorker())
	case "coordinator":
		os.Exit(helperCoordinator())
	default:
		fmt.Fprintln(os.Stderr, "unknown PT_JS_ROLE")
		os.Exit(2)
	}
}

// announcing prints "start" before each generation, so a test can kill the
// worker while a task is in hand.
type announcing struct{ g itec.Generator }

func (a announcing) Generate(ctx context.Context, prompt string, seeds []uint64) ([]string, error) {
	fmt.Println("start", prompt)
	return a.g.Generate(ctx, prompt, seeds)
}

type announcingLoader struct{ *loader }

func (l announcingLoader) Generator(ctx context.Context, m Model) (itec.Generator, error) {
	g, err := l.loader.Generator(ctx, m)
	return announcing{g}, err
}

func helperConn() (*nats.Conn, error) {
	return nats.Connect(os.Getenv("PT_JS_URL"), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
}

func helperWorker() int {
	nc, err := helperConn()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer nc.Close()
	delay, _ := time.ParseDuration(os.Getenv("PT_JS_DELAY"))
	w := newWorld(12)
	wk := &Worker{Loader: announcingLoader{&loader{w: w, delay: delay}}, Concurrency: 2, Name: "child"}
	if err := wk.Run(context.Background(), nc, os.Getenv("PT_JS_RUN")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func helperCoordinator() int {
	var nc *nats.Conn
	var err error
	if store := os.Getenv("PT_JS_STORE"); store != "" {
		// The embedded default, with a port for the test's workers: the
		// server dies with the coordinator and restarts from the store.
		var s *Server
		// No Sync: what a SIGKILL tests is the store's writes, which the
		// kernel keeps whether or not they were flushed to the disk.
		if s, err = StartServer(ServerConfig{Dir: store, Listen: os.Getenv("PT_JS_LISTEN")}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer s.Shutdown()
		nc, err = s.Connect()
	} else {
		nc, err = helperConn()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer nc.Close()
	ctx := context.Background()
	ex, err := Open(ctx, nc, Options{Run: os.Getenv("PT_JS_RUN"), AckWait: time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer ex.Close()
	w := newWorld(12)
	if _, err := itec.Run(ctx, w.config(os.Getenv("PT_JS_DIR"), &oracle{w: w}, ex, 6)); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	return 0
}

func helper(t *testing.T, role string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{"PT_JS_ROLE=" + role}, env...)...)
	cmd.Stderr = os.Stderr
	return cmd
}

// A worker SIGKILLed with tasks in hand: they are redelivered after
// AckWait to another worker, and the run ends in the in-process run's state.
func TestWorkerKilled(t *testing.T) {
	w := newWorld(12)
	want, wantLabels := reference(t, w)
	s := startServer(t, "127.0.0.1:0")
	nc := connect(t, s)
	ex := open(t, nc, Options{Run: "wk", AckWait: time.Second})
	lab := &oracle{w: w}
	serve(t, connect(t, s), "wk", &Worker{Labeler: lab, Concurrency: 4})

	child := helper(t, "worker", "PT_JS_URL="+s.URL(), "PT_JS_RUN=wk", "PT_JS_DELAY=500ms")
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	killed := make(chan struct{})
	go func() {
		defer close(killed)
		sc := bufio.NewScanner(out)
		if sc.Scan() { // a generation is under way: kill mid-task
			child.Process.Kill()
		}
		for sc.Scan() {
		}
		child.Wait()
	}()
	dir := t.TempDir()
	done := make(chan error, 1)
	go func() {
		_, err := itec.Run(context.Background(), w.config(dir, &oracle{w: w}, ex, 6))
		done <- err
	}()
	select {
	case <-killed:
	case <-time.After(20 * time.Second):
		t.Fatal("the worker never started a task")
	}
	if !child.ProcessState.Exited() && child.ProcessState.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("worker ended with %v, not killed", child.ProcessState)
	}
	// A fresh worker takes over; the killed one's tasks come back to it.
	serve(t, connect(t, s), "wk", &Worker{Loader: &loader{w: w}, Concurrency: 2, Name: "rescuer"})
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("the run did not finish after the worker was killed")
	}
	sameState(t, snapshot(t, dir), want)
	if lab.calls.Load() != wantLabels {
		t.Fatalf("%d labels, in-process %d", lab.calls.Load(), wantLabels)
	}
	if n := redelivered(t, ex); n == 0 {
		t.Fatal("no task was redelivered: the kill missed every task in hand")
	} else {
		t.Logf("%d tasks redelivered after the kill", n)
	}
}

// redelivered counts the results of tasks delivered more than once.
func redelivered(t *testing.T, ex *Executor) int {
	t.Helper()
	ctx := context.Background()
	keys, err := ex.kv.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, k := range keys {
		if r := storedResult(t, ex, k); r.Deliveries > 1 {
			n++
		}
	}
	return n
}

func storedResult(t *testing.T, ex *Executor, key string) *result {
	t.Helper()
	ent, err := ex.kv.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	r := new(result)
	if err := json.Unmarshal(ent.Value(), r); err != nil {
		t.Fatal(err)
	}
	return r
}

// The coordinator SIGKILLed at random points and restarted, over and over:
// the run ends in the in-process run's state, and the label service is
// asked for each label exactly once.
func TestCoordinatorKilled(t *testing.T) {
	s := startServer(t, "127.0.0.1:0")
	killCoordinator(t, s.URL(), "ck", 200*time.Millisecond, func() *nats.Conn { return connect(t, s) })
}

// The same with the embedded server of Dial's default (Sync on) in the
// coordinator's process: each kill takes the server down with it, and it
// restarts from its store in the run's directory. Tasks the server had
// not yet written out (the work stream is not synced) are published again.
func TestEmbeddedCoordinatorKilled(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	store := t.TempDir()
	var conns []*nats.Conn
	// The workers' connections close as the test ends, before the workers
	// are stopped: with the server gone, a drain would wait in vain.
	defer func() {
		for _, nc := range conns {
			nc.Close()
		}
	}()
	// Kills spread over the run, which takes longer to start here.
	killCoordinator(t, "nats://"+addr, "eck", 500*time.Millisecond, func() *nats.Conn {
		nc, err := nats.Connect("nats://"+addr, nats.RetryOnFailedConnect(true), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, nc)
		return nc
	}, "PT_JS_STORE="+store, "PT_JS_LISTEN="+addr)
}

// killCoordinator runs coordinator processes, killing the first ones
// within killWithin of their start, and checks the run's end state and
// labels against the in-process run's.
func killCoordinator(t *testing.T, url, run string, killWithin time.Duration, conn func() *nats.Conn, env ...string) {
	w := newWorld(12)
	want, ref := referenceLabels(t, w)
	// Labels are slow, as people are, so kills land in the label step too.
	lab := &countingOracle{oracle: &oracle{w: w}, seen: map[string]int{}, delay: 15 * time.Millisecond}
	serve(t, conn(), run, &Worker{Labeler: lab, Concurrency: 2})
	serve(t, conn(), run, &Worker{Loader: &loader{w: w, delay: 20 * time.Millisecond}, Concurrency: 4})

	dir := t.TempDir()
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	kills := 0
	var points []string // the step each kill interrupted, from the last commit
	for attempt := 0; ; attempt++ {
		if attempt == 60 {
			t.Fatal("the run did not finish in 60 starts")
		}
		cmd := helper(t, "coordinator", append([]string{"PT_JS_URL=" + url, "PT_JS_RUN=" + run, "PT_JS_DIR=" + dir}, env...)...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		// Kill at a random point of the first starts; let the last one run.
		var timer, hung <-chan time.Time
		if attempt < 12 {
			timer = time.After(10*time.Millisecond + time.Duration(r.Int64N(int64(killWithin))))
		} else {
			hung = time.After(time.Minute)
		}
		select {
		case <-hung:
			if nc, err := nats.Connect(url); err == nil {
				js, _ := njs.New(nc)
				ctx := context.Background()
				if st, err := js.Stream(ctx, "PT_TASKS_"+run); err == nil {
					b, _ := json.Marshal(st.CachedInfo().State)
					t.Logf("stream: %s", b)
					for _, c := range []string{"work", "label"} {
						if ci, err := st.Consumer(ctx, c); err == nil {
							b, _ := json.Marshal(ci.CachedInfo())
							t.Logf("consumer: %s", b)
						}
					}
				}
				nc.Close()
			}
			cmd.Process.Signal(syscall.SIGQUIT) // its goroutines to stderr
			<-exited
			t.Fatalf("start %d: the coordinator hung (its goroutines are above); killed %d times before, after committing %v", attempt, kills, points)
		case err := <-exited:
			if err != nil {
				t.Fatalf("start %d: coordinator failed: %v", attempt, err)
			}
		case <-timer:
			cmd.Process.Kill()
			<-exited
			kills++
			if b, err := os.ReadFile(filepath.Join(dir, "state.json")); err == nil {
				var f struct{ State itec.State }
				json.Unmarshal(b, &f)
				st := f.State
				points = append(points, fmt.Sprintf("r%d/%v", st.Round, st.Done))
			}
			continue
		}
		break
	}
	t.Logf("coordinator killed %d times, after committing %v", kills, points)
	sameState(t, snapshot(t, dir), want)
	// The same labels, as often as the in-process run asks them (a pair may
	// come up in both rounds): none was asked again after a kill.
	if got, want := lab.oracle.calls.Load(), ref.oracle.calls.Load(); got != want {
		t.Fatalf("label service asked %d labels, in-process run %d", got, want)
	}
	if !reflect.DeepEqual(lab.seen, ref.seen) {
		for k, n := range lab.seen {
			if ref.seen[k] != n {
				t.Errorf("pair %s labeled %d times, in process %d", k, n, ref.seen[k])
			}
		}
		t.FailNow()
	}
}

// countingOracle records every pair it is asked about.
type countingOracle struct {
	*oracle
	mu    sync.Mutex
	seen  map[string]int
	delay time.Duration
}

func (o *countingOracle) Label(ctx context.Context, prompt, a, b string) (itec.Preference, error) {
	k, _ := json.Marshal([]string{prompt, a, b})
	o.mu.Lock()
	o.seen[string(k)]++
	o.mu.Unlock()
	time.Sleep(o.delay)
	return o.oracle.Label(ctx, prompt, a, b)
}

package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/posttrain/posttrain/itec"
)

func startServer(t *testing.T, listen string) *Server {
	t.Helper()
	s, err := StartServer(ServerConfig{Dir: t.TempDir(), Listen: listen})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

func connect(t *testing.T, s *Server) *nats.Conn {
	t.Helper()
	nc, err := s.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// serve runs a worker until the test ends.
func serve(t *testing.T, nc *nats.Conn, run string, w *Worker) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := w.Run(ctx, nc, run); err != nil {
			t.Errorf("worker %s: %v", w.Name, err)
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
}

func open(t *testing.T, nc *nats.Conn, opt Options) *Executor {
	t.Helper()
	ex, err := Open(context.Background(), nc, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ex.Close() })
	return ex
}

// A run through the queue, served by two sampling workers and a label
// service, ends in exactly the in-process run's state with as many labels.
func TestDistributedEqualsInProcess(t *testing.T) {
	w := newWorld(12)
	want, wantLabels := reference(t, w)

	s := startServer(t, "")
	ex := open(t, connect(t, s), Options{Run: "eq"})
	ld := &loader{w: w}
	serve(t, connect(t, s), "eq", &Worker{Loader: ld, Concurrency: 3, Name: "w1"})
	serve(t, connect(t, s), "eq", &Worker{Loader: ld, Concurrency: 2, Name: "w2"})
	lab := &oracle{w: w}
	serve(t, connect(t, s), "eq", &Worker{Labeler: lab, Concurrency: 4, Name: "labels"})

	dir := t.TempDir()
	coordLab := &oracle{w: w} // must never be asked: labels go through the queue
	if _, err := itec.Run(context.Background(), w.config(dir, coordLab, ex, 8)); err != nil {
		t.Fatal(err)
	}
	sameState(t, snapshot(t, dir), want)
	if got := lab.calls.Load(); got != wantLabels || coordLab.calls.Load() != 0 {
		t.Fatalf("label service asked %d labels, coordinator's labeler %d; the in-process run asked %d", got, coordLab.calls.Load(), wantLabels)
	}
	// Members load once per worker and kind, not per task: 3 initial + 4
	// trained members, two workers at most.
	if n := ld.loads.Load(); n > 2*7 {
		t.Errorf("%d member loads for 7 members on 2 workers", n)
	}

	// The same run again, over the same results: nothing is recomputed and
	// no label is asked again.
	dir2 := t.TempDir()
	if _, err := itec.Run(context.Background(), w.config(dir2, coordLab, ex, 8)); err != nil {
		t.Fatal(err)
	}
	sameState(t, snapshot(t, dir2), want)
	if got := lab.calls.Load(); got != wantLabels {
		t.Fatalf("a rerun over kept results asked %d more labels", got-wantLabels)
	}
}

// A member that fails on every delivery ends the run with an error naming
// its task, after MaxDeliver attempts, not a hang.
func TestPoisonTask(t *testing.T) {
	w := newWorld(4)
	s := startServer(t, "")
	ex := open(t, connect(t, s), Options{Run: "poison", MaxDeliver: 3, AckWait: time.Second})
	serve(t, connect(t, s), "poison", &Worker{Loader: &loader{w: w, fail: true}, Name: "w1"})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := itec.Collect(ctx, w.specialists(), w.prompts, itec.SampleOptions{N: 2, Workers: 4, Seed: 1, Round: 1, Executor: ex})
	var te *TaskError
	if !errors.As(err, &te) {
		t.Fatalf("Collect returned %v, want a TaskError", err)
	}
	if te.Deliveries != 3 || !strings.Contains(te.ID, "/sample/") || !strings.Contains(err.Error(), "always fails") || te.Worker != "w1" {
		t.Fatalf("dead letter %+v: want the task, 3 deliveries, worker w1 and the cause", te)
	}
	t.Log(err)
}

// A task whose worker dies on every delivery (here: takes it and never
// acknowledges nor heartbeats) becomes a dead letter through the server's
// max-deliveries advisory.
func TestSilentWorkerDeadLetter(t *testing.T) {
	s := startServer(t, "")
	nc := connect(t, s)
	ex := open(t, nc, Options{Run: "silent", MaxDeliver: 2, AckWait: 200 * time.Millisecond})
	js, _ := njs.New(nc)
	c, err := js.Consumer(context.Background(), "PT_TASKS_silent", "work")
	if err != nil {
		t.Fatal(err)
	}
	cc, err := c.Consume(func(njs.Msg) {}) // takes tasks, drops them
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err = ex.Generate(ctx, itec.GenerateTask{ID: "r1/sample/p0/m0=x/s0+1", Member: itec.Member{Name: "x", Ref: "spec/all"}, Prompt: "q0", Seeds: []uint64{1}})
	var te *TaskError
	if !errors.As(err, &te) || te.ID != "r1/sample/p0/m0=x/s0+1" || te.Deliveries != 3 {
		t.Fatalf("Generate returned %v, want the dead letter of its task after MaxDeliver + 1 = 3 deliveries", err)
	}
	t.Log(err)
}

// With Options.Labeler the coordinator answers its own label queue: the
// same run, the same labels.
func TestCoordinatorLabels(t *testing.T) {
	w := newWorld(12)
	want, wantLabels := reference(t, w)
	s := startServer(t, "")
	lab := &oracle{w: w}
	ex := open(t, connect(t, s), Options{Run: "own", Labeler: lab})
	serve(t, connect(t, s), "own", &Worker{Loader: &loader{w: w}, Concurrency: 4})
	dir := t.TempDir()
	if _, err := itec.Run(context.Background(), w.config(dir, &oracle{w: w}, ex, 8)); err != nil {
		t.Fatal(err)
	}
	sameState(t, snapshot(t, dir), want)
	if lab.calls.Load() != wantLabels {
		t.Fatalf("%d labels, in-process %d", lab.calls.Load(), wantLabels)
	}
}

// A result too large for the server's max_payload is a dead letter saying
// so, not a task redelivered until it dies unexplained.
func TestOversizedResult(t *testing.T) {
	s := startServer(t, "")
	ex := open(t, connect(t, s), Options{Run: "big"})
	serve(t, connect(t, s), "big", &Worker{Loader: bigLoader{}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := ex.Generate(ctx, itec.GenerateTask{ID: "big/1", Member: itec.Member{Name: "big", Ref: "big"}, Prompt: "p", Seeds: []uint64{1}})
	var te *TaskError
	if !errors.As(err, &te) || !strings.Contains(te.Cause, "max_payload") {
		t.Fatalf("oversized result: %v", err)
	}
}

type bigLoader struct{}

func (bigLoader) Generator(context.Context, Model) (itec.Generator, error) { return bigGen{}, nil }
func (bigLoader) Scorer(context.Context, Model) (itec.Scorer, error)       { return nil, errors.New("none") }

type bigGen struct{}

func (bigGen) Generate(_ context.Context, _ string, seeds []uint64) ([]string, error) {
	return []string{strings.Repeat("x", 9<<20)}, nil
}

// A restarted coordinator retries the tasks that were dead letters for its
// predecessor: a fixed worker gets another chance.
func TestDeadLetterRetriedOnRestart(t *testing.T) {
	w := newWorld(4)
	s := startServer(t, "")
	opt := Options{Run: "retry", MaxDeliver: 2, AckWait: time.Second}
	ex := open(t, connect(t, s), opt)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	wctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		(&Worker{Loader: &loader{w: w, fail: true}}).Run(wctx, connect(t, s), "retry")
	}()
	sopt := itec.SampleOptions{N: 2, Workers: 4, Seed: 1, Round: 1}
	sopt.Executor = ex
	var te *TaskError
	if _, err := itec.Collect(ctx, w.specialists(), w.prompts, sopt); !errors.As(err, &te) {
		t.Fatalf("with a failing worker: %v", err)
	}
	stop()
	<-done
	ex.Close()

	serve(t, connect(t, s), "retry", &Worker{Loader: &loader{w: w}, Concurrency: 2})
	sopt.Executor = open(t, connect(t, s), opt)
	got, err := itec.Collect(ctx, w.specialists(), w.prompts, sopt)
	if err != nil {
		t.Fatalf("after the restart with a fixed worker: %v", err)
	}
	sopt.Executor = nil
	want, _ := itec.Collect(ctx, w.specialists(), w.prompts, sopt)
	if !reflect.DeepEqual(got, want) {
		t.Fatal("the retried samples differ from the in-process ones")
	}
}

// fakeMsg is a delivery of a task, numbered, recording what the worker
// answered.
type fakeMsg struct {
	data      []byte
	delivered uint64
	acked     bool
	naked     bool
}

func (m *fakeMsg) Metadata() (*njs.MsgMetadata, error) {
	return &njs.MsgMetadata{NumDelivered: m.delivered}, nil
}
func (m *fakeMsg) Data() []byte                     { return m.data }
func (m *fakeMsg) Headers() nats.Header             { return nil }
func (m *fakeMsg) Subject() string                  { return "" }
func (m *fakeMsg) Reply() string                    { return "" }
func (m *fakeMsg) Ack() error                       { m.acked = true; return nil }
func (m *fakeMsg) DoubleAck(context.Context) error  { m.acked = true; return nil }
func (m *fakeMsg) Nak() error                       { m.naked = true; return nil }
func (m *fakeMsg) NakWithDelay(time.Duration) error { m.naked = true; return nil }
func (m *fakeMsg) InProgress() error                { return nil }
func (m *fakeMsg) Term() error                      { return nil }
func (m *fakeMsg) TermWithReason(string) error      { return nil }

// The delivery after MaxDeliver, whose predecessors' workers all died, is
// not run: the worker that gets it writes the dead letter.
func TestDeliveryPastLimit(t *testing.T) {
	w := newWorld(2)
	s := startServer(t, "")
	nc := connect(t, s)
	ex := open(t, nc, Options{Run: "limit", MaxDeliver: 2})
	ld := &loader{w: w}
	wk := &Worker{Loader: ld, Name: "w"}
	b, _ := json.Marshal(&task{ID: "crashy", Kind: kindGenerate, Prompt: "q0", Seeds: []uint64{1}, Model: &ModelRef{Name: "m", Ref: "spec/all"}, MaxDeliver: 2})
	info := &njs.ConsumerInfo{Config: njs.ConsumerConfig{AckWait: time.Second, MaxDeliver: 3}}

	m := &fakeMsg{data: b, delivered: 3}
	wk.handle(ex.kv, ex.obs, info, m)
	if !m.acked || ld.loads.Load() != 0 {
		t.Fatalf("third delivery of a 2-delivery task: acked %v, member loaded %d times; want a dead letter, nothing run", m.acked, ld.loads.Load())
	}
	ent, err := ex.kv.Get(context.Background(), taskKey("crashy", ""))
	if err != nil {
		t.Fatal(err)
	}
	var r result
	json.Unmarshal(ent.Value(), &r)
	if e := r.err(); e == nil || !strings.Contains(e.Error(), "crashed or timed out every time") || r.Worker != "w" {
		t.Fatalf("dead letter %+v", r)
	}
	t.Log(r.err())

	// Within the limit the task runs.
	b, _ = json.Marshal(&task{ID: "fine", Kind: kindGenerate, Prompt: "q0", Seeds: []uint64{1}, Model: &ModelRef{Name: "m", Ref: "spec/all"}, MaxDeliver: 2})
	m = &fakeMsg{data: b, delivered: 2}
	wk.handle(ex.kv, ex.obs, info, m)
	if ent, err := ex.kv.Get(context.Background(), taskKey("fine", "")); err != nil || !m.acked {
		t.Fatalf("second delivery: %v, acked %v", err, m.acked)
	} else {
		var r result
		if json.Unmarshal(ent.Value(), &r); r.Dead || len(r.Texts) != 1 {
			t.Fatalf("second delivery's result %+v", r)
		}
	}
}

// The embedded default: no URL, the store in the run's own directory, no
// port. The run ends in the in-process state, and its results outlive the
// server: started again from the directory, a rerun asks nothing anew.
func TestEmbeddedInRunDir(t *testing.T) {
	w := newWorld(12)
	want, wantLabels := reference(t, w)
	dir := t.TempDir()
	lab := &oracle{w: w}
	run := func(itecDir string) {
		nc, closeAll, err := Dial("", dir)
		if err != nil {
			t.Fatal(err)
		}
		defer closeAll()
		ex, err := Open(context.Background(), nc, Options{Run: "embedded", Labeler: lab})
		if err != nil {
			t.Fatal(err)
		}
		defer ex.Close()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			(&Worker{Loader: &loader{w: w}, Concurrency: 4}).Run(ctx, nc, "embedded")
		}()
		defer func() { cancel(); <-done }()
		if _, err := itec.Run(context.Background(), w.config(itecDir, &oracle{w: w}, ex, 8)); err != nil {
			t.Fatal(err)
		}
		sameState(t, snapshot(t, itecDir), want)
	}
	run(dir)
	if _, err := os.Stat(filepath.Join(dir, "jetstream")); err != nil {
		t.Fatalf("no JetStream store in the run directory: %v", err)
	}
	run(t.TempDir()) // a fresh loop over the same stored results
	if lab.calls.Load() != wantLabels {
		t.Fatalf("%d labels over two runs, want the first run's %d", lab.calls.Load(), wantLabels)
	}
}

// A task the server lost (the work stream is not fsynced) is published
// again by the call waiting for it, and a second ask of a queued task
// publishes nothing.
func TestLostTaskRepublished(t *testing.T) {
	s := startServer(t, "")
	ex := open(t, connect(t, s), Options{Run: "lost"})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	task := itec.GenerateTask{ID: "lost/1", Member: itec.Member{Name: "e", Ref: "echo"}, Prompt: "p", Seeds: []uint64{7}}
	got := make(chan []string, 2)
	for range 2 {
		go func() {
			texts, err := ex.Generate(ctx, task)
			if err != nil {
				t.Error(err)
			}
			got <- texts
		}()
	}
	// Both calls have published (or found the task queued): one message.
	for {
		info, err := ex.tasks.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs == 1 {
			break
		}
		if info.State.Msgs > 1 {
			t.Fatalf("%d messages queued for one task", info.State.Msgs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := ex.tasks.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	serve(t, connect(t, s), "lost", &Worker{Loader: echo{}})
	for range 2 {
		select {
		case texts := <-got:
			if !reflect.DeepEqual(texts, []string{"p7"}) {
				t.Fatalf("got %q", texts)
			}
		case <-ctx.Done():
			t.Fatal("the lost task was never published again")
		}
	}
}

// Delete removes a finished run's queue and results; the checkpoints stay.
func TestDelete(t *testing.T) {
	s := startServer(t, "")
	nc := connect(t, s)
	ex := open(t, nc, Options{Run: "gone"})
	ctx := context.Background()
	if err := ex.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	js, err := njs.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Stream(ctx, "PT_TASKS_gone"); !errors.Is(err, njs.ErrStreamNotFound) {
		t.Fatalf("work stream after Delete: %v", err)
	}
	if _, err := js.KeyValue(ctx, "PT_RESULTS_gone"); !errors.Is(err, njs.ErrBucketNotFound) {
		t.Fatalf("results after Delete: %v", err)
	}
	if _, err := js.ObjectStore(ctx, ModelBucket); err != nil {
		t.Fatalf("checkpoints after Delete: %v", err)
	}
}

package jetstream

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/posttrain/posttrain/distill/cache"
	"github.com/posttrain/posttrain/itec"
)

// Model is a member or reward model as a worker loads it.
type Model struct {
	ModelRef
	// File is a local copy of the checkpoint file or directory, its
	// SHA-256 checked against Object; empty if the coordinator's Ref named
	// neither.
	File string
}

// A Loader builds the models a worker serves: committee members' samplers
// and reward models, from their checkpoints. Each is loaded once per worker
// and shared by its concurrent tasks, so both must be safe for concurrent
// use. Adding a checkpoint format is adding a case to a Loader.
type Loader interface {
	Generator(ctx context.Context, m Model) (itec.Generator, error)
	Scorer(ctx context.Context, m Model) (itec.Scorer, error)
}

// A TeacherLoader is a Loader that also loads teachers, for a corpus's
// teacher predictions (Executor.Teacher).
type TeacherLoader interface {
	Loader
	Teacher(ctx context.Context, m Model) (cache.Teacher, error)
}

// Worker serves a run's tasks: sampling and scoring if it has a Loader,
// labels if it has a Labeler.
type Worker struct {
	Loader      Loader
	Labeler     itec.Labeler
	Concurrency int    // tasks at once; 0 means 1
	Name        string // reported in dead letters; 0 means the host name
	// CacheDir keeps checkpoints fetched from the object store, by SHA-256;
	// empty means a temporary directory removed when Run returns.
	CacheDir string
	// Logf, if not nil, reports connection trouble the worker rides out.
	Logf func(format string, args ...any)

	mu         sync.Mutex
	fetching   sync.Mutex // one fetch at a time: no two unpack the same directory
	models     map[string]*loaded
	running    map[string]chan struct{} // by task key, closed when done
	maxPayload int64
}

type loaded struct {
	once sync.Once
	gen  itec.Generator
	sc   itec.Scorer
	tch  cache.Teacher
	err  error
}

// permanent marks an error no redelivery can cure, such as a corrupt
// checkpoint: the task becomes a dead letter at once.
type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

// Run joins run on nc's server and serves tasks until ctx is cancelled,
// then drains: it takes no new task and returns once those in hand are
// done and acknowledged. It waits for the run's stream to exist.
func (w *Worker) Run(ctx context.Context, nc *nats.Conn, run string) error {
	n, err := namesOf(run)
	if err != nil {
		return err
	}
	if w.Loader == nil && w.Labeler == nil {
		return errors.New("jetstream: Worker has neither a Loader nor a Labeler")
	}
	if w.Name == "" {
		w.Name, _ = os.Hostname()
	}
	if w.CacheDir == "" {
		d, err := os.MkdirTemp("", "posttrain-worker-")
		if err != nil {
			return fmt.Errorf("jetstream: worker: %w", err)
		}
		defer os.RemoveAll(d)
		w.CacheDir = d
	}
	js, err := njs.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: worker: %w", err)
	}
	w.maxPayload = nc.MaxPayload()
	var kv njs.KeyValue
	var cons []njs.Consumer
	names := []string{}
	if w.Loader != nil {
		names = append(names, n.workCons)
	}
	if w.Labeler != nil {
		names = append(names, n.labelCons)
	}
	var obs njs.ObjectStore
	for {
		cons = cons[:0]
		kv, err = js.KeyValue(ctx, n.results)
		if err == nil && w.Loader != nil {
			obs, err = js.ObjectStore(ctx, ModelBucket)
		}
		for _, name := range names {
			if err != nil {
				break
			}
			var c njs.Consumer
			if c, err = js.Consumer(ctx, n.tasks, name); err == nil {
				cons = append(cons, c)
			}
		}
		if err == nil {
			break
		}
		// The coordinator has not opened the run yet (it creates the
		// stream, the consumers, the results and the checkpoint store in
		// turn), or the server restarts.
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(200 * time.Millisecond):
		}
	}
	conc := max(w.Concurrency, 1)
	var wg sync.WaitGroup
	for _, c := range cons {
		info := c.CachedInfo()
		for range conc {
			wg.Go(func() { w.pull(ctx, js, n.tasks, info, kv, obs) })
		}
	}
	wg.Wait()
	return nil
}

// pull takes one task at a time from the consumer until ctx is cancelled.
//
// Each task is its own pull request (Fetch of one) on a fresh inbox: no
// task waits in a client-side buffer while the slot runs another — it
// would age towards AckWait with no heartbeat, delay its own redelivery if
// the buffer dropped it, and hold work another worker could run. Requests
// last a second, so a failover or a restarted server is noticed at once.
// The cost is a subscription per task (two protocol lines without
// replies), and an idle slot's request a second.
func (w *Worker) pull(ctx context.Context, js njs.JetStream, stream string, info *njs.ConsumerInfo, kv njs.KeyValue, obs njs.ObjectStore) {
	var c njs.Consumer
	for ctx.Err() == nil {
		if c == nil {
			var err error
			if c, err = js.Consumer(ctx, stream, info.Name); err != nil {
				w.logf("jetstream: worker %s: consumer %s: %v", w.Name, info.Name, err)
				sleep(ctx, 200*time.Millisecond)
				continue
			}
		}
		// Not cancelled by ctx: a task delivered as the request is
		// cancelled would be lost to this worker yet count as a delivery.
		// Draining waits for the request's second instead.
		b, err := c.Fetch(1, njs.FetchMaxWait(time.Second))
		if err == nil {
			for msg := range b.Messages() {
				w.handle(kv, obs, info, msg)
			}
			err = b.Error()
		}
		if err != nil && ctx.Err() == nil && !errors.Is(err, nats.ErrTimeout) {
			// The consumer's leader moved, the server went away, or the
			// heartbeats stopped: look the consumer up again.
			w.logf("jetstream: worker %s: %v", w.Name, err)
			c = nil
			sleep(ctx, 50*time.Millisecond)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func (w *Worker) logf(format string, args ...any) {
	if w.Logf != nil {
		w.Logf(format, args...)
	}
}

// handle runs one task, stores its result, then acknowledges it: results
// before acks, which the executor's dedup relies on.
func (w *Worker) handle(kv njs.KeyValue, obs njs.ObjectStore, info *njs.ConsumerInfo, msg njs.Msg) {
	// The task runs to completion even while the worker drains: a
	// half-done task would only be redone elsewhere. Requests to the
	// server get a timeout each.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	api := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, apiTimeout) }
	md, err := msg.Metadata()
	if err != nil {
		msg.Term()
		return
	}
	var t task
	if err := json.Unmarshal(msg.Data(), &t); err != nil || t.ID == "" {
		msg.TermWithReason("undecodable task")
		return
	}
	// A task redelivered because its acknowledgement was lost has its
	// result already: acknowledge it again rather than redo it (and never
	// ask a labeler twice). A first delivery is checked too: after a
	// server crash, a task acknowledged but not yet removed on disk comes
	// back as new.
	//
	// A task this worker is running already — delivered again after a
	// server restart forgot the first delivery — waits for that run and
	// its result rather than running twice (a label asked twice).
	key := t.key()
	for {
		actx, acancel := api()
		_, err = kv.Get(actx, key)
		acancel()
		if err == nil {
			msg.Ack()
			return
		}
		w.mu.Lock()
		if w.running == nil {
			w.running = map[string]chan struct{}{}
		}
		other, busy := w.running[key]
		if !busy {
			done := make(chan struct{})
			w.running[key] = done
			defer func() {
				w.mu.Lock()
				delete(w.running, key)
				w.mu.Unlock()
				close(done)
			}()
		}
		w.mu.Unlock()
		if !busy {
			break
		}
		w.await(msg, info.Config.AckWait, other)
	}
	limit := cmp.Or(t.MaxDeliver, info.Config.MaxDeliver)
	type outcome struct {
		r   *result
		err error
	}
	var out outcome
	if int(md.NumDelivered) > limit {
		// Every earlier delivery's worker crashed or went silent: running
		// it again would likely crash this one too.
		out.err = permanent{fmt.Errorf("delivered %d times, never acknowledged: its workers crashed or timed out every time", md.NumDelivered-1)}
	} else {
		beat := time.NewTicker(max(info.Config.AckWait/3, 10*time.Millisecond))
		defer beat.Stop()
		done := make(chan outcome, 1)
		go func() {
			r, err := w.run(ctx, obs, &t)
			done <- outcome{r, err}
		}()
	wait:
		for {
			select {
			case out = <-done:
				break wait
			case <-beat.C:
				msg.InProgress() // a long generation is not a dead worker
			}
		}
	}
	r := out.r
	if out.err != nil {
		var p permanent
		if !errors.As(out.err, &p) && int(md.NumDelivered) < limit {
			msg.NakWithDelay(time.Duration(md.NumDelivered) * 50 * time.Millisecond)
			return
		}
		r = &result{Dead: true, Err: out.err.Error(), Deliveries: md.NumDelivered}
	}
	r.ID, r.Worker, r.Deliveries = t.ID, w.Name, md.NumDelivered
	b, err := json.Marshal(r)
	if err != nil {
		msg.Nak()
		return
	}
	// A result is worth more than a retry of the request: a label is a
	// person's answer, a generation minutes of work. Storing it is tried
	// again for about half a minute — a server restarting, a stream
	// electing a leader — before the task is left to another delivery.
	err = retry(ctx, func() error {
		sctx, scancel := api()
		defer scancel()
		_, err := kv.Create(sctx, key, b)
		if errors.Is(err, nats.ErrMaxPayload) { // no delivery can store it: say so
			b, _ = json.Marshal(&result{ID: t.ID, Worker: w.Name, Deliveries: md.NumDelivered, Dead: true,
				Err: fmt.Sprintf("its result of %d bytes exceeds the server's max_payload of %d", len(b), w.maxPayload)})
			_, err = kv.Create(sctx, key, b)
		}
		if errors.Is(err, njs.ErrKeyExists) {
			return nil
		}
		return err
	})
	if err != nil {
		msg.Nak() // not stored: let another delivery try
		return
	}
	// Not waiting for the server to confirm the ack saves a round trip per
	// task: an ack lost on the way only redelivers the task after AckWait,
	// and the result stored above answers it (see above).
	msg.Ack()
}

// await waits until done is closed, heartbeating msg meanwhile.
func (w *Worker) await(msg njs.Msg, ackWait time.Duration, done <-chan struct{}) {
	beat := time.NewTicker(max(ackWait/3, 10*time.Millisecond))
	defer beat.Stop()
	for {
		select {
		case <-done:
			return
		case <-beat.C:
			msg.InProgress()
		}
	}
}

func (w *Worker) run(ctx context.Context, obs njs.ObjectStore, t *task) (*result, error) {
	switch t.Kind {
	case kindLabel:
		if w.Labeler == nil {
			return nil, permanent{errors.New("label task on a worker without a labeler")}
		}
		p, err := w.Labeler.Label(ctx, t.Prompt, t.A, t.B)
		if err != nil {
			return nil, err
		}
		return &result{Preference: &p}, nil
	case kindPredict:
		if t.Model == nil || t.Format == nil {
			return nil, permanent{errors.New("predict task without a teacher or format")}
		}
		m, err := w.load(ctx, obs, t.Kind, *t.Model)
		if err != nil {
			return nil, err
		}
		p, err := cache.Predict(*t.Format, m.tch, t.Tokens, t.First)
		if err != nil {
			return nil, err
		}
		return &result{Prediction: &p}, nil
	case kindGenerate, kindScore:
		if t.Model == nil {
			return nil, permanent{fmt.Errorf("%s task without a model", t.Kind)}
		}
		m, err := w.load(ctx, obs, t.Kind, *t.Model)
		if err != nil {
			return nil, err
		}
		if t.Kind == kindGenerate {
			texts, err := m.gen.Generate(ctx, t.Prompt, t.Seeds)
			if err == nil && len(texts) != len(t.Seeds) {
				err = fmt.Errorf("member %q returned %d responses for %d seeds", t.Model.Name, len(texts), len(t.Seeds))
			}
			return &result{Texts: texts}, err
		}
		scores, err := m.sc.Score(ctx, t.Prompt, t.Responses)
		return &result{Scores: scores}, err
	}
	return nil, permanent{fmt.Errorf("unknown task kind %q", t.Kind)}
}

// load returns the model, loading it on first use.
func (w *Worker) load(ctx context.Context, obs njs.ObjectStore, kind string, ref ModelRef) (*loaded, error) {
	key := kind + "|" + ref.key()
	w.mu.Lock()
	if w.models == nil {
		w.models = map[string]*loaded{}
	}
	l, ok := w.models[key]
	if !ok {
		l = new(loaded)
		w.models[key] = l
	}
	w.mu.Unlock()
	l.once.Do(func() {
		m := Model{ModelRef: ref}
		if ref.Object != "" {
			if m.File, l.err = w.fetch(ctx, obs, ref.Object, ref.Dir); l.err != nil {
				l.err = fmt.Errorf("loading %q (ref %q): %w", ref.Name, ref.Ref, l.err)
				return
			}
		}
		switch kind {
		case kindGenerate:
			l.gen, l.err = w.Loader.Generator(ctx, m)
		case kindScore:
			l.sc, l.err = w.Loader.Scorer(ctx, m)
		case kindPredict:
			tl, ok := w.Loader.(TeacherLoader)
			if !ok {
				l.err = permanent{errors.New("this worker's Loader loads no teachers")}
				return
			}
			l.tch, l.err = tl.Teacher(ctx, m)
		}
		if l.err != nil {
			l.err = fmt.Errorf("loading %q (ref %q): %w", ref.Name, ref.Ref, l.err)
		}
	})
	if l.err != nil {
		w.mu.Lock()
		delete(w.models, key) // a later task may try again
		w.mu.Unlock()
	}
	return l, l.err
}

// fetch returns the path of the checkpoint object named by its SHA-256 in
// the worker's cache, fetching it if absent and checking the digest of the
// bytes either way; a directory's tar is unpacked beside it.
func (w *Worker) fetch(ctx context.Context, obs njs.ObjectStore, sum string, dir bool) (string, error) {
	w.fetching.Lock()
	defer w.fetching.Unlock()
	path, err := w.fetchFile(ctx, obs, sum)
	if err != nil || !dir {
		return path, err
	}
	d := path + ".d"
	if _, err := os.Stat(d); err == nil {
		return d, nil // unpacked from a verified tar
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if err := unpackDir(f, d); err != nil {
		return "", permanent{fmt.Errorf("checkpoint object %s: %w", sum, err)}
	}
	return d, nil
}

func (w *Worker) fetchFile(ctx context.Context, obs njs.ObjectStore, sum string) (string, error) {
	path := filepath.Join(w.CacheDir, sum)
	if err := checkDigest(path, sum); err == nil {
		return path, nil
	}
	os.RemoveAll(path + ".d") // unpacked from a copy that no longer verifies
	tmp := path + ".part"
	err := obs.GetFile(ctx, sum, tmp)
	if errors.Is(err, njs.ErrDigestMismatch) {
		os.Remove(tmp)
		return "", permanent{fmt.Errorf("checkpoint object %s: the object store's chunks do not match its digest: corrupt", sum)}
	}
	if err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("fetching checkpoint object %s: %w", sum, err)
	}
	if err := checkDigest(tmp, sum); err != nil {
		os.Remove(tmp)
		return "", permanent{err}
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", err
	}
	return path, nil
}

// checkDigest checks a file against its SHA-256 in hex.
func checkDigest(path, sum string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		return fmt.Errorf("checkpoint object %s: its bytes hash to %s: corrupt or replaced", sum, got)
	}
	return nil
}

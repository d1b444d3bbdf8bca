package jetstream

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/posttrain/posttrain/distill/cache"
	"github.com/posttrain/posttrain/itec"
)

// Options configures a run's queue.
type Options struct {
	// Run names the run: its stream, results bucket and subjects. Task IDs
	// are unique within a run, so two runs sharing a name share results.
	Run string
	// AckWait is how long a worker may hold a task without a heartbeat
	// before it is redelivered; workers heartbeat at a third of it. 0 means
	// 30 s.
	AckWait time.Duration
	// LabelAckWait is AckWait for labels, which people answer; 0 means 1 h.
	LabelAckWait time.Duration
	// MaxDeliver is how many times a task is delivered before it becomes a
	// dead letter; 0 means 5.
	MaxDeliver int
	// MaxPending bounds the tasks handed out and not yet acknowledged,
	// across all workers; 0 means 4096.
	MaxPending int
	// Replicas is the replication of the streams in a cluster; 0 means 1.
	Replicas int
	// MaxQueued and MaxQueueBytes bound the work stream: a publish past
	// either fails (the coordinator retries, then reports it) rather than
	// growing the store without end. The tasks queued are about the
	// coordinator's Workers, so the bounds only catch a runaway. 0 means
	// 100,000 tasks and 1 GiB.
	MaxQueued     int
	MaxQueueBytes int64
	// ResultsMaxAge, if not 0, expires results older than it. Leave it 0
	// for a run that may resume later: an expired label is asked again.
	// Executor.Delete removes a finished run's results instead.
	ResultsMaxAge time.Duration
	// Labeler, if not nil, answers label tasks in this process, through the
	// same durable queue. Leave it nil when a label service (Worker with a
	// Labeler) answers them: labels then survive a coordinator crash
	// mid-label, and none is asked twice.
	Labeler itec.Labeler
}

func (o Options) withDefaults() Options {
	if o.AckWait == 0 {
		o.AckWait = 30 * time.Second
	}
	if o.LabelAckWait == 0 {
		o.LabelAckWait = time.Hour
	}
	if o.MaxDeliver == 0 {
		o.MaxDeliver = 5
	}
	if o.MaxPending == 0 {
		o.MaxPending = 4096
	}
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	if o.MaxQueued == 0 {
		o.MaxQueued = 100_000
	}
	if o.MaxQueueBytes == 0 {
		o.MaxQueueBytes = 1 << 30
	}
	return o
}

// Executor is an itec.Executor that publishes tasks to a JetStream work
// queue and waits for their results. Results are kept by task ID in a
// key-value bucket: a task whose result exists is answered from it, a task
// still queued is waited for, not published again, and only a task in
// neither place is published. A coordinator killed and restarted therefore
// recomputes nothing and asks for no label twice.
type Executor struct {
	js    njs.JetStream
	n     names
	opt   Options
	tasks njs.Stream
	kv    njs.KeyValue
	obs   njs.ObjectStore

	opened uint64 // the results' last revision at Open: older dead letters are retried

	mu      sync.Mutex
	waiting map[string][]chan *result // by task key
	uploads map[string]string         // checkpoint path → object name

	stop   context.CancelFunc
	closed sync.Once
	wg     sync.WaitGroup
	subs   []*nats.Subscription
	watch  njs.KeyWatcher
}

var _ itec.Executor = (*Executor)(nil)

// Open creates (or opens) the run's stream, results bucket, consumers and
// the checkpoint store on nc's server, and returns the run's executor.
func Open(ctx context.Context, nc *nats.Conn, opt Options) (*Executor, error) {
	opt = opt.withDefaults()
	n, err := namesOf(opt.Run)
	if err != nil {
		return nil, err
	}
	if opt.MaxDeliver < 1 || opt.Replicas < 1 || opt.AckWait < 0 || opt.MaxPending < 1 || opt.MaxQueued < 1 || opt.MaxQueueBytes < 1 || opt.ResultsMaxAge < 0 {
		return nil, fmt.Errorf("jetstream: Open: MaxDeliver %d, Replicas %d, MaxPending %d, MaxQueued %d, MaxQueueBytes %d, AckWait %v and ResultsMaxAge %v must be positive",
			opt.MaxDeliver, opt.Replicas, opt.MaxPending, opt.MaxQueued, opt.MaxQueueBytes, opt.AckWait, opt.ResultsMaxAge)
	}
	js, err := njs.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: Open: %w", err)
	}
	e := &Executor{js: js, n: n, opt: opt, waiting: map[string][]chan *result{}, uploads: map[string]string{}}
	if e.tasks, err = openTasks(ctx, js, n, opt); err != nil {
		return nil, fmt.Errorf("jetstream: Open: stream %s: %w", n.tasks, err)
	}
	for _, c := range []njs.ConsumerConfig{
		{Durable: n.workCons, FilterSubject: n.work + "*", AckWait: opt.AckWait},
		{Durable: n.labelCons, FilterSubject: n.label + "*", AckWait: opt.LabelAckWait},
	} {
		c.AckPolicy = njs.AckExplicitPolicy
		// One delivery more than the tasks' limit: a worker that gets it
		// writes the dead letter of a task whose workers all died (see
		// Worker); if none is left, the server's advisory says so.
		c.MaxDeliver = opt.MaxDeliver + 1
		c.MaxAckPending = opt.MaxPending
		c.Replicas = opt.Replicas
		if _, err := js.CreateOrUpdateConsumer(ctx, n.tasks, c); err != nil {
			return nil, fmt.Errorf("jetstream: Open: consumer %s: %w", c.Durable, err)
		}
	}
	if e.kv, err = js.CreateOrUpdateKeyValue(ctx, njs.KeyValueConfig{Bucket: n.results, Storage: njs.FileStorage, Replicas: opt.Replicas, TTL: opt.ResultsMaxAge}); err != nil {
		return nil, fmt.Errorf("jetstream: Open: results %s: %w", n.results, err)
	}
	if e.obs, err = js.CreateOrUpdateObjectStore(ctx, njs.ObjectStoreConfig{Bucket: ModelBucket, Storage: njs.FileStorage, Replicas: opt.Replicas}); err != nil {
		return nil, fmt.Errorf("jetstream: Open: checkpoints %s: %w", ModelBucket, err)
	}
	st, err := e.kv.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("jetstream: Open: results %s: %w", n.results, err)
	}
	if bs, ok := st.(*njs.KeyValueBucketStatus); ok {
		e.opened = bs.StreamInfo().State.LastSeq
	}
	bg, stop := context.WithCancel(context.Background())
	e.stop = stop
	// Only new results: those stored before are read when asked for, so a
	// restart does not replay the whole bucket into memory.
	if e.watch, err = e.kv.WatchAll(bg, njs.IgnoreDeletes(), njs.UpdatesOnly()); err != nil {
		stop()
		return nil, fmt.Errorf("jetstream: Open: watching results: %w", err)
	}
	e.wg.Go(e.deliver)
	// A task whose worker died on every delivery has no worker to write its
	// dead letter: the server's advisory names it, and the executor writes it.
	sub, err := nc.Subscribe("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES."+n.tasks+".*", func(m *nats.Msg) {
		if bg.Err() == nil { // not closing
			e.wg.Go(func() { e.deadLetter(bg, m.Data) })
		}
	})
	if err != nil {
		stop()
		return nil, fmt.Errorf("jetstream: Open: %w", err)
	}
	e.subs = append(e.subs, sub)
	if opt.Labeler != nil {
		w := &Worker{Labeler: opt.Labeler, Concurrency: min(opt.MaxPending, 16), Name: "coordinator"}
		e.wg.Go(func() { w.Run(bg, nc, opt.Run) })
	}
	return e, nil
}

// openTasks creates or updates the run's work stream. Each task has a
// subject of its own holding at most one message (DiscardNewPerSubject):
// publishing a task already queued or in progress fails in the server, so
// "publish unless queued" is one request, not a lookup and a publish.
//
// A task needs no fsync of its own: a task lost in a crash is published
// again by the coordinator, which asks the queue for every task it waits
// for (see do), and only results are the record of finished work. So a
// single-replica work stream is in AsyncPersistMode — written to the
// operating system a moment after the publish rather than before its
// acknowledgement, never fsynced one by one — and a server with Sync pays
// one fsync per task, the result's, not three. Replicated streams cannot
// be async; a stream created before keeps its mode, which cannot change.
func openTasks(ctx context.Context, js njs.JetStream, n names, opt Options) (njs.Stream, error) {
	cfg := njs.StreamConfig{
		Name:                 n.tasks,
		Subjects:             []string{n.work + "*", n.label + "*"},
		Retention:            njs.WorkQueuePolicy,
		Storage:              njs.FileStorage,
		Replicas:             opt.Replicas,
		Duplicates:           10 * time.Minute,
		Discard:              njs.DiscardNew,
		MaxMsgsPerSubject:    1,
		DiscardNewPerSubject: true,
		MaxMsgs:              int64(opt.MaxQueued),
		MaxBytes:             opt.MaxQueueBytes,
	}
	if opt.Replicas == 1 {
		cfg.PersistMode = njs.AsyncPersistMode
	}
	s, err := js.Stream(ctx, n.tasks)
	switch {
	case errors.Is(err, njs.ErrStreamNotFound):
		s, err = js.CreateStream(ctx, cfg)
		if !errors.Is(err, njs.ErrStreamNameAlreadyInUse) {
			return s, err
		}
		if s, err = js.Stream(ctx, n.tasks); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	}
	cfg.PersistMode = s.CachedInfo().Config.PersistMode
	return js.UpdateStream(ctx, cfg)
}

// Delete removes the run's queue and results from the server, once the run
// is over and its results are no longer needed to resume it; the
// checkpoints stay in ModelBucket, shared by runs. It closes the executor.
func (e *Executor) Delete(ctx context.Context) error {
	e.Close()
	if err := e.js.DeleteStream(ctx, e.n.tasks); err != nil && !errors.Is(err, njs.ErrStreamNotFound) {
		return fmt.Errorf("jetstream: Delete: stream %s: %w", e.n.tasks, err)
	}
	if err := e.js.DeleteKeyValue(ctx, e.n.results); err != nil && !errors.Is(err, njs.ErrBucketNotFound) {
		return fmt.Errorf("jetstream: Delete: results %s: %w", e.n.results, err)
	}
	return nil
}

// Close stops the executor's background work; the queue and results stay.
func (e *Executor) Close() error {
	e.closed.Do(func() {
		for _, s := range e.subs {
			s.Unsubscribe()
		}
		e.watch.Stop()
		e.stop()
		e.wg.Wait()
	})
	return nil
}

// deliver hands results, as the bucket reports them, to their waiters.
func (e *Executor) deliver() {
	for ent := range e.watch.Updates() {
		if ent == nil {
			continue // the initial values are all in
		}
		if e.stale(ent) {
			continue // retried when asked for (enqueue)
		}
		e.settleRaw(ent.Key(), ent.Value())
	}
}

// stale reports whether an entry is a dead letter stored before this
// executor opened: a restarted coordinator retries the tasks that failed
// for its predecessor (a fixed worker, a replaced checkpoint), and reports
// only the failures it sees itself.
func (e *Executor) stale(ent njs.KeyValueEntry) bool {
	var r struct{ Dead bool }
	return json.Unmarshal(ent.Value(), &r) == nil && r.Dead && ent.Revision() <= e.opened
}

func (e *Executor) settleRaw(key string, b []byte) {
	r := new(result)
	if err := json.Unmarshal(b, r); err != nil {
		r = &result{ID: key, Dead: true, Err: fmt.Sprintf("undecodable result: %v", err)}
	}
	e.settle(key, r)
}

// settle hands a result to the calls waiting for it. Results are not kept
// in memory: a call made later finds its result in the bucket (enqueue).
func (e *Executor) settle(key string, r *result) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, c := range e.waiting[key] {
		c <- r
	}
	delete(e.waiting, key)
}

func (e *Executor) deadLetter(ctx context.Context, data []byte) {
	var adv struct {
		StreamSeq  uint64 `json:"stream_seq"`
		Deliveries uint64 `json:"deliveries"`
	}
	if json.Unmarshal(data, &adv) != nil {
		return
	}
	m, err := e.tasks.GetMsg(ctx, adv.StreamSeq)
	if err != nil {
		return // acknowledged after all, or already gone
	}
	var t task
	if json.Unmarshal(m.Data, &t) != nil {
		return
	}
	r := &result{ID: t.ID, Dead: true, Deliveries: adv.Deliveries, Err: "no worker acknowledged it (workers crashed or timed out on every delivery)"}
	b, _ := json.Marshal(r)
	if _, err := e.kv.Create(ctx, t.key(), b); err == nil || errors.Is(err, njs.ErrKeyExists) {
		e.tasks.DeleteMsg(ctx, adv.StreamSeq)
	}
}

// do publishes t unless its result exists or it is queued, and waits.
func (e *Executor) do(ctx context.Context, subject string, t *task) (*result, error) {
	key := t.key()
	t.Key = key
	c := make(chan *result, 1)
	e.mu.Lock()
	e.waiting[key] = append(e.waiting[key], c)
	e.mu.Unlock()
	defer e.unwait(key, c)

	// Order matters: a worker stores the result before it acknowledges the
	// task, so a task whose result is absent is either still in the queue
	// (and the publish is refused) or needs publishing. Errors here are
	// retried: in a cluster losing a node, streams elect new leaders.
	subj := subject + key
	if err := retry(ctx, func() error { return e.enqueue(ctx, subj, key, t) }); err != nil {
		return nil, err
	}
	// The watcher delivers results as they are stored. Now and then the
	// task is asked for again, which costs what the first ask did: it
	// guards against a watcher that misses a result while a cluster fails
	// over, and publishes again a task the server lost in a crash (the work
	// stream is not fsynced; see openTasks).
	// The wait doubles from a second to half a minute, so that thousands
	// of labels pending for hours cost the server little.
	wait := time.Second
	poll := time.NewTimer(wait)
	defer poll.Stop()
	for {
		select {
		case r := <-c:
			return r, r.err()
		case <-poll.C:
			// An error means the server is failing over: the next tick
			// tries again.
			e.enqueue(ctx, subj, key, t)
			wait = min(2*wait, 30*time.Second)
			poll.Reset(wait)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// apiTimeout bounds each request to the JetStream API.
const apiTimeout = 3 * time.Second

// retry calls f until it succeeds, for about 30 s: long enough for a
// cluster's streams to elect new leaders after losing a node.
func retry(ctx context.Context, f func() error) error {
	for attempt := 0; ; attempt++ {
		err := f()
		if err == nil || ctx.Err() != nil || attempt == 30 {
			return err
		}
		select {
		case <-time.After(time.Duration(min(attempt+1, 10)) * 100 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// enqueue publishes the task unless it has a result or is queued; a result
// found is handed to the waiters.
func (e *Executor) enqueue(ctx context.Context, subj, key string, t *task) error {
	// A request to a stream leader that dies unanswered would wait forever.
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	msgID := key // the server drops a second publish of it within Duplicates
	ent, err := e.kv.Get(ctx, key)
	switch {
	case err == nil && e.stale(ent):
		msgID = fmt.Sprintf("%s.retry%d", key, ent.Revision())
		// A dead letter of an earlier coordinator: this one tries again.
		// The delete is guarded by the revision, so a result stored in the
		// meantime stays.
		if err := e.kv.Delete(ctx, key, njs.LastRevision(ent.Revision())); err != nil {
			return fmt.Errorf("jetstream: task %s: clearing its dead letter: %w", t.ID, err)
		}
	case err == nil:
		e.settleRaw(key, ent.Value())
		return nil
	case !errors.Is(err, njs.ErrKeyNotFound):
		return fmt.Errorf("jetstream: task %s: result: %w", t.ID, err)
	}
	t.MaxDeliver = e.opt.MaxDeliver
	b, err := json.Marshal(t)
	if err != nil {
		return err
	}
	ack, err := e.js.Publish(ctx, subj, b, njs.WithMsgID(msgID))
	if err == nil && !ack.Duplicate {
		return nil
	}
	// Refused: queued or in progress already (the stream keeps one message
	// per task subject), or a real failure. Or a duplicate ID: published
	// within the Duplicates window but no longer queued — purged by hand,
	// say — in which case it goes out again under a fresh ID.
	if _, qerr := e.tasks.GetLastMsgForSubject(ctx, subj); qerr == nil {
		return nil
	}
	if err == nil {
		if _, err = e.js.Publish(ctx, subj, b, njs.WithMsgID(fmt.Sprintf("%s.%d", key, time.Now().UnixNano()))); err == nil {
			return nil
		}
	}
	return fmt.Errorf("jetstream: publishing task %s: %w", t.ID, err)
}

func (e *Executor) unwait(key string, c chan *result) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ws := e.waiting[key]
	for i, w := range ws {
		if w == c {
			e.waiting[key] = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(e.waiting[key]) == 0 {
		delete(e.waiting, key)
	}
}

// Generate implements itec.Executor.
func (e *Executor) Generate(ctx context.Context, t itec.GenerateTask) ([]string, error) {
	ref, err := e.model(ctx, t.Member.Name, t.Member.Algorithm, t.Member.Round, t.Member.Ref)
	if err != nil {
		return nil, err
	}
	r, err := e.do(ctx, e.n.work, &task{ID: t.ID, Kind: kindGenerate, Prompt: t.Prompt, Seeds: t.Seeds, Model: ref})
	if err != nil {
		return nil, err
	}
	if len(r.Texts) != len(t.Seeds) {
		return nil, fmt.Errorf("jetstream: task %s: %d responses for %d seeds", t.ID, len(r.Texts), len(t.Seeds))
	}
	return r.Texts, nil
}

// Score implements itec.Executor. The reward model travels by RewardRef.
func (e *Executor) Score(ctx context.Context, t itec.ScoreTask) ([]float64, error) {
	ref, err := e.model(ctx, "", "", 0, t.RewardRef)
	if err != nil {
		return nil, err
	}
	r, err := e.do(ctx, e.n.work, &task{ID: t.ID, Kind: kindScore, Prompt: t.Prompt, Responses: t.Responses, Model: ref})
	if err != nil {
		return nil, err
	}
	return r.Scores, nil
}

// Label implements itec.Executor: the label is asked of whoever serves the
// run's label queue (Options.Labeler or a Worker with a Labeler), once.
func (e *Executor) Label(ctx context.Context, t itec.LabelTask) (itec.Preference, error) {
	r, err := e.do(ctx, e.n.label, &task{ID: t.ID, Kind: kindLabel, Prompt: t.Candidate.Prompt, A: t.Candidate.A, B: t.Candidate.B})
	if err != nil {
		return itec.Preference{}, err
	}
	if r.Preference == nil {
		return itec.Preference{}, fmt.Errorf("jetstream: task %s: result has no preference", t.ID)
	}
	return *r.Preference, nil
}

// model returns the worker's handle of a model: if ref names a file, the
// file is stored in the object store under its SHA-256, once.
func (e *Executor) model(ctx context.Context, name string, alg itec.Algorithm, round int, ref string) (*ModelRef, error) {
	m := &ModelRef{Name: name, Algorithm: alg, Round: round, Ref: ref}
	fi, err := os.Stat(ref)
	if ref == "" || err != nil || !(fi.Mode().IsRegular() || fi.IsDir()) {
		return m, nil
	}
	m.Dir = fi.IsDir()
	e.mu.Lock()
	obj, ok := e.uploads[ref]
	e.mu.Unlock()
	if !ok {
		err := retry(ctx, func() (err error) {
			obj, err = e.upload(ctx, ref)
			return err
		})
		if err != nil {
			return nil, err
		}
		e.mu.Lock()
		e.uploads[ref] = obj
		e.mu.Unlock()
	}
	m.Object = obj
	return m, nil
}

// upload stores a checkpoint file, or a directory as a tar, under its
// SHA-256, unless already there.
func (e *Executor) upload(ctx context.Context, path string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*apiTimeout)
	defer cancel()
	var f *os.File
	fi, err := os.Stat(path)
	if err == nil && fi.IsDir() {
		if f, err = os.CreateTemp("", "posttrain-checkpoint-*.tar"); err == nil {
			defer os.Remove(f.Name())
			err = packDir(path, f)
		}
	} else if err == nil {
		f, err = os.Open(path)
	}
	if err != nil {
		if f != nil {
			f.Close()
		}
		return "", fmt.Errorf("jetstream: checkpoint %s: %w", path, err)
	}
	defer f.Close()
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("jetstream: checkpoint %s: %w", path, err)
	}
	name := hex.EncodeToString(h.Sum(nil))
	if _, err := e.obs.GetInfo(ctx, name); err == nil {
		return name, nil
	} else if !errors.Is(err, njs.ErrObjectNotFound) {
		return "", fmt.Errorf("jetstream: checkpoint %s: %w", path, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	if _, err := e.obs.Put(ctx, njs.ObjectMeta{Name: name, Description: path}, f); err != nil {
		return "", fmt.Errorf("jetstream: storing checkpoint %s: %w", path, err)
	}
	return name, nil
}

// Teacher returns the cache.Executor that has the run's workers compute a
// corpus's teacher predictions with the teacher at ref (a checkpoint file,
// stored in the object store like a member's), for cache.Precompute's
// Distribute option. Workers load it with their Loader's Teacher method.
func (e *Executor) Teacher(ref string) cache.Executor { return teacherExec{e, ref} }

type teacherExec struct {
	e   *Executor
	ref string
}

func (t teacherExec) Predict(ctx context.Context, b cache.Task) (cache.Prediction, error) {
	m, err := t.e.model(ctx, "teacher", "", 0, t.ref)
	if err != nil {
		return cache.Prediction{}, err
	}
	f := b.Format
	r, err := t.e.do(ctx, t.e.n.work, &task{ID: "teach/" + b.ID, Kind: kindPredict, Model: m, Tokens: b.Tokens, First: b.First, Format: &f})
	if err != nil {
		return cache.Prediction{}, err
	}
	if r.Prediction == nil {
		return cache.Prediction{}, fmt.Errorf("jetstream: task %s: result has no prediction", b.ID)
	}
	return *r.Prediction, nil
}

package jetstream

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/posttrain/posttrain/itec"
)

// A checkpoint corrupted in the object store is detected by its digest,
// whether the object was replaced (the worker's SHA-256 of the bytes
// against the name the coordinator gave it) or its chunks were damaged
// (the object store's own digest), and fails its task at once, naming it.
// A corrupted copy in a worker's cache is fetched again.
func TestCorruptCheckpoint(t *testing.T) {
	w := newWorld(4)
	s := startServer(t, "")
	nc := connect(t, s)
	ex := open(t, nc, Options{Run: "corrupt", AckWait: time.Second})
	dir := t.TempDir()
	path := filepath.Join(dir, "member.json")
	if err := os.WriteFile(path, []byte(`{"table":{"q0":"a7"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	member := itec.Member{Name: "m", Ref: path}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	gen := func(id string) ([]string, error) {
		return ex.Generate(ctx, itec.GenerateTask{ID: id, Member: member, Prompt: "q0", Seeds: []uint64{1, 2}})
	}
	worker := func(cache string) context.CancelFunc {
		wctx, stop := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			(&Worker{Loader: &loader{w: w}, CacheDir: cache, Name: "w"}).Run(wctx, connect(t, s), "corrupt")
		}()
		return func() { stop(); <-done }
	}

	cacheA := t.TempDir()
	stop := worker(cacheA)
	if out, err := gen("t1"); err != nil || out[0] != "a7" {
		t.Fatalf("clean checkpoint: %v, %v", out, err)
	}
	stop()
	obj := ex.uploads[path]
	cached := filepath.Join(cacheA, obj)
	if err := checkDigest(cached, obj); err != nil {
		t.Fatalf("the worker's cached copy: %v", err)
	}

	js, _ := njs.New(nc)
	obs, err := js.ObjectStore(ctx, ModelBucket)
	if err != nil {
		t.Fatal(err)
	}
	orig, err := obs.GetBytes(ctx, obj)
	if err != nil {
		t.Fatal(err)
	}

	// The object replaced by other bytes under the same name.
	if _, err := obs.PutBytes(ctx, obj, []byte(`{"table":{"q0":"a0"}}`)); err != nil {
		t.Fatal(err)
	}
	stop = worker(t.TempDir())
	_, err = gen("t2")
	stop()
	var te *TaskError
	if !errors.As(err, &te) || te.ID != "t2" || te.Deliveries != 1 || !strings.Contains(te.Cause, "corrupt") {
		t.Fatalf("replaced checkpoint: %v; want task t2's dead letter after one delivery, naming the corruption", err)
	}
	t.Log(err)

	// The original back, then one chunk damaged in place.
	if _, err := obs.PutBytes(ctx, obj, orig); err != nil {
		t.Fatal(err)
	}
	info, err := obs.GetInfo(ctx, obj)
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, "OBJ_"+ModelBucket)
	if err != nil {
		t.Fatal(err)
	}
	chunks := "$O." + ModelBucket + ".C." + info.NUID
	if err := st.Purge(ctx, njs.WithPurgeSubject(chunks)); err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(orig)
	bad[len(bad)/2] ^= 1
	if _, err := js.Publish(ctx, chunks, bad); err != nil {
		t.Fatal(err)
	}
	stop = worker(t.TempDir())
	_, err = gen("t3")
	stop()
	if !errors.As(err, &te) || te.ID != "t3" || !strings.Contains(te.Cause, "corrupt") {
		t.Fatalf("damaged chunk: %v; want task t3's dead letter naming the corruption", err)
	}
	t.Log(err)

	// A good object again, and worker A's cached copy damaged: the worker
	// notices and fetches it anew.
	if err := obs.Delete(ctx, obj); err != nil {
		t.Fatal(err)
	}
	if _, err := obs.PutBytes(ctx, obj, orig); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cached, []byte(`{"table":{"q0":"a1"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	stop = worker(cacheA)
	out, err := gen("t4")
	stop()
	if err != nil || out[0] != "a7" {
		t.Fatalf("after a damaged cache copy: %v, %v; want the checkpoint's a7", out, err)
	}
}

// A member retrained under the same name (its checkpoint rewritten) is a
// new task for a new coordinator, not answered from the old results.
func TestRetrainedMember(t *testing.T) {
	w := newWorld(2)
	s := startServer(t, "")
	serve(t, connect(t, s), "retrain", &Worker{Loader: &loader{w: w}})
	path := filepath.Join(t.TempDir(), "member.json")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, answer := range []string{"a1", "a2"} {
		if err := os.WriteFile(path, []byte(`{"table":{"q0":"`+answer+`"}}`), 0o644); err != nil {
			t.Fatal(err)
		}
		ex, err := Open(ctx, connect(t, s), Options{Run: "retrain"})
		if err != nil {
			t.Fatal(err)
		}
		out, err := ex.Generate(ctx, itec.GenerateTask{ID: "r1/sample/p0/m0=m/s0+1", Member: itec.Member{Name: "m", Ref: path}, Prompt: "q0", Seeds: []uint64{1}})
		ex.Close()
		if err != nil || out[0] != answer {
			t.Fatalf("checkpoint answering %s: %v, %v", answer, out, err)
		}
	}
}

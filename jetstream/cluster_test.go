package jetstream

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/posttrain/posttrain/itec"
)

// A three-node JetStream cluster (in-process servers, routes on the
// loopback) with every stream replicated three times loses a node mid-run;
// clients fail over to the others and the run ends in the in-process run's
// state.
func TestClusterLosesNode(t *testing.T) {
	w := newWorld(12)
	want, wantLabels := reference(t, w)

	// Every node routes to every other (a node ignores its own route), on
	// ports chosen up front: JetStream clustering needs configured routes.
	begin := time.Now()
	var routes []string
	for range 3 {
		routes = append(routes, "nats://127.0.0.1:"+strconv.Itoa(freePort(t)))
	}
	var nodes []*Server
	for i := range 3 {
		s, err := StartServer(ServerConfig{Dir: t.TempDir(), Listen: "127.0.0.1:0", Name: fmt.Sprintf("n%d", i),
			Cluster: "pt", ClusterListen: strings.TrimPrefix(routes[i], "nats://"), Routes: routes})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Shutdown)
		nodes = append(nodes, s)
	}
	var urls []string
	for _, s := range nodes {
		urls = append(urls, s.URL())
	}
	// Each client starts on its own node and knows them all.
	dial := func(first int) *nats.Conn {
		order := append([]string{urls[first]}, urls...)
		nc, err := nats.Connect(strings.Join(order, ","), nats.DontRandomize(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	var ex *Executor
	var err error
	deadline := time.Now().Add(30 * time.Second)
	for { // the cluster elects its meta leader first
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		ex, err = Open(ctx, dial(0), Options{Run: "cl", Replicas: 3, AckWait: time.Second, LabelAckWait: 2 * time.Second})
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cluster never came up: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Cleanup(func() { ex.Close() })
	t.Logf("cluster up and run opened in %v", time.Since(begin).Round(time.Millisecond))
	ld := &loader{w: w, delay: 5 * time.Millisecond}
	serve(t, dial(1), "cl", &Worker{Loader: ld, Concurrency: 3, Name: "w1", Logf: t.Logf})
	serve(t, dial(2), "cl", &Worker{Loader: ld, Concurrency: 3, Name: "w2", Logf: t.Logf})
	lab := &oracle{w: w}
	serve(t, dial(1), "cl", &Worker{Labeler: lab, Concurrency: 4, Name: "labels", Logf: t.Logf})

	dir := t.TempDir()
	cfg := w.config(dir, &oracle{w: w}, ex, 6)
	var events atomic.Int64
	lost := make(chan struct{})
	start := time.Now()
	cfg.Progress = func(e itec.Event) {
		if testing.Verbose() {
			t.Logf("%v %+v", time.Since(start).Round(time.Millisecond), e)
		}
		if events.Add(1) == 10 { // mid-run: the first round's sampling is done
			go func() { nodes[2].Shutdown(); close(lost) }()
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	stuck := time.AfterFunc(55*time.Second, func() { dump(t, ex) }) // before the deadline unwinds it
	_, err = itec.Run(ctx, cfg)
	stuck.Stop()
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-lost:
	default:
		t.Fatal("the run ended before the node was lost")
	}
	sameState(t, snapshot(t, dir), want)
	if lab.calls.Load() != wantLabels {
		t.Fatalf("%d labels, in-process %d", lab.calls.Load(), wantLabels)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// dump reports where the tasks still awaited are.
func dump(t *testing.T, ex *Executor) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ex.mu.Lock()
	var keys []string
	for k := range ex.waiting {
		keys = append(keys, k)
	}
	ex.mu.Unlock()
	for _, k := range keys {
		_, qerr := ex.tasks.GetLastMsgForSubject(ctx, ex.n.label+k)
		_, werr := ex.tasks.GetLastMsgForSubject(ctx, ex.n.work+k)
		_, rerr := ex.kv.Get(ctx, k)
		t.Logf("awaited %s: label queue %v, work queue %v, result %v", k, qerr, werr, rerr)
	}
	for _, c := range []string{"work", "label"} {
		if ci, err := ex.js.Consumer(ctx, ex.n.tasks, c); err == nil {
			i := ci.CachedInfo()
			t.Logf("consumer %s: pending %d, ack pending %d, redelivered %d, waiting %d, leader %s", c, i.NumPending, i.NumAckPending, i.NumRedelivered, i.NumWaiting, i.Cluster.Leader)
		} else {
			t.Logf("consumer %s: %v", c, err)
		}
	}
}

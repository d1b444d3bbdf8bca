// Command posttrain-worker joins a posttrain run's JetStream work queue and
// serves its tasks: committee members' samples, reward-model scores and
// teacher predictions, loading each model by name from the checkpoint the
// coordinator stored (SHA-256 checked, cached on disk), with bounded
// concurrency. SIGTERM or SIGINT drains it: it takes no new task, finishes
// and acknowledges those in hand, and exits.
//
// Usage:
//
//	posttrain-worker -url nats://coordinator:4222 -run afm-1 [-concurrency 2] [-cache DIR]
//
// Checkpoint formats are chosen with -format: tinylm (nn.TinyLM files over
// the byte tokenizer) or hf (transformers checkpoint directories, with
// their tokenizer.json).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/posttrain/posttrain/jetstream"
)

// formats builds a Loader per checkpoint format from the sampling flags;
// a new format is one more entry.
var formats = map[string]func(s sampling) jetstream.Loader{
	"tinylm": func(s sampling) jetstream.Loader {
		return jetstream.TinyLM{Len: s.length, Temperature: s.temperature, TopK: s.topK}
	},
	"hf": func(s sampling) jetstream.Loader {
		return jetstream.HF{Len: s.length, Temperature: s.temperature, TopK: s.topK}
	},
}

type sampling struct {
	length      int
	temperature float64
	topK        int
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("posttrain-worker: ")
	var (
		url    = flag.String("url", "", "NATS server URL(s) of the run, comma-separated")
		run    = flag.String("run", "", "the run's name (Options.Run on the coordinator)")
		conc   = flag.Int("concurrency", runtime.GOMAXPROCS(0), "tasks at once")
		cache  = flag.String("cache", "", "checkpoint cache directory (default: a temporary one)")
		name   = flag.String("name", "", "worker name in dead letters (default: host name and pid)")
		format = flag.String("format", "tinylm", "checkpoint format: "+strings.Join(formatNames(), ", "))
		s      sampling
	)
	flag.IntVar(&s.length, "len", 32, "tokens per response")
	flag.Float64Var(&s.temperature, "temperature", 1, "sampling temperature")
	flag.IntVar(&s.topK, "topk", 0, "top-k sampling (0: the whole vocabulary)")
	flag.Parse()
	if *url == "" || *run == "" {
		flag.Usage()
		os.Exit(2)
	}
	mk, ok := formats[*format]
	if !ok {
		log.Fatalf("unknown -format %q; have %s", *format, strings.Join(formatNames(), ", "))
	}
	if *name == "" {
		h, _ := os.Hostname()
		*name = fmt.Sprintf("%s-%d", h, os.Getpid())
	}
	nc, err := nats.Connect(*url, nats.Name(*name), nats.MaxReconnects(-1), nats.ReconnectWait(500*time.Millisecond))
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	w := &jetstream.Worker{Loader: mk(s), Concurrency: *conc, Name: *name, CacheDir: *cache, Logf: log.Printf}
	log.Printf("serving run %q on %s, %d at a time", *run, nc.ConnectedUrl(), *conc)
	if err := w.Run(ctx, nc, *run); err != nil {
		log.Fatal(err)
	}
	log.Print("drained")
}

func formatNames() []string {
	var out []string
	for n := range formats {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

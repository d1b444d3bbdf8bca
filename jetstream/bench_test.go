package jetstream

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/posttrain/posttrain/itec"
)

// echo is a Loader whose members answer at once: the queue's own cost.
type echo struct{}

func (echo) Generator(context.Context, Model) (itec.Generator, error) { return echoGen{}, nil }
func (echo) Scorer(context.Context, Model) (itec.Scorer, error)       { return nil, fmt.Errorf("no scorer") }

type echoGen struct{}

func (echoGen) Generate(_ context.Context, prompt string, seeds []uint64) ([]string, error) {
	out := make([]string, len(seeds))
	for i, s := range seeds {
		out[i] = prompt + strconv.FormatUint(s, 10)
	}
	return out, nil
}

// BenchmarkOverhead is one task's round trip on the loopback: publish,
// a worker's pull, its result stored and its ack, the result back at the
// coordinator; tasks one at a time. median-µs/task is the median round
// trip. sync=on is the embedded default (ServerConfig.Sync): every write
// fsynced but the work stream's, so one fsync per task, the result's.
func BenchmarkOverhead(b *testing.B) {
	for _, sync := range []bool{false, true} {
		b.Run(fmt.Sprintf("sync=%v", map[bool]string{false: "off", true: "on"}[sync]), func(b *testing.B) {
			s, err := StartServer(ServerConfig{Dir: b.TempDir(), Listen: "127.0.0.1:0", Sync: sync})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Shutdown()
			dial := func() *nats.Conn {
				nc, err := nats.Connect(s.URL())
				if err != nil {
					b.Fatal(err)
				}
				return nc
			}
			nc := dial()
			defer nc.Close()
			ex, err := Open(context.Background(), nc, Options{Run: "overhead"})
			if err != nil {
				b.Fatal(err)
			}
			defer ex.Close()
			wnc := dial()
			defer wnc.Close()
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() {
				defer close(done)
				(&Worker{Loader: echo{}, Concurrency: 1}).Run(ctx, wnc, "overhead")
			}()
			defer func() { cancel(); <-done }()
			var lat []time.Duration
			i := 0
			for b.Loop() {
				i++
				t0 := time.Now()
				_, err := ex.Generate(ctx, itec.GenerateTask{ID: "o/" + strconv.Itoa(i), Member: itec.Member{Name: "e", Ref: "echo"}, Prompt: "p", Seeds: []uint64{uint64(i)}})
				if err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "median-µs/task")
		})
	}
}

// BenchmarkWorkers samples a TinyLM committee member's responses (a
// CPU-bound generation workload) through worker processes of the
// posttrain-worker command, one task at a time each: compare procs=2 with
// procs=1 for the scaling (bench/jetstream.sh prints the ratio). Each
// response is JETSTREAM_BENCH_LEN tokens (default 48, about 2 ms of
// sampling): the shorter the task, the larger the coordinator's share.
func BenchmarkWorkers(b *testing.B) {
	bin := workerCommand(b)
	length := "48"
	if v := os.Getenv("JETSTREAM_BENCH_LEN"); v != "" {
		if n, err := strconv.Atoi(v); err != nil || n < 1 {
			b.Fatalf("JETSTREAM_BENCH_LEN=%q: want a positive token count", v)
		}
		length = v
	}
	_, path := tinyModel(b, 11, 128)
	for _, procs := range []int{1, 2} {
		b.Run(fmt.Sprintf("procs=%d", procs), func(b *testing.B) {
			s, err := StartServer(ServerConfig{Dir: b.TempDir(), Listen: "127.0.0.1:0"})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Shutdown()
			nc, err := s.Connect() // the coordinator beside its server, as Dial connects
			if err != nil {
				b.Fatal(err)
			}
			defer nc.Close()
			run := "scale" + strconv.Itoa(procs)
			var pids []int
			ex, err := Open(context.Background(), nc, Options{Run: run})
			if err != nil {
				b.Fatal(err)
			}
			defer ex.Close()
			for p := range procs {
				cmd := exec.Command(bin, "-url", s.URL(), "-run", run, "-concurrency", "1", "-len", length, "-name", "p"+strconv.Itoa(p))
				cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
				if err := cmd.Start(); err != nil {
					b.Fatal(err)
				}
				pids = append(pids, cmd.Process.Pid)
				defer func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }()
			}
			member := []itec.Member{{Name: "tiny", Ref: path, Model: echoGen{}}} // Model is for the in-process check only
			prompts := make([]string, 16)
			for i := range prompts {
				prompts[i] = fmt.Sprintf("prompt %d: ", i)
			}
			round := 0
			warm := func() { // load the checkpoint on every worker first
				round++
				if _, err := itec.Collect(context.Background(), member, prompts[:2*procs], itec.SampleOptions{N: 1, Workers: 2 * procs, Round: round, Executor: ex}); err != nil {
					b.Fatal(err)
				}
			}
			warm()
			workers0, self0 := cpu(pids...), cpu(os.Getpid())
			b.ResetTimer()
			for b.Loop() {
				round++
				if _, err := itec.Collect(context.Background(), member, prompts, itec.SampleOptions{N: 4, Workers: 2 * procs, Round: round, Executor: ex}); err != nil {
					b.Fatal(err)
				}
			}
			samples := float64(b.N * len(prompts) * 4)
			b.ReportMetric(samples/b.Elapsed().Seconds(), "samples/s")
			// CPU time per sample, of the workers and of this process (the
			// coordinator and the server): on a loaded machine wall-clock
			// speed-up measures CPU shares, these do not.
			if w, c := cpu(pids...)-workers0, cpu(os.Getpid())-self0; w > 0 {
				b.ReportMetric(w.Seconds()*1e3/samples, "worker-cpu-ms/sample")
				b.ReportMetric(c.Seconds()*1e3/samples, "coord-cpu-ms/sample")
			}
		})
	}
}

// cpu is the user and system time so far of processes, from /proc; 0 where
// that cannot be read.
func cpu(pids ...int) time.Duration {
	var ticks int64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return 0
		}
		// Fields after the command name, which is in parentheses: utime
		// and stime are the 12th and 13th.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) < 13 {
			return 0
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += u + s
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ
}

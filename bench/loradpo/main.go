// Command loradpo times one DPO step with LoRA through package recipe —
// reference forward with the adapters off, policy forward, policy
// backward, AdamW on the adapters — on a model of SmolLM2-135M's shape
// with random weights, and reports the peak resident memory against the
// model's float32 size. bench/loradpo_compare.sh runs it next to the
// PyTorch eager anchor doing the same math; with -bf16 the frozen base is
// held in bfloat16, and bench/bf16_compare.sh times the two bases.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/posttrain/posttrain/prefopt"
	"github.com/posttrain/posttrain/recipe"
	"github.com/posttrain/posttrain/tensor"
	"github.com/posttrain/posttrain/tensor/nn"
)

// SmolLM2 is SmolLM2-135M's config.json as nn.Config.
var SmolLM2 = nn.Config{Vocab: 49152, DModel: 576, Layers: 30, Heads: 9, KVHeads: 3, Context: 2048, Hidden: 1536,
	Eps: 1e-5, RoPE: 100000, Tied: true}

func main() {
	pairs := flag.Int("pairs", 4, "preference pairs per step")
	batch := flag.Int("batch", 1, "pairs per micro-batch (the step accumulates pairs/batch of them: the same gradient)")
	prompt := flag.Int("prompt", 128, "prompt tokens per sequence")
	comp := flag.Int("completion", 128, "completion tokens per sequence")
	rank := flag.Int("rank", 16, "LoRA rank")
	steps := flag.Int("steps", 3, "timed steps (after one warmup step)")
	quick := flag.Bool("quick", false, "a small model, for smoke tests")
	recompute := flag.Bool("recompute", false, "gradient checkpointing (recipe.Config.Recompute)")
	unfused := flag.Bool("unfused", false, "form the completion positions' logits whole (recipe.Config.Unfused) instead of the fused LM head")
	bf16 := flag.Bool("bf16", false, "hold the frozen base in bfloat16 (Model.FreezeBF16) before adding the adapters")
	tier := flag.String("tier", "", "pin the kernel tier (tensor.SetTier), e.g. avx512bf16; empty keeps the CPU's default")
	memstats := flag.Bool("memstats", false, "print the Go heap and the resident set after every step (stderr)")
	memprof := flag.String("memprofile", "", "write a heap profile (live and allocated) after training to this file")
	flag.Parse()
	if *tier != "" {
		if _, err := tensor.SetTier(*tier); err != nil {
			log.Fatal(err)
		}
	}
	cfg := SmolLM2
	if *quick {
		cfg = nn.Config{Vocab: 512, DModel: 64, Layers: 2, Heads: 4, KVHeads: 2, Context: 256, Hidden: 128, Tied: true}
	}
	m, err := nn.NewModel(cfg, 1)
	if err != nil {
		log.Fatal(err)
	}
	if *bf16 {
		if err := m.FreezeBF16(); err != nil {
			log.Fatal(err)
		}
	}
	if _, err := m.AddLoRA(nn.LoRAConfig{Rank: *rank, Alpha: 2 * float64(*rank), Targets: []string{"q", "k", "v", "o"}}, 2); err != nil {
		log.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	seq := func(n int) []int32 {
		s := make([]int32, n)
		for i := range s {
			s[i] = int32(rng.IntN(cfg.Vocab))
		}
		return s
	}
	data := make([]recipe.Pair, *pairs)
	for i := range data {
		data[i] = recipe.Pair{Prompt: seq(*prompt), Chosen: seq(*comp), Rejected: seq(*comp)}
	}
	runtime.GC()
	debug.FreeOSMemory()
	// Building the model costs a gradient buffer per parameter until
	// AddLoRA freezes the base; reset the high-water mark so the training
	// peak is seen on its own too.
	os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	start := peakRSS()
	p := &recipe.Preference{Policy: m, Objective: prefopt.DPO{Beta: 0.1},
		Config: recipe.Config{Steps: 1 + *steps, Batch: *batch, Accum: *pairs / *batch, LR: 1e-4, ClipNorm: 1, Recompute: *recompute, Unfused: *unfused}}
	var times, cpus []time.Duration
	var final recipe.Record
	last, lastCPU := time.Now(), cpuTime()
	p.Config.Callback = func(r recipe.Record) {
		times = append(times, time.Since(last))
		cpus = append(cpus, cpuTime()-lastCPU)
		final = r
		if *memstats {
			printMem(r.Step)
		}
		if *memprof != "" && r.Step == 1 {
			writeHeap(*memprof + ".1") // what the later steps allocate is the difference
		}
		last, lastCPU = time.Now(), cpuTime() // the step's time leaves out the callback's
	}
	if _, err := p.Train(context.Background(), data, nil); err != nil {
		log.Fatal(err)
	}
	if *memprof != "" {
		writeHeap(*memprof)
	}
	best, bestCPU := times[1], cpus[1]
	for i, t := range times[1:] {
		best, bestCPU = min(best, t), min(bestCPU, cpus[1+i])
	}
	specs, err := cfg.Specs() // the whole model, whatever the base is held in
	if err != nil {
		log.Fatal(err)
	}
	elems := 0
	for _, s := range specs {
		n := 1
		for _, d := range s.Shape {
			n *= d
		}
		elems += n
	}
	model := float64(4*elems) / (1 << 20)
	hwm := peakRSS()
	fmt.Printf("go tier %s bf16_base %v\n", tensor.Tier(), *bf16)
	fmt.Printf("go step_ms %.1f\n", float64(best.Microseconds())/1e3)
	// On a loaded machine the wall time says little; the process's CPU
	// time per step (user + system, all threads) says more.
	fmt.Printf("go step_cpu_ms %.1f\n", float64(bestCPU.Microseconds())/1e3)
	// The last step's figures, to compare the bases: the loss and the
	// policy's mean log-prob of the chosen completions.
	fmt.Printf("go last_loss %.7g\n", final.Metrics["loss"])
	fmt.Printf("go last_logps_chosen %.7g\n", final.Metrics["logps/chosen"])
	fmt.Printf("go rss_before_training_mib %.0f\n", start)
	fmt.Printf("go training_peak_rss_mib %.0f\n", hwm)
	fmt.Printf("go model_f32_mib %.0f\n", model)
	fmt.Printf("go training_rss_ratio %.2f\n", hwm/model)
}

// peakRSS returns VmHWM from /proc/self/status in MiB (0 elsewhere).
func peakRSS() float64 { return status("VmHWM:") }

// status returns a field of /proc/self/status in MiB (0 elsewhere).
func status(field string) float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == field {
			var kb float64
			fmt.Sscan(f[1], &kb)
			return kb / 1024
		}
	}
	return 0
}

// printMem prints the step's Go heap figures (runtime/metrics) and the
// process's resident set, to see where the bytes go.
func printMem(step int) {
	names := []string{"/gc/heap/live:bytes", "/memory/classes/heap/objects:bytes", "/memory/classes/heap/unused:bytes",
		"/memory/classes/heap/free:bytes", "/memory/classes/heap/released:bytes", "/gc/heap/goal:bytes", "/gc/cycles/total:gc-cycles"}
	ss := make([]metrics.Sample, len(names))
	for i, n := range names {
		ss[i].Name = n
	}
	metrics.Read(ss)
	fmt.Fprintf(os.Stderr, "step %d:", step)
	for _, s := range ss {
		v := s.Value.Uint64()
		if strings.HasSuffix(s.Name, "bytes") {
			fmt.Fprintf(os.Stderr, " %s=%.0fMiB", strings.TrimSuffix(s.Name, ":bytes"), float64(v)/(1<<20))
		} else {
			fmt.Fprintf(os.Stderr, " %s=%d", s.Name, v)
		}
	}
	fmt.Fprintf(os.Stderr, " VmRSS=%.0fMiB VmHWM=%.0fMiB\n", status("VmRSS:"), status("VmHWM:"))
}

// writeHeap writes a heap profile to file.
func writeHeap(file string) {
	runtime.GC() // the profile shows allocations as of the last completed collection
	f, err := os.Create(file)
	if err != nil {
		log.Fatal(err)
	}
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		log.Fatal(err)
	}
	if err := f.Close(); err != nil {
		log.Fatal(err)
	}
}

// cpuTime returns the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

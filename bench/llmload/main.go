// Command llmload measures loading a Hugging Face checkpoint and
// generating from it: load time, peak resident memory and greedy decoding
// speed. With -make it first writes a checkpoint of random weights at a
// real model's shape, so that no download is needed.
//
//	go run ./bench/llmload -make -shape qwen2.5-0.5b -dtype BF16 -dir /tmp/qwen
//	go run ./bench/llmload -dir /tmp/qwen -prompt 64 -new 32
//	go run ./bench/llmload -train 3 -shape smollm2-135m
//
// Peak memory is the process's VmHWM, so run the load in its own process
// (the second command), not after -make.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"github.com/posttrain/posttrain/tensor/autograd"
	"github.com/posttrain/posttrain/tensor/nn"
	"github.com/posttrain/posttrain/tensor/nn/hf"
)

var shapes = map[string]nn.Config{
	"qwen2.5-0.5b": {Vocab: 151936, DModel: 896, Layers: 24, Heads: 14, KVHeads: 2, Hidden: 4864, Context: 32768,
		Eps: 1e-6, RoPE: 1e6, QKVBias: true, Tied: true, EOS: []int32{151643}},
	"smollm2-135m": {Vocab: 49152, DModel: 576, Layers: 30, Heads: 9, KVHeads: 3, Hidden: 1536, Context: 8192,
		Eps: 1e-5, RoPE: 100000, Tied: true, EOS: []int32{0}},
}

func main() {
	dir := flag.String("dir", "", "checkpoint directory")
	mk := flag.Bool("make", false, "write a random checkpoint of -shape to -dir and exit")
	shape := flag.String("shape", "qwen2.5-0.5b", "model shape for -make: qwen2.5-0.5b or smollm2-135m")
	dtype := flag.String("dtype", "BF16", "stored dtype for -make: F32, BF16 or F16")
	prompt := flag.Int("prompt", 64, "prompt tokens")
	n := flag.Int("new", 32, "tokens to generate")
	batch := flag.Int("batch", 1, "sequences decoded together")
	hold := flag.String("hold", "F32", "dtype the loaded model holds its matrices in: F32, or BF16 (frozen, inference only)")
	train := flag.Int("train", 0, "instead of loading, time this many training steps (fwd+bwd+AdamW, 4 x 256 tokens) at -shape")
	flag.Parse()
	if *train > 0 {
		trainSteps(shapes[*shape], *train)
		return
	}
	if *dir == "" {
		log.Fatal("llmload: -dir is required")
	}
	if *mk {
		cfg, ok := shapes[*shape]
		if !ok {
			log.Fatalf("llmload: unknown shape %q", *shape)
		}
		m, err := nn.NewModel(cfg, 1)
		if err != nil {
			log.Fatal(err)
		}
		if err := hf.SaveModelWith(m, *dir, hf.SaveOptions{Dtype: *dtype}); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("wrote %s (%s, %.0fM parameters, %s)\n", *dir, *shape, float64(m.NumParams())/1e6, *dtype)
		return
	}
	t0 := time.Now()
	m, err := hf.LoadModelWith(*dir, hf.LoadOptions{Dtype: *hold})
	if err != nil {
		log.Fatal(err)
	}
	load := time.Since(t0)
	hwm := peakRSS()
	specs, _ := m.Config.Specs() // NumParams leaves out a frozen model's matrices
	params := 0
	for _, s := range specs {
		n := 1
		for _, d := range s.Shape {
			n *= d
		}
		params += n
	}
	fmt.Printf("load %.2fs (%s), peak RSS %.0f MiB (float32 weights %.0f MiB), %.0fM parameters, %.0f MB read per step\n",
		load.Seconds(), *hold, hwm, float64(4*params)/(1<<20), float64(params)/1e6, float64(m.WeightBytes())/1e6)
	prompts := make([][]int32, *batch)
	ss := make([]*nn.Sampler, *batch)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range prompts {
		for range *prompt {
			prompts[i] = append(prompts[i], int32(rng.IntN(m.Config.Vocab)))
		}
		ss[i] = nn.NewSampler(uint64(i), 0, 0, 0)
	}
	m.Config.EOS = nil // random weights: time all n tokens
	t0 = time.Now()
	d := m.NewBatchDecoder(*batch)
	for i, p := range prompts {
		if _, err := d.Prefill(i, p); err != nil {
			log.Fatal(err)
		}
	}
	pre := time.Since(t0)
	t0, c0 := time.Now(), cpuSeconds()
	out, err := m.GenerateBatch(prompts, *n, ss)
	if err != nil {
		log.Fatal(err)
	}
	gen, cpu := time.Since(t0), cpuSeconds()-c0
	tokens := 0
	for _, o := range out {
		tokens += len(o)
	}
	fmt.Printf("prefill %d x %d tokens %.2fs; generate %d new tokens (batch %d) %.2fs including prefill: %.1f tokens/s (%.1f per CPU-second), %.1f tokens/s after prefill\n",
		*batch, *prompt, pre.Seconds(), tokens, *batch, gen.Seconds(), float64(tokens)/gen.Seconds(), float64(tokens)/cpu, float64(tokens)/(gen-pre).Seconds())
	fmt.Printf("peak RSS after generation %.0f MiB\n", peakRSS())
}

// trainSteps times n training steps on 4 sequences of 256 tokens, after
// one warm-up step, in wall time and in CPU time (which a loaded machine
// inflates less).
func trainSteps(cfg nn.Config, n int) {
	const batch, tt = 4, 256
	cfg.Context = tt
	m, err := nn.NewModel(cfg, 1)
	if err != nil {
		log.Fatal(err)
	}
	opt := nn.NewAdamW(m.Params(), 1e-4)
	rng := rand.New(rand.NewPCG(3, 4))
	in, tg := make([]int32, batch*tt), make([]int32, batch*tt)
	for i := range in {
		in[i], tg[i] = int32(rng.IntN(cfg.Vocab)), int32(rng.IntN(cfg.Vocab))
	}
	tp := autograd.NewTape()
	step := func() {
		tp.Reset()
		m.ZeroGrad()
		logits, err := m.Forward(tp, in, batch)
		if err != nil {
			log.Fatal(err)
		}
		loss, err := tp.CrossEntropy(logits, tg)
		if err != nil {
			log.Fatal(err)
		}
		tp.Backward(loss, nil)
		if _, err := opt.Step(); err != nil {
			log.Fatal(err)
		}
	}
	step()
	t0, c0 := time.Now(), cpuSeconds()
	for range n {
		step()
	}
	wall, cpu := time.Since(t0).Seconds(), cpuSeconds()-c0
	tokens := float64(batch * tt * n)
	fmt.Printf("train step %dx%d: %.1f tokens/s, %.1f tokens per CPU-second (%d steps, %.1fs wall, %.1fs CPU)\n",
		batch, tt, tokens/wall, tokens/cpu, n, wall, cpu)
}

// cpuSeconds returns the process's user + system CPU time from
// /proc/self/stat, or 0 where /proc is missing.
func cpuSeconds() float64 {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	var u, k float64
	fmt.Sscan(f[11], &u)
	fmt.Sscan(f[12], &k)
	return (u + k) / 100 // clock ticks; USER_HZ is 100 on Linux
}

// peakRSS returns the process's peak resident set (VmHWM) in MiB, or 0
// where /proc is missing.
func peakRSS() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			var kb float64
			fmt.Sscanf(strings.TrimSpace(v), "%f", &kb)
			return kb / 1024
		}
	}
	return 0
}

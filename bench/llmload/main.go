// Command llmload measures loading a Hugging Face checkpoint and
// generating from it: load time, peak resident memory and greedy decoding
// speed. With -make it first writes a checkpoint of random weights at a
// real model's shape, so that no download is needed.
//
//	go run ./bench/llmload -make -shape qwen2.5-0.5b -dtype BF16 -dir /tmp/qwen
//	go run ./bench/llmload -dir /tmp/qwen -prompt 64 -new 32
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
	flag.Parse()
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
	m, err := hf.LoadModel(*dir)
	if err != nil {
		log.Fatal(err)
	}
	load := time.Since(t0)
	hwm := peakRSS()
	f32 := float64(4*m.NumParams()) / (1 << 20)
	fmt.Printf("load %.2fs, peak RSS %.0f MiB (float32 weights %.0f MiB), %.0fM parameters\n", load.Seconds(), hwm, f32, float64(m.NumParams())/1e6)
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
	t0 = time.Now()
	out, err := m.GenerateBatch(prompts, *n, ss)
	if err != nil {
		log.Fatal(err)
	}
	gen := time.Since(t0)
	tokens := 0
	for _, o := range out {
		tokens += len(o)
	}
	fmt.Printf("prefill %d x %d tokens %.2fs; generate %d new tokens (batch %d) %.2fs including prefill: %.1f tokens/s, %.1f tokens/s after prefill\n",
		*batch, *prompt, pre.Seconds(), tokens, *batch, gen.Seconds(), float64(tokens)/gen.Seconds(), float64(tokens)/(gen-pre).Seconds())
	fmt.Printf("peak RSS after generation %.0f MiB\n", peakRSS())
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

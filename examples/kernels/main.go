// Command kernels is a tour of posttrain's tensor kernels: which SIMD tier
// this CPU runs, how fast each tier is against the portable Go twin on a
// vocabulary-sized row, and what the numerics promise, shown on the
// stress input of the distillation losses (logits of magnitude 1e4).
//
//	go run ./examples/kernels          # 49,152-element rows, 1 s per kernel
//	go run ./examples/kernels -quick   # a few milliseconds per kernel
package main

import (
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"text/tabwriter"
	"time"

	"github.com/posttrain/posttrain/tensor"
)

func main() {
	quick := flag.Bool("quick", false, "time each kernel briefly (for CI)")
	n := flag.Int("n", 49152, "row length (AFM's on-device vocabulary is 49,152)")
	seed := flag.Uint64("seed", 1, "random seed for the data")
	flag.Parse()
	if *n <= 0 {
		fmt.Fprintln(os.Stderr, "kernels: -n must be positive")
		os.Exit(2)
	}
	budget := time.Second
	if *quick {
		budget = 20 * time.Millisecond
	}

	fmt.Printf("kernel tier in use: %s (available: %v)\n\n", tensor.Tier(), tensor.Tiers())
	speedTable(*n, *seed, budget)
	fmt.Println()
	stressDemo(*seed)
}

type kernel struct {
	name  string
	bytes int // bytes read and written per element
	run   func()
}

func speedTable(n int, seed uint64, budget time.Duration) {
	r := rand.New(rand.NewPCG(seed, 0))
	x, y, dst := make([]float32, n), make([]float32, n), make([]float32, n)
	for i := range x {
		x[i] = float32(3 * r.NormFloat64())
		y[i] = float32(r.NormFloat64())
	}
	h := make([]uint16, n)
	idx, val := make([]int, 32), make([]float32, 32)
	kernels := []kernel{
		{"Dot", 8, func() { tensor.Dot(x, y) }},
		{"Axpy", 12, func() { tensor.Axpy(1e-3, x, y) }},
		{"Sum", 4, func() { tensor.Sum(x) }},
		{"ArgMax", 4, func() { tensor.ArgMax(x) }},
		{"Exp", 8, func() { tensor.Exp(dst, x) }},
		{"Log", 8, func() { tensor.Log(dst, y) }},
		{"LogSumExp", 4, func() { tensor.LogSumExp(x) }},
		{"LogSoftmax", 12, func() { tensor.LogSoftmax(dst, x) }},
		{"TopK(32)", 4, func() { tensor.TopKTo(idx, val, x) }},
		{"ToBF16", 6, func() { tensor.ToBF16(h, x) }},
	}
	tiers := tensor.Tiers()
	best := tensor.Tier()
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "kernel (n=%d)\t", n)
	for _, t := range tiers {
		fmt.Fprintf(w, "%s GB/s\t", t)
	}
	fmt.Fprintf(w, "%s vs generic\t\n", best)
	for _, k := range kernels {
		fmt.Fprintf(w, "%s\t", k.name)
		rate := map[string]float64{}
		for _, t := range tiers {
			if _, err := tensor.SetTier(t); err != nil {
				panic(err) // Tiers listed it
			}
			rate[t] = throughput(k, n, budget)
			fmt.Fprintf(w, "%.1f\t", rate[t])
		}
		fmt.Fprintf(w, "%.1fx\t\n", rate[best]/rate["generic"])
	}
	if _, err := tensor.SetTier(best); err != nil {
		panic(err)
	}
	w.Flush()
}

// throughput runs k for about budget and returns GB/s.
func throughput(k kernel, n int, budget time.Duration) float64 {
	k.run() // warm caches
	calls := 0
	start := time.Now()
	for time.Since(start) < budget || calls == 0 {
		k.run()
		calls++
	}
	sec := time.Since(start).Seconds()
	return float64(calls) * float64(k.bytes*n) / sec / 1e9
}

// stressDemo shows why LogSoftmax subtracts the max before exponentiating:
// on logits of magnitude 1e4, exp overflows float32 at 88.7.
func stressDemo(seed uint64) {
	r := rand.New(rand.NewPCG(seed, 1))
	x := make([]float32, 8)
	for i := range x {
		x[i] = float32(1e4 * r.NormFloat64())
	}
	naive := make([]float32, len(x))
	tensor.Exp(naive, x)
	var sum float32
	for _, v := range naive {
		sum += v
	}
	lp := make([]float32, len(x))
	tensor.LogSoftmax(lp, x)
	top := tensor.ArgMax(x)
	fmt.Println("logits of magnitude 1e4 (the stress input of the losses):")
	fmt.Printf("  naive   log(exp(x)/Σexp) at the max: log(%v/%v) = %v\n", naive[top], sum, math.Log(float64(naive[top]/sum)))
	fmt.Printf("  tensor.LogSoftmax at the max:        %v\n", lp[top])
	fmt.Printf("  tensor.LogSumExp:                    %v (max logit %v)\n", tensor.LogSumExp(x), x[top])
}

package prefopt

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/posttrain/posttrain/tensor"
)

// BenchmarkFusedTokenLogProbs is one training step's log-prob work from an
// LM head of N tokens, width H and vocabulary V: Fused.TokenLogProbs, then
// Fused.TokenLogProbsBackward (four GEMMs: the backward forms the logits
// again). BenchmarkUnfusedTokenLogProbs is the
// same on materialized logits (three GEMMs, [N, V] of logits). GFLOPS are
// over the three GEMMs' 6·N·H·V FLOPs in both, so they compare directly.
// FUSED_BENCH=N,H,V adds a size (heavy: use -benchtime 1x).
//
//	go test -run '^$' -bench 'TokenLogProbs$' -benchtime 1x ./prefopt/
func BenchmarkFusedTokenLogProbs(b *testing.B) {
	benchHead(b, func(s Head, labels []int32, dlogp []float32, g HeadGrad) func() {
		var f Fused
		logp := make([]float32, len(labels))
		return func() {
			if err := f.TokenLogProbs(context.Background(), logp, s, labels); err != nil {
				b.Fatal(err)
			}
			if err := f.TokenLogProbsBackward(context.Background(), g, s, labels, dlogp); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkUnfusedTokenLogProbs(b *testing.B) {
	benchHead(b, func(s Head, labels []int32, dlogp []float32, g HeadGrad) func() {
		logp, lse := make([]float32, len(labels)), make([]float64, len(labels))
		return func() {
			z := tensor.New(s.H.Dim(0), s.W.Dim(0))
			tensor.Gemm(false, true, 1, s.H, s.W, 0, z)
			if err := TokenLogProbsLSE(logp, lse, z, labels); err != nil {
				b.Fatal(err)
			}
			if err := TokenLogProbsBackwardLSE(z, z, labels, dlogp, lse); err != nil {
				b.Fatal(err)
			}
			tensor.Gemm(false, false, 1, z, s.W, 0, g.H)
			tensor.Gemm(true, false, 1, z, s.H, 1, g.W)
		}
	})
}

func benchHead(b *testing.B, setup func(s Head, labels []int32, dlogp []float32, g HeadGrad) func()) {
	sizes := [][3]int{{512, 256, 8192}}
	if e := os.Getenv("FUSED_BENCH"); e != "" {
		var sz [3]int
		if _, err := fmt.Sscanf(e, "%d,%d,%d", &sz[0], &sz[1], &sz[2]); err != nil {
			b.Fatalf("FUSED_BENCH=%q: want N,H,V", e)
		}
		sizes = append(sizes, sz)
	}
	for _, sz := range sizes {
		n, h, v := sz[0], sz[1], sz[2]
		b.Run(fmt.Sprintf("%dx%dx%d", n, h, v), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 2))
			s := Head{H: randLogits(rng, n, h, 1), W: randLogits(rng, v, h, 3/math.Sqrt(float64(h)))}
			labels, dlogp := make([]int32, n), make([]float32, n)
			for i := range labels {
				labels[i], dlogp[i] = int32(rng.IntN(v)), -1/float32(n)
			}
			call := setup(s, labels, dlogp, HeadGrad{H: tensor.New(n, h), W: tensor.New(v, h)})
			for b.Loop() {
				call()
			}
			b.ReportMetric(6*float64(n*h)*float64(v)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOPS")
		})
	}
}

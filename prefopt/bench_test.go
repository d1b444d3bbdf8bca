package prefopt

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/posttrain/posttrain/tensor"
)

// BenchmarkTokenLogProbs measures the forward pass, the fused backward and
// both together (what one training step needs) on logits [N, V]. Bytes are
// the logits' size, so MB/s is logit bytes processed per second.
//
//	go test -run '^$' -bench 'TokenLogProbs/.*4096x49152' -benchtime 10x ./prefopt
//
// compares with PyTorch's log_softmax + gather + backward (bench/compare.sh).
func BenchmarkTokenLogProbs(b *testing.B) {
	for _, s := range []struct{ n, v int }{{512, 32000}, {4096, 49152}} {
		if testing.Short() && s.n*s.v > 1<<25 {
			continue
		}
		rng := rand.New(rand.NewPCG(1, 1))
		logits := tensor.New(s.n, s.v)
		for i := range logits.Data() {
			logits.Data()[i] = float32(3 * rng.NormFloat64())
		}
		targets := make([]int32, s.n)
		dl := make([]float32, s.n)
		for i := range targets {
			targets[i] = int32(rng.IntN(s.v))
			dl[i] = -1 / float32(s.n)
		}
		lp := make([]float32, s.n)
		grad := tensor.New(s.n, s.v)
		copy(grad.Data(), logits.Data()) // fault the pages in before timing
		name := fmt.Sprintf("%dx%d", s.n, s.v)
		bytes := int64(s.n) * int64(s.v) * 4
		b.Run("forward/"+name, func(b *testing.B) {
			b.SetBytes(bytes)
			for b.Loop() {
				if err := TokenLogProbs(lp, logits, targets); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("backward/"+name, func(b *testing.B) {
			b.SetBytes(bytes)
			for b.Loop() {
				if err := TokenLogProbsBackward(grad, logits, targets, dl); err != nil {
					b.Fatal(err)
				}
			}
		})
		lse := make([]float64, s.n)
		b.Run("both-lse/"+name, func(b *testing.B) {
			b.SetBytes(bytes)
			for b.Loop() {
				if err := TokenLogProbsLSE(lp, lse, logits, targets); err != nil {
					b.Fatal(err)
				}
				if err := TokenLogProbsBackwardLSE(grad, logits, targets, dl, lse); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("both/"+name, func(b *testing.B) {
			b.SetBytes(bytes)
			for b.Loop() {
				if err := TokenLogProbs(lp, logits, targets); err != nil {
					b.Fatal(err)
				}
				if err := TokenLogProbsBackward(grad, logits, targets, dl); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkReader reads preference JSONL of pairs with responses of about
// the given length; MB/s is input bytes per second.
func BenchmarkReader(b *testing.B) {
	for _, n := range []int{64, 4096} {
		var buf bytes.Buffer
		w := NewWriter(&buf)
		resp := strings.Repeat("lorem ipsum, \"dolor\" sit ämet ", n/30+1)[:n]
		for i := range 1000 {
			w.Write(Pair{Prompt: fmt.Sprintf("prompt %d", i), Chosen: resp, Rejected: resp + "!", Level: Better})
		}
		in := buf.Bytes()
		b.Run(fmt.Sprintf("response=%d", n), func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				r := NewReader(bytes.NewReader(in))
				for {
					if _, err := r.Next(); err != nil {
						if err != io.EOF {
							b.Fatal(err)
						}
						break
					}
				}
			}
		})
	}
}

package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/posttrain/posttrain/tensor"
)

// Sampler draws the next token from logits: greedy at Temperature 0,
// otherwise from softmax(logits/Temperature) restricted to the TopK most
// likely tokens (0: all) and then to the smallest set whose probability
// reaches TopP (nucleus sampling, Holtzman et al. 2020; 0 or 1: all).
// Draws are reproducible for a seed.
type Sampler struct {
	Temperature float64
	TopK        int
	TopP        float64
	// Mask, when set, edits the logits in place before each draw — say,
	// setting forbidden tokens to −Inf (constrained decoding, a grammar,
	// banned words) — so every generation loop that draws through the
	// sampler honours it. It must not keep the slice.
	Mask func(logits []float32)

	rng  *rand.Rand
	idx  []int
	val  []float32
	prob []float64
}

// NewSampler returns a sampler whose draws follow seed.
func NewSampler(seed uint64, temperature float64, topK int, topP float64) *Sampler {
	return &Sampler{Temperature: temperature, TopK: topK, TopP: topP, rng: rand.New(rand.NewPCG(seed, 0x5a3d))}
}

// Sample returns a token id. It returns an error if the settings are
// invalid or the logits hold NaN or +Inf (−Inf masks a token out), after
// Mask. With Mask set, the logits are edited in place.
func (s *Sampler) Sample(logits []float32) (int32, error) {
	if len(logits) == 0 {
		return 0, fmt.Errorf("nn: Sampler: no logits")
	}
	if s.Mask != nil {
		s.Mask(logits)
	}
	if s.Temperature < 0 || s.TopK < 0 || s.TopP < 0 || s.TopP > 1 || math.IsNaN(s.Temperature) || math.IsNaN(s.TopP) {
		return 0, fmt.Errorf("nn: Sampler: bad settings temperature %v, top-k %d, top-p %v", s.Temperature, s.TopK, s.TopP)
	}
	if i := slices.IndexFunc(logits, func(x float32) bool { return x != x || x > math.MaxFloat32 }); i >= 0 {
		return 0, fmt.Errorf("nn: Sampler: logit %d is %v", i, logits[i])
	}
	if tensor.Max(logits) < -math.MaxFloat32 {
		return 0, fmt.Errorf("nn: Sampler: every logit is -Inf")
	}
	if s.Temperature == 0 {
		return int32(tensor.ArgMax(logits)), nil
	}
	k := len(logits)
	if s.TopK > 0 {
		k = min(k, s.TopK)
	}
	if cap(s.idx) < k {
		s.idx, s.val, s.prob = make([]int, k), make([]float32, k), make([]float64, k)
	}
	idx, val, prob := s.idx[:k], s.val[:k], s.prob[:k]
	nucleus := s.TopP > 0 && s.TopP < 1
	switch {
	case k < len(logits):
		tensor.TopKTo(idx, val, logits) // descending, ties by lower index
	default:
		// The whole vocabulary: sort only if the nucleus needs the order,
		// in O(V log V) rather than TopKTo's insertion.
		for i := range idx {
			idx[i] = i
		}
		if nucleus {
			slices.SortStableFunc(idx, func(a, b int) int {
				switch {
				case logits[a] > logits[b]:
					return -1
				case logits[a] < logits[b]:
					return 1
				}
				return 0
			})
		}
		for i, j := range idx {
			val[i] = logits[j]
		}
	}
	top := float64(tensor.Max(val))
	var z float64
	for i, v := range val {
		prob[i] = math.Exp((float64(v) - top) / s.Temperature)
		z += prob[i]
	}
	if nucleus {
		var c float64
		for i := range prob {
			c += prob[i] / z
			if c >= s.TopP {
				k = i + 1
				break
			}
		}
		z = 0
		for _, p := range prob[:k] {
			z += p
		}
	}
	u := s.rng.Float64() * z
	for i, p := range prob[:k] {
		if u -= p; u < 0 {
			return int32(idx[i]), nil
		}
	}
	return int32(idx[k-1]), nil
}

package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/posttrain/posttrain/tensor"
)

// Decoder runs a TinyLM one token at a time, keeping each layer's keys
// and values (the KV cache) so that token n costs O(n) rather than a
// forward pass over all n. It computes the same function as
// TinyLM.Forward on the sequence so far, without a tape.
//
// A Decoder holds its own buffers and is not safe for concurrent use, but
// several Decoders of one model may run in parallel goroutines (say, k
// samples per prompt): they only read the weights, which must not change
// while they decode.
type Decoder struct {
	m                            *TinyLM
	pos                          int
	k                            [][]float32 // per layer [Heads, Context, Dh]
	v                            [][]float32
	x, n, q, kk, vv, o, att, tmp []float32
	gate, up, logits             []float32
}

// NewDecoder returns a decoder at position 0.
func (m *TinyLM) NewDecoder() *Decoder {
	c := m.Config
	d := &Decoder{m: m}
	for range c.Layers {
		d.k = append(d.k, make([]float32, c.Context*c.DModel))
		d.v = append(d.v, make([]float32, c.Context*c.DModel))
	}
	mk := func(n int) []float32 { return make([]float32, n) }
	d.x, d.n, d.q, d.kk, d.vv, d.o, d.tmp = mk(c.DModel), mk(c.DModel), mk(c.DModel), mk(c.DModel), mk(c.DModel), mk(c.DModel), mk(c.DModel)
	d.att = mk(c.Context)
	d.gate, d.up = mk(c.Hidden), mk(c.Hidden)
	d.logits = mk(c.Vocab)
	return d
}

// Pos returns the number of tokens consumed.
func (d *Decoder) Pos() int { return d.pos }

// Reset rewinds the decoder to position 0.
func (d *Decoder) Reset() { d.pos = 0 }

// linear computes y = W·x for W [out, in] through tensor.Gemm.
func linear(y []float32, w *tensor.Dense, x []float32) {
	tensor.Gemm(false, true, 1, tensor.FromSlice(x, 1, len(x)), w, 0, tensor.FromSlice(y, 1, len(y)))
}

func rmsnorm(dst, x, w []float32, eps float64) {
	r := float32(1 / math.Sqrt(float64(tensor.Dot(x, x))/float64(len(x))+eps))
	tensor.Mul(dst, x, w)
	tensor.Scale(dst, r, dst)
}

// Step feeds token and returns the logits for the next one. The slice is
// the decoder's and is overwritten by the next Step. It returns an error
// for an id outside the vocabulary or when the context is full.
func (d *Decoder) Step(token int32) ([]float32, error) {
	m, c := d.m, d.m.Config
	if token < 0 || int(token) >= c.Vocab {
		return nil, fmt.Errorf("nn: Decoder: token %d outside vocabulary of %d", token, c.Vocab)
	}
	if d.pos >= c.Context {
		return nil, fmt.Errorf("nn: Decoder: context of %d tokens is full", c.Context)
	}
	dm, hs := c.DModel, c.Heads
	dh := dm / hs
	half := dh / 2
	cs := m.cos.Data()[d.pos*half : (d.pos+1)*half]
	sn := m.sin.Data()[d.pos*half : (d.pos+1)*half]
	rot := func(v []float32) {
		for h := range hs {
			x0, x1 := v[h*dh:h*dh+half], v[h*dh+half:(h+1)*dh]
			for i := range half {
				a, b := x0[i], x1[i]
				x0[i] = a*cs[i] - b*sn[i]
				x1[i] = b*cs[i] + a*sn[i]
			}
		}
	}
	copy(d.x, m.Embed.W.Value.Row(int(token)))
	scale := float32(1 / math.Sqrt(float64(dh)))
	for l := range m.Blocks {
		b := &m.Blocks[l]
		rmsnorm(d.n, d.x, b.Norm1.W.Value.Data(), b.Norm1.Eps)
		linear(d.q, b.Attn.Q.W.Value, d.n)
		linear(d.kk, b.Attn.K.W.Value, d.n)
		linear(d.vv, b.Attn.V.W.Value, d.n)
		rot(d.q)
		rot(d.kk)
		kc, vc := d.k[l], d.v[l]
		for h := range hs {
			// cache layout [head][position][dh]
			copy(kc[(h*c.Context+d.pos)*dh:][:dh], d.kk[h*dh:(h+1)*dh])
			copy(vc[(h*c.Context+d.pos)*dh:][:dh], d.vv[h*dh:(h+1)*dh])
			qh := d.q[h*dh : (h+1)*dh]
			att := d.att[:d.pos+1]
			for j := range att {
				att[j] = scale * tensor.Dot(qh, kc[(h*c.Context+j)*dh:][:dh])
			}
			tensor.Softmax(att, att)
			oh := d.o[h*dh : (h+1)*dh]
			clear(oh)
			for j, p := range att {
				tensor.Axpy(p, vc[(h*c.Context+j)*dh:][:dh], oh)
			}
		}
		linear(d.tmp, b.Attn.O.W.Value, d.o)
		tensor.Add(d.x, d.x, d.tmp)
		rmsnorm(d.n, d.x, b.Norm2.W.Value.Data(), b.Norm2.Eps)
		linear(d.gate, b.MLP.Gate.W.Value, d.n)
		linear(d.up, b.MLP.Up.W.Value, d.n)
		for i, g := range d.gate {
			d.gate[i] = g * sigmoid(g) * d.up[i]
		}
		linear(d.tmp, b.MLP.Down.W.Value, d.gate)
		tensor.Add(d.x, d.x, d.tmp)
	}
	rmsnorm(d.n, d.x, m.Norm.W.Value.Data(), m.Norm.Eps)
	linear(d.logits, m.Head.W.Value, d.n)
	d.pos++
	return d.logits, nil
}

func sigmoid(x float32) float32 { return float32(1 / (1 + math.Exp(-float64(x)))) }

// Sampler draws the next token from logits: greedy at Temperature 0,
// otherwise from softmax(logits/Temperature) restricted to the TopK most
// likely tokens (0: all) and then to the smallest set whose probability
// reaches TopP (nucleus sampling, Holtzman et al. 2020; 0 or 1: all).
// Draws are reproducible for a seed.
type Sampler struct {
	Temperature float64
	TopK        int
	TopP        float64

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
// invalid or the logits hold NaN or +Inf (−Inf masks a token out).
func (s *Sampler) Sample(logits []float32) (int32, error) {
	if len(logits) == 0 {
		return 0, fmt.Errorf("nn: Sampler: no logits")
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

// Generate feeds prompt to a fresh decoder and then samples n tokens,
// stopping early when the context is full. It returns the sampled tokens.
func (m *TinyLM) Generate(prompt []int32, n int, s *Sampler) ([]int32, error) {
	if len(prompt) == 0 {
		return nil, fmt.Errorf("nn: Generate: empty prompt")
	}
	if err := m.CheckTokens(prompt); err != nil {
		return nil, err
	}
	d := m.NewDecoder()
	var logits []float32
	var err error
	for _, t := range prompt {
		if logits, err = d.Step(t); err != nil {
			return nil, err
		}
	}
	out := make([]int32, 0, n)
	for len(out) < n {
		next, err := s.Sample(logits)
		if err != nil {
			return out, err
		}
		out = append(out, next)
		if len(out) == n || d.Pos() == m.Config.Context {
			break
		}
		if logits, err = d.Step(next); err != nil {
			return out, err
		}
	}
	return out, nil
}

package nn

// SamplerOptions are a Sampler's settings, by name. The zero value is
// greedy decoding. New settings join this struct, so code that names the
// ones it sets keeps compiling and cannot swap two of them silently, as
// NewSampler's positional arguments can.
type SamplerOptions struct {
	Temperature float64 // 0 is greedy: the argmax, whatever the other settings
	TopK        int     // keep the K most likely tokens; 0 keeps all
	TopP        float64 // keep the smallest set with this much mass (nucleus); 0 or 1 keeps all
	// Mask edits the logits before each draw (Sampler.Mask); nil leaves them.
	Mask func(logits []float32)
}

// NewSamplerWith returns a sampler with o's settings whose draws follow
// seed: NewSampler with named settings.
func NewSamplerWith(seed uint64, o SamplerOptions) *Sampler {
	s := NewSampler(seed, o.Temperature, o.TopK, o.TopP)
	s.Mask = o.Mask
	return s
}

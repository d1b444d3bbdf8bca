package nn

import (
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/posttrain/posttrain/tensor"
)

// Decoder runs a Model a few tokens at a time on one or more sequences,
// keeping each layer's keys and values (the KV cache, sized by the
// key/value heads, not the query heads) so that token n costs O(n)
// rather than a forward pass over all n. It computes the same function
// as Model.Forward on each sequence so far, without a tape.
//
// A prompt enters through Prefill, whose matrix products run over all
// its tokens at once; Step and StepBatch then add one token per
// sequence, reading every weight once for the whole batch. Each
// sequence has its own length and cache, so prompts of different lengths
// need no padding, and a sequence's logits do not depend on the others
// in the batch: batched decoding gives bit for bit what decoding one
// sequence at a time gives.
//
// A Decoder holds its own buffers and is not safe for concurrent use, but
// several Decoders of one model may run in parallel goroutines: they only
// read the weights, which must not change while they decode. Once its
// buffers have grown (see Reserve), a step allocates nothing.
type Decoder struct {
	m     *Model
	seqs  []cache
	jobs  []dotJob
	attn  []attnJob
	tasks []task
	body  taskList

	// scratch, per row
	pos                         []int
	x, n, q, k, v, o, tmp, last []float32
	gate, up, logits, cos, sin  []float32
	e                           []float32 // exp(−gate), SwiGLU's scratch
	maxPos                      int
	one                         [1]int

	jobs16 []dot16Job // dots16's shares, for a frozen model
	split  []float32  // dots16's input rows, split for its kernel
	all    bool       // Prefill keeps every row's logits (Logits)
}

// cache is one sequence's keys and values: per layer [KVHeads, capacity,
// HeadDim], so that one head's keys are contiguous.
type cache struct {
	pos, cap int
	k, v     [][]float32
}

// NewDecoder returns a decoder of one sequence at position 0.
func (m *Model) NewDecoder() *Decoder { return m.NewBatchDecoder(1) }

// NewBatchDecoder returns a decoder of n sequences, all at position 0.
func (m *Model) NewBatchDecoder(n int) *Decoder {
	d := &Decoder{m: m, seqs: make([]cache, max(n, 1))}
	for i := range d.seqs {
		d.seqs[i].k = make([][]float32, m.Config.Layers)
		d.seqs[i].v = make([][]float32, m.Config.Layers)
	}
	w := workers()
	d.jobs, d.attn, d.tasks = make([]dotJob, w), make([]attnJob, w), make([]task, w)
	return d
}

// Len returns the number of sequences.
func (d *Decoder) Len() int { return len(d.seqs) }

// Pos returns the number of tokens sequence 0 has consumed.
func (d *Decoder) Pos() int { return d.seqs[0].pos }

// PosOf returns the number of tokens sequence i has consumed.
func (d *Decoder) PosOf(i int) int { return d.seqs[i].pos }

// Reset rewinds every sequence to position 0, keeping the buffers.
func (d *Decoder) Reset() {
	for i := range d.seqs {
		d.seqs[i].pos = 0
	}
}

// Reserve grows every sequence's cache to hold n positions (at most the
// context), so that decoding up to n tokens allocates nothing more.
func (d *Decoder) Reserve(n int) {
	n = min(n, d.m.Config.Context)
	for i := range d.seqs {
		d.grow(i, n)
	}
}

func (d *Decoder) grow(i, n int) {
	c := &d.seqs[i]
	if len(c.k) == 0 || c.cap >= n {
		return
	}
	n = min(max(n, 2*c.cap), d.m.Config.Context)
	kvh, dh := d.m.Config.KVHeads, d.m.Config.HeadDim
	move := func(old []float32) []float32 {
		b := make([]float32, kvh*n*dh)
		for h := range kvh {
			copy(b[h*n*dh:][:c.pos*dh], old[h*c.cap*dh:][:c.pos*dh])
		}
		return b
	}
	for l := range c.k {
		c.k[l], c.v[l] = move(c.k[l]), move(c.v[l])
	}
	c.cap = n
}

// fit returns b with length n, growing it geometrically, so that buffers
// that track the position reallocate O(log n) times.
func fit(b []float32, n int) []float32 {
	if cap(b) < n {
		return make([]float32, n, max(n, 2*cap(b)))
	}
	return b[:n]
}

// Step feeds token to sequence 0 and returns the logits for the next one.
// The slice is the decoder's and is overwritten by the next call. It
// returns an error for an id outside the vocabulary or when the context
// is full.
func (d *Decoder) Step(token int32) ([]float32, error) {
	d.one[0] = 0
	return d.StepBatch(d.one[:], []int32{token})
}

// StepBatch feeds tokens[r] to sequence seqs[r] (distinct sequences) and
// returns their next-token logits, row r at [r·Vocab, (r+1)·Vocab). The
// slice is the decoder's and is overwritten by the next call.
func (d *Decoder) StepBatch(seqs []int, tokens []int32) ([]float32, error) {
	if len(seqs) != len(tokens) {
		return nil, fmt.Errorf("nn: Decoder: %d sequences for %d tokens", len(seqs), len(tokens))
	}
	for r, s := range seqs {
		if s < 0 || s >= len(d.seqs) {
			return nil, fmt.Errorf("nn: Decoder: sequence %d outside [0, %d)", s, len(d.seqs))
		}
		if slices.Contains(seqs[:r], s) {
			return nil, fmt.Errorf("nn: Decoder: sequence %d twice in one step", s)
		}
	}
	if err := d.check(seqs, tokens, 1); err != nil {
		return nil, err
	}
	d.pos = fitInts(d.pos, len(seqs))
	for r, s := range seqs {
		d.pos[r] = d.seqs[s].pos
	}
	d.run(seqs, tokens, false)
	return d.logits, nil
}

// Prefill feeds tokens to sequence seq and returns the logits after the
// last one, as StepBatch does for one token.
func (d *Decoder) Prefill(seq int, tokens []int32) ([]float32, error) {
	if seq < 0 || seq >= len(d.seqs) {
		return nil, fmt.Errorf("nn: Decoder: sequence %d outside [0, %d)", seq, len(d.seqs))
	}
	if len(tokens) == 0 {
		return nil, fmt.Errorf("nn: Decoder: Prefill with no tokens")
	}
	d.one[0] = seq
	if err := d.check(d.one[:], tokens, len(tokens)); err != nil {
		return nil, err
	}
	ss := make([]int, len(tokens))
	d.pos = fitInts(d.pos, len(tokens))
	for r := range ss {
		ss[r] = seq
		d.pos[r] = d.seqs[seq].pos + r
	}
	d.run(ss, tokens, true)
	return d.logits, nil
}

func fitInts(b []int, n int) []int {
	if cap(b) < n {
		return make([]int, n)
	}
	return b[:n]
}

func (d *Decoder) check(seqs []int, tokens []int32, per int) error {
	c := d.m.Config
	for _, t := range tokens {
		if t < 0 || int(t) >= c.Vocab {
			return fmt.Errorf("nn: Decoder: token %d outside vocabulary of %d", t, c.Vocab)
		}
	}
	for _, s := range seqs {
		if d.seqs[s].pos+per > c.Context {
			return fmt.Errorf("nn: Decoder: sequence %d: context of %d tokens is full (at position %d, %d more tokens)", s, c.Context, d.seqs[s].pos, per)
		}
	}
	return nil
}

// run pushes one row per token through the model: row r is token
// tokens[r] of sequence seqs[r] at position d.pos[r]. With prefill every
// row belongs to one sequence, the products run through GEMM and only
// the last row's logits are computed; otherwise each row is its own
// sequence and the products stream each weight row once for all rows.
func (d *Decoder) run(seqs []int, tokens []int32, prefill bool) {
	m, c := d.m, d.m.Config
	rows := len(tokens)
	dm, hs, kvh, dh := c.DModel, c.Heads, c.KVHeads, c.HeadDim
	qd, kvd, half := hs*dh, kvh*dh, dh/2
	for _, s := range seqs {
		last := d.seqs[s].pos + rows
		if !prefill {
			last = d.seqs[s].pos + 1
		}
		d.grow(s, last)
	}
	d.x, d.n, d.tmp = fit(d.x, rows*dm), fit(d.n, rows*dm), fit(d.tmp, rows*dm)
	d.q, d.o = fit(d.q, rows*qd), fit(d.o, rows*qd)
	d.k, d.v = fit(d.k, rows*kvd), fit(d.v, rows*kvd)
	d.gate, d.up = fit(d.gate, rows*c.Hidden), fit(d.up, rows*c.Hidden)
	d.cos, d.sin = fit(d.cos, rows*half), fit(d.sin, rows*half)
	maxPos := 0
	for r := range rows {
		maxPos = max(maxPos, d.pos[r]+1)
		ropeRow(d.cos[r*half:(r+1)*half], d.sin[r*half:(r+1)*half], m.freq, d.pos[r])
	}
	d.maxPos = maxPos
	lin := func(y []float32, l *Linear, x []float32, nr int) {
		if d.lin16(y, l, x, nr, prefill) {
			if l.LoRA != nil { // adapters on a bfloat16 base
				l.LoRA.addRows(y, x, nr)
			}
			return
		}
		var b []float32
		if l.B != nil {
			b = l.B.Value.Data()
		}
		w := l.W.Value
		if prefill && nr > 1 {
			tensor.Gemm(false, true, 1, tensor.FromSlice(x, nr, w.Dim(1)), w, 0, tensor.FromSlice(y, nr, w.Dim(0)))
			if b != nil {
				for r := range nr {
					yr := y[r*len(b) : (r+1)*len(b)]
					tensor.Add(yr, yr, b)
				}
			}
			if l.LoRA != nil {
				l.LoRA.addRows(y, x, nr)
			}
			return
		}
		d.dots(y, x, w.Data(), b, nr, w.Dim(1), w.Dim(0))
		if l.LoRA != nil {
			l.LoRA.addRows(y, x, nr)
		}
	}
	rot := func(v []float32, heads int) {
		for r := range rows {
			cs, sn := d.cos[r*half:(r+1)*half], d.sin[r*half:(r+1)*half]
			for h := range heads {
				x0 := v[(r*heads+h)*dh:][:half]
				x1 := v[(r*heads+h)*dh+half:][:half]
				for i := range half {
					a, b := x0[i], x1[i]
					x0[i] = a*cs[i] - b*sn[i]
					x1[i] = b*cs[i] + a*sn[i]
				}
			}
		}
	}
	for r, t := range tokens {
		m.embedRow(d.x[r*dm:(r+1)*dm], t)
	}
	for l := range m.Blocks {
		b := &m.Blocks[l]
		for r := range rows {
			rmsnorm(d.n[r*dm:(r+1)*dm], d.x[r*dm:(r+1)*dm], b.Norm1.W.Value.Data(), b.Norm1.Eps)
		}
		lin(d.q, &b.Attn.Q, d.n, rows)
		lin(d.k, &b.Attn.K, d.n, rows)
		lin(d.v, &b.Attn.V, d.n, rows)
		rot(d.q, hs)
		rot(d.k, kvh)
		for r, s := range seqs {
			c, p := &d.seqs[s], d.pos[r]
			for h := range kvh {
				copy(c.k[l][(h*c.cap+p)*dh:][:dh], d.k[r*kvd+h*dh:][:dh])
				copy(c.v[l][(h*c.cap+p)*dh:][:dh], d.v[r*kvd+h*dh:][:dh])
			}
		}
		d.attend(l, seqs, rows, prefill)
		lin(d.tmp, &b.Attn.O, d.o, rows)
		tensor.Add(d.x, d.x, d.tmp)
		for r := range rows {
			rmsnorm(d.n[r*dm:(r+1)*dm], d.x[r*dm:(r+1)*dm], b.Norm2.W.Value.Data(), b.Norm2.Eps)
		}
		lin(d.gate, &b.MLP.Gate, d.n, rows)
		lin(d.up, &b.MLP.Up, d.n, rows)
		d.e = fit(d.e, len(d.gate))
		swiglu(d.gate, d.up, d.e)
		lin(d.tmp, &b.MLP.Down, d.gate, rows)
		tensor.Add(d.x, d.x, d.tmp)
	}
	for r, s := range seqs {
		d.seqs[s].pos = d.pos[r] + 1
	}
	out, x := rows, d.x
	if prefill && !d.all {
		out, x = 1, d.x[(rows-1)*dm:]
	}
	d.n = fit(d.n, out*dm)
	for r := range out {
		rmsnorm(d.n[r*dm:(r+1)*dm], x[r*dm:(r+1)*dm], m.Norm.W.Value.Data(), m.Norm.Eps)
	}
	d.logits = fit(d.logits, out*c.Vocab)
	if !d.lin16(d.logits, &m.Head, d.n, out, prefill) {
		d.dots(d.logits, d.n, m.Head.W.Value.Data(), nil, out, dm, c.Vocab)
	}
}

func rmsnorm(dst, x, w []float32, eps float64) {
	r := float32(1 / math.Sqrt(float64(tensor.Dot(x, x))/float64(len(x))+eps))
	tensor.Mul(dst, x, w)
	tensor.Scale(dst, r, dst)
}

// swiglu sets gate to silu(gate)·up = gate·up / (1 + exp(−gate)), with
// the exponentials through the vector kernel (e is scratch of the same
// length): one pass of float64 math.Exp per element was 4 % of a batch-8
// decoding step. exp(−g) overflowing to +Inf for g < −88 gives the limit,
// a signed zero.
func swiglu(gate, up, e []float32) {
	tensor.Scale(e, -1, gate)
	tensor.Exp(e, e)
	for i, g := range gate {
		gate[i] = g * up[i] / (1 + e[i])
	}
}

// Generate feeds prompt to a fresh decoder and then samples up to n
// tokens, stopping after an end-of-sequence token (Config.EOS, which is
// kept in the output) or when the context is full. It returns the sampled
// tokens.
func (m *Model) Generate(prompt []int32, n int, s *Sampler) ([]int32, error) {
	out, err := m.GenerateBatch([][]int32{prompt}, n, []*Sampler{s})
	if out == nil {
		return nil, err
	}
	return out[0], err
}

// GenerateBatch decodes the prompts together, each with its own sampler,
// and returns each one's tokens as Generate would return them for it
// alone: prompts of any lengths, each sequence stopping on its own.
func (m *Model) GenerateBatch(prompts [][]int32, n int, ss []*Sampler) ([][]int32, error) {
	return m.GenerateBatchContext(context.Background(), prompts, n, ss)
}

// GenerateBatchContext is GenerateBatch stopping with ctx's error, between
// two decoding steps, once ctx is done.
func (m *Model) GenerateBatchContext(ctx context.Context, prompts [][]int32, n int, ss []*Sampler) ([][]int32, error) {
	if len(prompts) == 0 || len(ss) != len(prompts) {
		return nil, fmt.Errorf("nn: Generate: %d prompts for %d samplers", len(prompts), len(ss))
	}
	if n < 0 {
		return nil, fmt.Errorf("nn: Generate: negative token count %d", n)
	}
	longest := 0
	for i, p := range prompts {
		if len(p) == 0 {
			return nil, fmt.Errorf("nn: Generate: prompt %d is empty", i)
		}
		if len(p) > m.Config.Context {
			return nil, fmt.Errorf("nn: Generate: prompt %d of %d tokens exceeds the context of %d", i, len(p), m.Config.Context)
		}
		if err := m.CheckTokens(p); err != nil {
			return nil, fmt.Errorf("nn: Generate: prompt %d: %v", i, err)
		}
		if ss[i] == nil {
			return nil, fmt.Errorf("nn: Generate: sampler %d is nil", i)
		}
		longest = max(longest, len(p))
	}
	b, v := len(prompts), m.Config.Vocab
	d := m.NewBatchDecoder(b)
	d.Reserve(longest + n)
	logits := make([]float32, b*v)
	for i, p := range prompts {
		l, err := d.Prefill(i, p)
		if err != nil {
			return nil, err
		}
		copy(logits[i*v:(i+1)*v], l)
	}
	out := make([][]int32, b)
	for i := range out {
		out[i] = make([]int32, 0, n)
	}
	live := make([]int, 0, b)
	next := make([]int32, 0, b)
	for i := range b {
		if n > 0 {
			live = append(live, i)
		}
	}
	for len(live) > 0 {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		// Sample every live sequence, then step the ones that go on.
		next = next[:0]
		kept := live[:0]
		for r, i := range live {
			tok, err := ss[i].Sample(logits[r*v : (r+1)*v])
			if err != nil {
				return out, fmt.Errorf("nn: Generate: sequence %d: %v", i, err)
			}
			out[i] = append(out[i], tok)
			if len(out[i]) == n || slices.Contains(m.Config.EOS, tok) || d.PosOf(i) == m.Config.Context {
				continue
			}
			kept = append(kept, i)
			next = append(next, tok)
		}
		live = kept
		if len(live) == 0 {
			break
		}
		l, err := d.StepBatch(live, next)
		if err != nil {
			return out, err
		}
		copy(logits, l)
	}
	return out, nil
}

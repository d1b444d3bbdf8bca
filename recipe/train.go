package recipe

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"

	"github.com/posttrain/posttrain/internal/atomicfile"
	"github.com/posttrain/posttrain/tensor"
	"github.com/posttrain/posttrain/tensor/nn"
)

// Config is what every trainer shares: the optimizer (AdamW), its
// schedule, batching, evaluation, checkpoints and logging.
type Config struct {
	Steps       int     // optimizer steps
	Batch       int     // records per micro-batch
	Accum       int     // micro-batches per optimizer step (gradient accumulation); 0 means 1
	LR          float64 // peak learning rate
	MinLR       float64 // learning rate at the end of the cosine
	Warmup      int     // linear warmup steps
	ClipNorm    float64 // clip the global gradient norm to this (TRL's max_grad_norm); 0 turns clipping off
	WeightDecay float64 // AdamW's decoupled weight decay on matrices
	Seed        uint64  // data order and dropout: a run is a function of its seed

	EvalEvery int // evaluate every this many steps and after the last (0: never)
	SaveEvery int // checkpoint every this many steps and after the last (0: only after the last, when Dir is set)
	// Dir, when set, holds checkpoint.safetensors and metrics.jsonl; a
	// trainer started on a Dir holding a checkpoint resumes from it.
	Dir string
	// Callback, when set, receives every logged record (progress bars,
	// dashboards); it runs on the training goroutine.
	Callback func(Record)
	// Pad is the token that pads sequences to a common length. Any id in
	// the vocabulary works: padding is neither attended to nor scored.
	Pad int32
	// Recompute turns on gradient checkpointing for the trained model's
	// passes (Scorer.Recompute, whose doc gives the step's memory):
	// activation memory of half a decoder block for one group of
	// sequences instead of all of them, for about 40% more compute. The
	// reward model's pass does not use it.
	Recompute bool
	// GCBytes bounds the garbage a run lets build up: after a
	// micro-batch, when the heap has handed out more than this many bytes
	// since the last collection, the trainer runs one (runtime.GC). A
	// step leaves some garbage (the tape's small objects, a few MB for a
	// small model), and with the model's weights in the Go heap the
	// runtime's own pacing (GOGC) would let it grow to the size of the
	// weights before collecting: the peak memory of a long run would be
	// up to twice the model's. A collection costs milliseconds, the
	// weights holding no pointers to scan. 0 means DefaultGCBytes;
	// negative leaves collection to the runtime alone.
	GCBytes int64
	// Unfused forms the whole [tokens, vocabulary] logits of the scored
	// positions (Scorer.Unfused) instead of taking every loss straight
	// from the hidden states and the output head a chunk of rows at a
	// time, the default. Results agree to float32 rounding; the fused
	// path holds a chunk's logits instead of all of them.
	Unfused bool
}

// DefaultGCBytes is Config.GCBytes' default.
const DefaultGCBytes = 8 << 20

// collector runs the collector once the heap has handed out more than
// limit bytes since the last collection (by anyone).
type collector struct {
	limit  uint64
	base   uint64 // bytes allocated at the last collection seen
	cycles uint64
	s      [2]metrics.Sample
}

func newCollector(limit int64) *collector {
	if limit < 0 {
		return nil
	}
	if limit == 0 {
		limit = DefaultGCBytes
	}
	c := &collector{limit: uint64(limit)}
	c.s[0].Name, c.s[1].Name = "/gc/heap/allocs:bytes", "/gc/cycles/total:gc-cycles"
	c.read()
	return c
}

func (c *collector) read() (allocs, cycles uint64) {
	metrics.Read(c.s[:])
	allocs, cycles = c.s[0].Value.Uint64(), c.s[1].Value.Uint64()
	if cycles != c.cycles {
		c.base, c.cycles = allocs, cycles
	}
	return allocs, cycles
}

// check collects if the garbage since the last collection may exceed the limit.
func (c *collector) check() {
	if c == nil {
		return
	}
	if allocs, _ := c.read(); allocs-c.base > c.limit {
		runtime.GC()
		c.read()
	}
}

// scorer returns a Scorer for m on c's head path.
func (c Config) scorer(m *nn.Model) *Scorer {
	sc := NewScorer(m)
	sc.Unfused = c.Unfused
	return sc
}

func (c Config) accum() int { return max(1, c.Accum) }

func (c Config) check(op string, n int) error {
	switch {
	case n == 0:
		return fmt.Errorf("recipe: %s: no training records", op)
	case c.Steps <= 0 || c.Batch <= 0 || c.Accum < 0:
		return fmt.Errorf("recipe: %s: Steps %d, Batch %d, Accum %d: need Steps, Batch ≥ 1", op, c.Steps, c.Batch, c.Accum)
	case !(c.LR > 0) || math.IsInf(c.LR, 0) || c.MinLR < 0 || c.MinLR > c.LR || c.Warmup < 0:
		return fmt.Errorf("recipe: %s: LR %v, MinLR %v, Warmup %d: need 0 ≤ MinLR ≤ LR, LR > 0, Warmup ≥ 0", op, c.LR, c.MinLR, c.Warmup)
	case c.ClipNorm < 0 || c.WeightDecay < 0:
		return fmt.Errorf("recipe: %s: ClipNorm %v, WeightDecay %v must be ≥ 0", op, c.ClipNorm, c.WeightDecay)
	}
	return nil
}

// Record is one line of the training log: the step (1-based, after the
// update) and metrics under TRL's names — loss, grad_norm,
// learning_rate, epoch, num_tokens, rewards/chosen, rewards/margins,
// logps/chosen, kl… — with eval_ before evaluation metrics.
type Record struct {
	Step    int
	Metrics map[string]float64
}

// MarshalJSON writes the record as one flat object, {"step": 3, "loss": …}.
func (r Record) MarshalJSON() ([]byte, error) {
	m := make(map[string]any, len(r.Metrics)+1)
	for k, v := range r.Metrics {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			m[k] = nil
			continue
		}
		m[k] = v
	}
	m["step"] = r.Step
	return json.Marshal(m)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (r *Record) UnmarshalJSON(b []byte) error {
	var m map[string]*float64
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	s, ok := m["step"]
	if !ok || s == nil {
		return errors.New("recipe: log record without step")
	}
	r.Step = int(*s)
	r.Metrics = map[string]float64{}
	for k, v := range m {
		if k == "step" {
			continue
		}
		if v == nil {
			r.Metrics[k] = math.NaN()
		} else {
			r.Metrics[k] = *v
		}
	}
	return nil
}

// The files a trainer keeps in Config.Dir.
const (
	// CheckpointFile holds the trainable parameters, AdamW's moments and
	// the step, rewritten atomically every Config.SaveEvery steps and
	// after the last.
	CheckpointFile = "checkpoint.safetensors"
	// MetricsFile is the metrics log, one JSON Record per line.
	MetricsFile = "metrics.jsonl"
)

// task is one trainer's part of the shared loop.
type task interface {
	// micro runs forward and backward on the records idx, adding
	// scale·gradient to the trainable parameters, and returns metrics
	// (means over the micro-batch) with the number of tokens it saw.
	micro(ctx context.Context, idx []int, pass uint64, scale float64) (map[string]float64, int, error)
	// eval returns evaluation metrics (without the eval_ prefix), or nil.
	eval(ctx context.Context) (map[string]float64, error)
}

// loop is the training loop every trainer shares.
type loop struct {
	op     string
	cfg    Config
	n      int // training records
	params []nn.Named
	zero   func()
	setLR  func(*nn.AdamW)
	gc     *collector
}

// History is what a run logged, in order: the records of its steps and
// evaluations (the same ones Config.Callback and metrics.jsonl receive).
type History []Record

// Last returns the last value of metric name, and whether it was logged.
func (h History) Last(name string) (float64, bool) {
	for i := len(h) - 1; i >= 0; i-- {
		if v, ok := h[i].Metrics[name]; ok {
			return v, true
		}
	}
	return 0, false
}

func (l *loop) run(ctx context.Context, t task) (History, error) {
	cfg := l.cfg
	if err := cfg.check(l.op, l.n); err != nil {
		return nil, err
	}
	if len(l.params) == 0 {
		return nil, fmt.Errorf("recipe: %s: the model has no trainable parameters", l.op)
	}
	opt := nn.NewAdamW(l.params, cfg.LR)
	opt.ClipNorm, opt.WeightDecay = cfg.ClipNorm, cfg.WeightDecay
	start := 0
	var hist History
	if cfg.Dir != "" {
		if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
			return nil, fmt.Errorf("recipe: %s: %v", l.op, err)
		}
		var err error
		start, err = loadCheckpoint(filepath.Join(cfg.Dir, CheckpointFile), l.params, opt)
		if err != nil {
			return nil, fmt.Errorf("recipe: %s: %w", l.op, err)
		}
		if hist, err = trimLog(filepath.Join(cfg.Dir, MetricsFile), start); err != nil {
			return nil, fmt.Errorf("recipe: %s: %w", l.op, err)
		}
	}
	emit := func(r Record) error {
		hist = append(hist, r)
		if cfg.Callback != nil {
			cfg.Callback(r)
		}
		if cfg.Dir == "" {
			return nil
		}
		return appendLog(filepath.Join(cfg.Dir, MetricsFile), r)
	}
	acc := cfg.accum()
	order := newOrder(cfg.Seed, l.n)
	tokens := 0
	if len(hist) > 0 {
		tokens = int(hist[len(hist)-1].Metrics["num_tokens"])
	}
	for step := start; step < cfg.Steps; step++ {
		if err := ctx.Err(); err != nil {
			return hist, err
		}
		opt.LR = nn.WarmupCosine(step, cfg.Warmup, cfg.Steps, cfg.LR, cfg.MinLR)
		var sums map[string]float64
		if it, ok := t.(iterator); ok {
			m, nt, err := it.iterate(ctx, step, opt)
			if err != nil {
				return hist, fmt.Errorf("recipe: %s: iteration %d: %w", l.op, step+1, err)
			}
			tokens += nt
			sums = m
		} else {
			sums = map[string]float64{}
			norm, nt, err := l.step(ctx, t, step, order, opt, sums)
			if err != nil {
				return hist, err
			}
			tokens += nt
			sums["grad_norm"] = norm
		}
		sums["learning_rate"] = opt.LR
		sums["epoch"] = float64((step+1)*acc*cfg.Batch) / float64(l.n)
		sums["num_tokens"] = float64(tokens)
		last := step+1 == cfg.Steps
		if err := emit(Record{Step: step + 1, Metrics: sums}); err != nil {
			return hist, fmt.Errorf("recipe: %s: %w", l.op, err)
		}
		if cfg.EvalEvery > 0 && ((step+1)%cfg.EvalEvery == 0 || last) {
			em, err := t.eval(ctx)
			if err != nil {
				return hist, fmt.Errorf("recipe: %s: eval after step %d: %w", l.op, step+1, err)
			}
			if em != nil {
				pm := make(map[string]float64, len(em))
				for k, v := range em {
					pm["eval_"+k] = v
				}
				if err := emit(Record{Step: step + 1, Metrics: pm}); err != nil {
					return hist, fmt.Errorf("recipe: %s: %w", l.op, err)
				}
			}
		}
		if cfg.Dir != "" && (last || (cfg.SaveEvery > 0 && (step+1)%cfg.SaveEvery == 0)) {
			if err := saveCheckpoint(filepath.Join(cfg.Dir, CheckpointFile), step+1, l.params, opt); err != nil {
				return hist, fmt.Errorf("recipe: %s: %w", l.op, err)
			}
		}
	}
	return hist, nil
}

// iterator is a task that runs a whole step itself, optimizer steps
// included (online RL: sample, score, then several updates on the batch).
// The loop sets opt.LR before calling it.
type iterator interface {
	iterate(ctx context.Context, step int, opt *nn.AdamW) (map[string]float64, int, error)
}

// step runs one optimizer step of micro-batches, adding the micro-batch
// means of their metrics to sums, and returns the gradient norm and the
// tokens seen.
func (l *loop) step(ctx context.Context, t task, step int, order *order, opt *nn.AdamW, sums map[string]float64) (float64, int, error) {
	cfg, acc := l.cfg, l.cfg.accum()
	tokens := 0
	l.zero()
	if l.gc == nil {
		l.gc = newCollector(cfg.GCBytes)
	}
	for k := range acc {
		first := (step*acc + k) * cfg.Batch
		idx := order.take(first, cfg.Batch)
		m, nt, err := t.micro(ctx, idx, uint64(step*acc+k), 1/float64(acc))
		if err != nil {
			return 0, 0, fmt.Errorf("recipe: %s: step %d: %w", l.op, step+1, err)
		}
		tokens += nt
		for name, v := range m {
			sums[name] += v / float64(acc)
		}
		l.gc.check()
	}
	norm, err := opt.Step()
	if err != nil {
		return 0, 0, fmt.Errorf("recipe: %s: step %d: %w", l.op, step+1, err)
	}
	return norm, tokens, nil
}

// order is the data order: epoch after epoch, each a permutation of the
// records drawn from (seed, epoch). Record c of the stream is a function
// of c alone, so a resumed run reads what an uninterrupted one would.
type order struct {
	seed  uint64
	n     int
	epoch int
	perm  []int
}

func newOrder(seed uint64, n int) *order { return &order{seed: seed, n: n, epoch: -1} }

func (o *order) take(first, count int) []int {
	idx := make([]int, count)
	for i := range idx {
		c := first + i
		if e := c / o.n; e != o.epoch {
			o.epoch = e
			o.perm = rand.New(rand.NewPCG(o.seed, uint64(e)^0x0bde5)).Perm(o.n)
		}
		idx[i] = o.perm[c%o.n]
	}
	return idx
}

const checkpointFormat = "posttrain.recipe.checkpoint"

// checksum hashes tensors' names, shapes and data in order: per tensor
// its name, a zero byte, each dimension as a little-endian uint64, then
// its float32 values little-endian, streamed, so the hash needs no copy
// of a tensor.
func checksum(ts []nn.Tensor) string {
	h := sha256.New()
	for _, t := range ts {
		hashHead(h, t.Name, t.Value.Shape())
		nn.WriteF32(h, t.Value.Data()) // a hash never fails to write
	}
	return hex.EncodeToString(h.Sum(nil))
}

// hashHead hashes what checksum hashes before a tensor's data.
func hashHead(h hash.Hash, name string, shape []int) {
	var b [8]byte
	h.Write([]byte(name))
	h.Write([]byte{0})
	for _, d := range shape {
		binary.LittleEndian.PutUint64(b[:], uint64(d))
		h.Write(b[:])
	}
}

// saveCheckpoint writes the trainable parameters and AdamW's moments
// atomically, with a SHA-256 over them in the metadata. Both the hash and
// the file are streamed from the tensors themselves: the memory it needs
// beyond them is a few buffers.
func saveCheckpoint(path string, step int, params []nn.Named, opt *nn.AdamW) error {
	astep, m, v := opt.Moments()
	ts := make([]nn.Tensor, 0, 3*len(params))
	for i, p := range params {
		sh := p.Var.Value.Shape()
		ts = append(ts,
			nn.Tensor{Name: "param." + p.Name, Value: p.Var.Value},
			nn.Tensor{Name: "adam_m." + p.Name, Value: tensor.FromSlice(m[i], sh...)},
			nn.Tensor{Name: "adam_v." + p.Name, Value: tensor.FromSlice(v[i], sh...)})
	}
	md := map[string]string{
		"format": checkpointFormat, "step": strconv.Itoa(step), "adam_step": strconv.Itoa(astep),
		"sha256": checksum(ts),
	}
	if err := nn.SaveSafetensors(path, ts, md); err != nil {
		return fmt.Errorf("checkpoint %s: %v", path, err)
	}
	return nil
}

// loadCheckpoint restores a checkpoint into params and opt and returns its
// step, or 0 if there is none. It reads the file twice through a small
// buffer, never holding a copy of it: first to check the header against
// the parameters and the data against its checksum, then straight into
// the parameters and the optimizer's moments. A checkpoint that fails its
// checksum or does not match the parameters is an error, and nothing is
// restored; only a read error in the second pass, of a file just read
// whole, could leave the state partly restored, and it is reported.
func loadCheckpoint(path string, params []nn.Named, opt *nn.AdamW) (int, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("checkpoint: %v", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("checkpoint: %v", err)
	}
	infos, md, err := nn.ReadSafetensorsHeader(f, st.Size())
	if err != nil {
		return 0, fmt.Errorf("checkpoint: %v (file %s)", err, path)
	}
	if md["format"] != checkpointFormat {
		return 0, fmt.Errorf("checkpoint %s: format %q, want %q", path, md["format"], checkpointFormat)
	}
	step, err1 := strconv.Atoi(md["step"])
	astep, err2 := strconv.Atoi(md["adam_step"])
	if err1 != nil || err2 != nil || step < 0 || astep < 0 {
		return 0, fmt.Errorf("checkpoint %s: bad step metadata %q, %q", path, md["step"], md["adam_step"])
	}
	by := make(map[string]*nn.TensorInfo, len(infos))
	for i := range infos {
		by[infos[i].Name] = &infos[i]
	}
	if len(by) != 3*len(params) {
		return 0, fmt.Errorf("checkpoint %s: %d tensors for %d trainable parameters (a different model or adapter?)", path, len(by), len(params))
	}
	_, m, v := opt.Moments()
	if len(m) != len(params) || len(v) != len(params) {
		return 0, fmt.Errorf("checkpoint %s: the optimizer holds %d moments for %d parameters", path, len(m), len(params))
	}
	prefixes := [3]string{"param.", "adam_m.", "adam_v."}
	for i, p := range params {
		if len(m[i]) != p.Var.Value.Len() || len(v[i]) != p.Var.Value.Len() {
			return 0, fmt.Errorf("checkpoint %s: the optimizer's moments of %s do not fit it", path, p.Name)
		}
		for _, pre := range prefixes {
			t, ok := by[pre+p.Name]
			if !ok {
				return 0, fmt.Errorf("checkpoint %s: no tensor %s", path, pre+p.Name)
			}
			if !slices.Equal(t.Shape, p.Var.Value.Shape()) {
				return 0, fmt.Errorf("checkpoint %s: %s has shape %v, the parameter %v", path, pre+p.Name, t.Shape, p.Var.Value.Shape())
			}
			if t.Dtype != "F32" {
				return 0, fmt.Errorf("checkpoint %s: %s is %s, want F32", path, pre+p.Name, t.Dtype)
			}
		}
	}
	// The checksum covers the tensors in the order of their data, the
	// order they were written in; for F32 the bytes on disk are exactly
	// the bytes checksum hashes.
	h := sha256.New()
	buf := make([]byte, 64<<10)
	for _, t := range infos {
		hashHead(h, t.Name, t.Shape)
		if _, err := io.CopyBuffer(h, io.NewSectionReader(f, t.Begin, t.End-t.Begin), buf); err != nil {
			return 0, fmt.Errorf("checkpoint %s: %s: %v", path, t.Name, err)
		}
	}
	if hex.EncodeToString(h.Sum(nil)) != md["sha256"] {
		return 0, fmt.Errorf("checkpoint %s: checksum mismatch (file corrupt or edited)", path)
	}
	for i, p := range params {
		for j, dst := range [3][]float32{p.Var.Value.Data(), m[i], v[i]} {
			if err := nn.ReadTensorData(f, by[prefixes[j]+p.Name], dst); err != nil {
				return 0, fmt.Errorf("checkpoint %s: %v (the state is partly restored)", path, err)
			}
		}
	}
	// The moments are in place; this sets the step.
	if err := opt.SetMoments(astep, m, v); err != nil {
		return 0, fmt.Errorf("checkpoint %s: %v", path, err)
	}
	return step, nil
}

// trimLog reads the metrics log, drops the records after step (written
// after the checkpoint a run resumes from), rewrites it atomically and
// returns what remains.
func trimLog(path string, step int) (History, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var hist History
	var keep bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<24)
	for line := 1; sc.Scan(); line++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			// A torn last line (a kill mid-write) is dropped; anything
			// else is corruption.
			if !bytes.HasSuffix(b, []byte("\n")) && line > 0 && !sc.Scan() {
				break
			}
			return nil, fmt.Errorf("%s: line %d: %v", path, line, err)
		}
		if r.Step > step {
			continue
		}
		hist = append(hist, r)
		keep.Write(sc.Bytes())
		keep.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	if err := atomicfile.Write(path, keep.Bytes()); err != nil {
		return nil, err
	}
	return hist, nil
}

// appendLog appends one record as one line, in one write.
func appendLog(path string, r Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

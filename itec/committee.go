package itec

import (
	"context"
	"sync"

	"github.com/posttrain/posttrain/prefopt"
)

// Algorithm names how a committee member was trained.
type Algorithm string

// The algorithms AFM trains committee members with.
const (
	SFT               Algorithm = "sft"                // supervised fine-tuning on demonstrations
	RejectionSampling Algorithm = "rejection-sampling" // fine-tuning on the committee's best responses
	DPO               Algorithm = "dpo"                // direct preference optimization on labeled pairs
	IPO               Algorithm = "ipo"                // identity preference optimization on labeled pairs
	OnlineRL          Algorithm = "online-rl"          // e.g. MDLOO against the reward model
)

// Member is one model of the committee. Name identifies it across rounds
// and checkpoints; Ref is whatever its Trainer needs to load it again (a
// file path, say), saved in checkpoints; Model samples from it and is not
// saved.
type Member struct {
	Name      string
	Algorithm Algorithm
	Round     int    // the round that trained it; 0 for an initial member
	Ref       string // the trainer's handle for LoadMember
	Model     Generator
}

// Generator is a committee member's sampler. It returns one response per
// seed, in order, and must be a pure function of (prompt, seed): the same
// seed gives the same response, whatever else runs concurrently. Seeds are
// derived from the round, prompt, member and sample index (see Seed), which
// is what makes a run reproducible for any number of workers.
type Generator interface {
	Generate(ctx context.Context, prompt string, seeds []uint64) ([]string, error)
}

// Scorer is a reward model: it scores a prompt's responses in one batch,
// higher is better. It must be safe for concurrent use.
type Scorer interface {
	Score(ctx context.Context, prompt string, responses []string) ([]float64, error)
}

// Preference is a Labeler's verdict on a pair of responses: which one it
// prefers, and by how much on AFM's four-point scale.
type Preference struct {
	PreferA bool
	Level   prefopt.Level // must be one of the four labeled levels
}

// Labeler is the preference source: a human labeling queue, or a
// programmatic oracle in experiments. It must be safe for concurrent use.
type Labeler interface {
	Label(ctx context.Context, prompt, a, b string) (Preference, error)
}

// DurableLabeler is a Labeler that keeps each answer somewhere durable — a
// work queue, a database — until Run acknowledges it. Run calls Commit for
// a candidate once the answer Label returned for it is synced to the
// run's label log; an answer not yet committed when the run dies must be
// returned again, without asking anyone, when the resumed run calls Label
// for the same (prompt, a, b). That closes the window a plain Labeler
// leaves (see Run): with a DurableLabeler no answer is ever lost.
type DurableLabeler interface {
	Labeler
	Commit(ctx context.Context, prompt, a, b string) error
}

// gatedLabeler holds every new request while an answer already returned
// is not yet durable: Label counts the answers it hands back, the label
// step uncounts each once it is synced to the log (or once it is known
// never to arrive there), and a request waits until none is pending or
// its context ends. The wait is a channel, not a sync.Cond, so that a
// cancelled run never waits on an answer that will not be uncounted.
type gatedLabeler struct {
	l       Labeler
	mu      sync.Mutex
	pending int
	idle    chan struct{} // closed while pending == 0
}

func newGatedLabeler(l Labeler) *gatedLabeler {
	g := &gatedLabeler{l: l, idle: make(chan struct{})}
	close(g.idle)
	return g
}

func (g *gatedLabeler) Label(ctx context.Context, prompt, a, b string) (Preference, error) {
	g.mu.Lock()
	for g.pending > 0 {
		idle := g.idle
		g.mu.Unlock()
		select {
		case <-idle:
		case <-ctx.Done():
			return Preference{}, ctx.Err()
		}
		g.mu.Lock()
	}
	g.mu.Unlock()
	p, err := g.l.Label(ctx, prompt, a, b)
	if err == nil && p.Level.Valid() { // Label's caller calls durable for it
		g.mu.Lock()
		if g.pending == 0 {
			g.idle = make(chan struct{})
		}
		g.pending++
		g.mu.Unlock()
	}
	return p, err
}

// durable uncounts an answer once it is synced (or failed to be, or was
// lost on its way back).
func (g *gatedLabeler) durable() {
	g.mu.Lock()
	if g.pending--; g.pending == 0 {
		close(g.idle)
	}
	g.mu.Unlock()
}

// Demo is a fine-tuning example: a prompt and the response to imitate.
type Demo struct {
	Prompt   string `json:"prompt"`
	Response string `json:"response"`
}

// TrainRequest is everything a new member may be trained on.
type TrainRequest struct {
	Round     int
	Algorithm Algorithm
	Seed      uint64
	Committee []Member       // the committee that produced the data; the trainer picks its base
	Demos     []Demo         // this round's committee-distillation data (rejection sampling, SFT)
	Pairs     []prefopt.Pair // every labeled preference so far (DPO, IPO)
	Prompts   []string       // the training prompts (online RL)
	Reward    Scorer         // the refreshed reward model (online RL)
}

// Trainer trains new committee members and loads checkpointed ones.
// Its methods are named apart from RewardTrainer's, so that one type can
// be both.
type Trainer interface {
	// Train returns the new member with Model and Ref set. The loop names
	// it; Train may leave Name empty.
	Train(ctx context.Context, req TrainRequest) (Member, error)
	// LoadMember rebuilds a member's Model from its Ref when a run resumes.
	LoadMember(ctx context.Context, m Member) (Generator, error)
}

// RewardTrainer refreshes the reward model on every preference so far and
// loads a refreshed one when a run resumes.
type RewardTrainer interface {
	Refresh(ctx context.Context, round int, pairs []prefopt.Pair) (rm Scorer, ref string, err error)
	// LoadReward rebuilds the reward model Refresh returned with ref.
	LoadReward(ctx context.Context, ref string) (Scorer, error)
}

// Evaluator scores a member for choosing the next committee (higher is
// better): a held-out reward, a benchmark, a human side-by-side.
type Evaluator interface {
	Evaluate(ctx context.Context, m Member) (float64, error)
}

// Seed derives the seed of one sample from the run's seed and the sample's
// coordinates, with SplitMix64's finalizer over each in turn, so that no
// two coordinates share a stream and no result depends on scheduling.
func Seed(run uint64, round, prompt, member, sample int) uint64 {
	h := run
	for _, v := range [...]int{round, prompt, member, sample} {
		h = mix(h ^ uint64(v)*0x9e3779b97f4a7c15)
	}
	return h
}

func mix(z uint64) uint64 {
	z += 0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

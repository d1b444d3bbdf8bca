package itec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/posttrain/posttrain/internal/atomicfile"
	"github.com/posttrain/posttrain/prefopt"
)

// Step is one stage of a round, in the order Run performs them.
type Step int

const (
	Collecting Step = iota + 1 // the committee samples; candidate pairs are drawn
	Labeling                   // the labeler labels the candidates
	Refreshing                 // the reward model is refreshed on every label so far
	Distilling                 // committee rejection sampling picks each prompt's best response
	Training                   // one new member is trained per algorithm
	Evaluating                 // members not yet evaluated are evaluated
	Choosing                   // the next committee is chosen; the round is over
)

var stepNames = [...]string{"", "collect", "label", "refresh", "distill", "train", "evaluate", "choose"}

// String returns the step's short name, as progress reports print it.
func (s Step) String() string {
	if s > 0 && int(s) < len(stepNames) {
		return stepNames[s]
	}
	return fmt.Sprintf("Step(%d)", int(s))
}

// Event reports progress: Done of Total units of a step (samples' prompts,
// labels, members) in a round.
type Event struct {
	Round       int
	Step        Step
	Done, Total int
}

// Config is a committee run.
type Config struct {
	Dir     string   // checkpoint directory; a run with a state there resumes it
	Prompts []string // the prompts every round samples, labels and distills on
	Rounds  int      // rounds to run in all
	// Initial is the first committee. On resume, members are rebuilt with
	// Trainer.LoadMember, except initial ones, which are taken from here by name.
	Initial []Member
	// Algorithms are trained once each per round; nil means rejection
	// sampling, DPO, IPO and online RL, AFM's set.
	Algorithms []Algorithm
	Samples    int         // responses per member per prompt; 0 means 4
	Pairs      PairOptions // Strategy, PerPrompt, Gap; Seed and Round are set per round
	// Latest is how many of a round's new members join the next committee,
	// best first by evaluation; 0 means all. KeepBest is how many of the
	// best earlier members (initial ones included) stay on; 0 means 2,
	// negative means none.
	Latest, KeepBest int
	Workers          int // concurrent prompts and labels; 0 means GOMAXPROCS
	Seed             uint64

	Labeler   Labeler
	Rewards   RewardTrainer
	Trainer   Trainer
	Evaluator Evaluator
	Progress  func(Event) // optional
	// Executor runs sampling, scoring and labeling; nil means InProcess.
	// The posttrain/jetstream module's executor spreads them over workers
	// behind a durable queue, with the same results.
	Executor Executor
}

// MemberInfo is a member as checkpoints record it.
type MemberInfo struct {
	Name      string    `json:"name"`
	Algorithm Algorithm `json:"algorithm"`
	Round     int       `json:"round"`
	Ref       string    `json:"ref"`
	Eval      *float64  `json:"eval,omitempty"` // nil until evaluated
}

// RoundSummary is what a round did, for reports.
type RoundSummary struct {
	Round     int            `json:"round"`
	Committee []string       `json:"committee"` // the committee that sampled
	NewPairs  int            `json:"new_pairs"`
	Wins      map[string]int `json:"wins"` // prompts won in committee distillation
	Trained   []string       `json:"trained"`
	Next      []string       `json:"next"` // the committee chosen for the next round
}

// State is the checkpointed progress of a run.
type State struct {
	Version   int               `json:"version"`
	Seed      uint64            `json:"seed"`
	Round     int               `json:"round"` // the round in progress, from 1
	Done      Step              `json:"done"`  // the last step of Round that completed; 0 for none
	Committee []string          `json:"committee"`
	Members   []MemberInfo      `json:"members"` // every member so far, initial ones first
	RewardRef string            `json:"reward_ref"`
	Files     map[string]string `json:"files"` // data file → SHA-256
	History   []RoundSummary    `json:"history"`
}

const stateVersion = 1

// Run runs the committee loop for cfg.Rounds rounds, resuming from the
// checkpoint in cfg.Dir if there is one. After every step the state is
// committed to cfg.Dir, so a run killed at any point and started again with
// the same Config continues where it stopped and, the components being
// deterministic, ends in the same state as a run never interrupted.
//
// Run holds an exclusive lock on cfg.Dir (an advisory lock on cfg.Dir/lock:
// flock on Unix, LockFileEx on Windows; see lockFile for platforms without
// one) from start to return; a second Run on the same directory, in this
// process or another, fails at once with an error wrapping ErrLocked. The
// operating system drops the lock when the holder exits, so a crash leaves
// no stale lock. Once it holds the lock, Run removes the temporary files
// that a run killed mid-write left in cfg.Dir (".NAME.atomicfile-DIGITS.tmp",
// the file NAME being intact) and nothing else; a process writing into
// cfg.Dir through posttrain without holding the lock would lose its write
// (its rename fails), so write there only from Run's callbacks. A
// checkpoint that fails its checksums or contradicts itself is an error
// wrapping ErrCheckpoint, never a panic or a silent skip of work.
//
// Labels: each answer is appended to the round's label log and synced
// before Run issues any further request to the Labeler, and a resumed run
// asks only for candidates the log lacks. What a crash can still lose is
// the answers in flight: those a Labeler has returned but Run has not yet
// synced — at most one per worker (Config.Workers), and at most one with
// Workers = 1. A Labeler that must lose none — a human labeling queue —
// implements DurableLabeler: it keeps each answer until Run's Commit says
// it is in the log, and returns it again to a resumed run.
func Run(ctx context.Context, cfg Config) (*State, error) {
	r, err := open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer r.lock.unlock()
	for r.st.Round <= cfg.Rounds {
		if err := r.step(ctx); err != nil {
			return &r.st, err
		}
	}
	return &r.st, nil
}

// run is a loop in memory: the committed State plus what it points to.
type run struct {
	cfg     Config
	st      State
	members map[string]*Member // by name, with models
	rm      Scorer
	pairs   []prefopt.Pair // every committed label
	lock    *dirLock
}

func open(ctx context.Context, cfg Config) (*run, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if cfg.Algorithms == nil {
		cfg.Algorithms = []Algorithm{RejectionSampling, DPO, IPO, OnlineRL}
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("itec: %w", err)
	}
	lock, err := lockDir(cfg.Dir)
	if err != nil {
		return nil, err
	}
	// Every file in the directory is written under this lock, so a
	// temporary file found now was left by a run killed mid-write; the
	// file it was to replace is intact.
	if _, err := atomicfile.RemoveStale(cfg.Dir); err != nil {
		lock.unlock()
		return nil, fmt.Errorf("itec: removing temporary files left by a killed run: %w", err)
	}
	r, err := openLocked(ctx, cfg)
	if err != nil {
		lock.unlock()
		return nil, err
	}
	r.lock = lock
	return r, nil
}

func openLocked(ctx context.Context, cfg Config) (*run, error) {
	r := &run{cfg: cfg, members: map[string]*Member{}}
	for i := range cfg.Initial {
		m := cfg.Initial[i]
		r.members[m.Name] = &m
	}
	b, err := os.ReadFile(filepath.Join(cfg.Dir, stateFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
		r.st = State{Version: stateVersion, Seed: cfg.Seed, Round: 1, Files: map[string]string{}}
		for _, m := range cfg.Initial {
			r.st.Committee = append(r.st.Committee, m.Name)
			r.st.Members = append(r.st.Members, MemberInfo{Name: m.Name, Algorithm: m.Algorithm, Round: m.Round, Ref: m.Ref})
		}
		return r, r.commit()
	case err != nil:
		return nil, fmt.Errorf("itec: %w", err)
	}
	if r.st, err = decodeState(b); err != nil {
		return nil, err
	}
	if r.st.Version != stateVersion || r.st.Seed != cfg.Seed {
		return nil, fmt.Errorf("itec: %s is version %d with seed %d; this run is version %d with seed %d", stateFile, r.st.Version, r.st.Seed, stateVersion, cfg.Seed)
	}
	if err := r.validate(); err != nil {
		return nil, err
	}
	return r, r.restore(ctx)
}

func (c *Config) check() error {
	switch {
	case c.Dir == "":
		return errors.New("itec: Config.Dir is empty")
	case len(c.Prompts) == 0:
		return errors.New("itec: Config.Prompts is empty")
	case len(c.Initial) == 0:
		return errors.New("itec: Config.Initial is empty")
	case c.Labeler == nil || c.Rewards == nil || c.Trainer == nil || c.Evaluator == nil:
		return errors.New("itec: Config needs a Labeler, Rewards, Trainer and Evaluator")
	case c.Samples < 0 || c.Workers < 0 || c.Rounds < 0:
		return errors.New("itec: Config.Samples, Workers and Rounds must not be negative")
	case c.Samples > MaxSamples || c.Pairs.PerPrompt > MaxSamples:
		return fmt.Errorf("itec: Config.Samples = %d or Pairs.PerPrompt = %d above MaxSamples = %d", c.Samples, c.Pairs.PerPrompt, MaxSamples)
	}
	return nil
}

// restore rebuilds the in-memory run from a committed state.
func (r *run) restore(ctx context.Context) error {
	for _, mi := range r.st.Members {
		if _, ok := r.members[mi.Name]; ok {
			continue // initial member, given with its model
		}
		if mi.Round == 0 {
			return fmt.Errorf("itec: checkpoint names initial member %q, which Config.Initial lacks", mi.Name)
		}
		m := Member{Name: mi.Name, Algorithm: mi.Algorithm, Round: mi.Round, Ref: mi.Ref}
		g, err := r.cfg.Trainer.LoadMember(ctx, m)
		if err != nil {
			return fmt.Errorf("itec: loading member %q: %w", mi.Name, err)
		}
		m.Model = g
		r.members[m.Name] = &m
	}
	if r.st.RewardRef != "" {
		rm, err := r.cfg.Rewards.LoadReward(ctx, r.st.RewardRef)
		if err != nil {
			return fmt.Errorf("itec: loading reward model %q: %w", r.st.RewardRef, err)
		}
		r.rm = rm
	}
	for round := 1; round <= r.st.Round; round++ {
		name := pairsFile(round)
		sum, ok := r.st.Files[name]
		if !ok {
			continue // validate checked that only this round's may lack
		}
		b, err := readVerified(r.cfg.Dir, name, sum)
		if err != nil {
			return err
		}
		pr := prefopt.NewReader(bytes.NewReader(b))
		n := 0
		for ; ; n++ {
			p, err := pr.Next()
			if err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				return corrupt("%s: %v", name, err)
			}
			r.pairs = append(r.pairs, p)
		}
		if want := r.st.History[round-1].NewPairs; n != want {
			return corrupt("%s holds %d pairs, %s says %d", name, n, stateFile, want)
		}
	}
	return nil
}

// commit writes state.json atomically: the step it records is done.
func (r *run) commit() error {
	b, err := encodeState(&r.st)
	if err != nil {
		return err
	}
	_, err = writeAtomic(r.cfg.Dir, stateFile, b)
	return err
}

// saveData writes a data file of this round and records its checksum; it
// becomes part of the checkpoint at the next commit.
func (r *run) saveData(name string, data []byte) error {
	sum, err := writeAtomic(r.cfg.Dir, name, data)
	if err != nil {
		return err
	}
	r.st.Files[name] = sum
	return nil
}

func (r *run) loadData(name string) ([]byte, error) {
	sum, ok := r.st.Files[name]
	if !ok {
		return nil, fmt.Errorf("itec: checkpoint lacks %s", name)
	}
	return readVerified(r.cfg.Dir, name, sum)
}

func (r *run) progress(s Step, done, total int) {
	if r.cfg.Progress != nil {
		r.cfg.Progress(Event{Round: r.st.Round, Step: s, Done: done, Total: total})
	}
}

func (r *run) committee() []Member {
	c := make([]Member, len(r.st.Committee))
	for i, n := range r.st.Committee {
		c[i] = *r.members[n]
	}
	return c
}

func (r *run) sampleOptions() SampleOptions {
	return SampleOptions{N: r.cfg.Samples, Workers: r.cfg.Workers, Seed: r.cfg.Seed, Round: r.st.Round,
		Executor: r.cfg.Executor, Step: r.st.Done + 1, RewardRef: r.st.RewardRef}
}

func (r *run) summary() *RoundSummary {
	h := &r.st.History
	if len(*h) == 0 || (*h)[len(*h)-1].Round != r.st.Round {
		*h = append(*h, RoundSummary{Round: r.st.Round, Committee: append([]string(nil), r.st.Committee...)})
	}
	return &(*h)[len(*h)-1]
}

// step performs the next step of the current round and commits it.
func (r *run) step(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	next := r.st.Done + 1
	round := r.st.Round
	cands, pairs, demos := candidatesFile(round), pairsFile(round), distilledFile(round)
	var err error
	switch next {
	case Collecting:
		err = r.collect(ctx, cands)
	case Labeling:
		err = r.label(ctx, cands, pairs)
	case Refreshing:
		r.progress(Refreshing, 0, 1)
		var ref string
		r.rm, ref, err = r.cfg.Rewards.Refresh(ctx, round, r.pairs)
		switch {
		case err != nil:
		case r.rm == nil:
			err = errors.New("itec: RewardTrainer.Refresh returned no reward model")
		case ref == "":
			err = errors.New("itec: RewardTrainer.Refresh returned an empty ref: a resumed run could not load the reward model")
		}
		r.st.RewardRef = ref
		r.progress(Refreshing, 1, 1)
	case Distilling:
		err = r.distill(ctx, demos)
	case Training:
		err = r.train(ctx, demos)
	case Evaluating:
		err = r.evaluate(ctx)
	case Choosing:
		r.choose()
	}
	if err != nil {
		return err
	}
	r.st.Done = next
	if next == Choosing {
		r.st.Round++
		r.st.Done = 0
	}
	return r.commit()
}

func (r *run) collect(ctx context.Context, name string) error {
	prompts := r.cfg.Prompts
	r.progress(Collecting, 0, len(prompts))
	opt := r.sampleOptions()
	var samples [][]Sample
	popt := r.cfg.Pairs
	popt.Seed, popt.Round = r.cfg.Seed, r.st.Round
	if r.rm == nil { // no reward model yet: nothing to rank by
		var err error
		if samples, err = Collect(ctx, r.committee(), prompts, opt); err != nil {
			return err
		}
		popt.Strategy = RandomPairs
	} else {
		sel, err := RejectionSample(ctx, r.committee(), r.rm, prompts, opt)
		if err != nil {
			return err
		}
		samples = sel.Samples
	}
	c, err := Candidates(prompts, samples, popt)
	if err != nil {
		return err
	}
	b, err := jsonLines(c)
	if err != nil {
		return err
	}
	r.summary()
	r.progress(Collecting, len(prompts), len(prompts))
	return r.saveData(name, b)
}

func (r *run) label(ctx context.Context, cname, pname string) error {
	b, err := r.loadData(cname)
	if err != nil {
		return err
	}
	cands, err := readLines[Candidate](b, cname)
	if err != nil {
		return err
	}
	logPath := filepath.Join(r.cfg.Dir, fmt.Sprintf("labels-r%d.log", r.st.Round))
	have, valid, err := readLabelLog(logPath)
	if err != nil {
		return err
	}
	for i, e := range have {
		if err := e.matches(cands, i); err != nil {
			return corrupt("label log %s: %v", filepath.Base(logPath), err)
		}
	}
	// Label only what the log lacks: a resumed run never asks twice.
	var todo []int
	for i := range cands {
		if _, ok := have[i]; !ok {
			todo = append(todo, i)
		}
	}
	lg, err := openLabelLog(logPath, valid)
	if err != nil {
		return err
	}
	defer lg.close()
	done := len(cands) - len(todo)
	r.progress(Labeling, done, len(cands))
	sub := make([]Candidate, len(todo))
	for j, i := range todo {
		sub[j] = cands[i]
	}
	// No request is issued while an answer already returned is not yet
	// synced to the log (see Run for the window that leaves). The gate
	// counts the answers of the run's Labeler, which an executor may call
	// (InProcess does) or not (a queue's label service answers instead).
	gated := newGatedLabeler(r.cfg.Labeler)
	asked := make([]bool, len(todo)) // whether the gate counted answer j
	ex := executorOr(r.cfg.Executor)
	ask := func(ctx context.Context, j int, c Candidate) (Preference, error) {
		l := labelerFunc(func(ctx context.Context, prompt, a, b string) (Preference, error) {
			p, err := gated.Label(ctx, prompt, a, b)
			asked[j] = err == nil && p.Level.Valid()
			return p, err
		})
		p, err := ex.Label(ctx, LabelTask{ID: LabelID(r.st.Round, todo[j]), Labeler: l, Candidate: c})
		if asked[j] && (err != nil || !p.Level.Valid()) {
			// The labeler answered but the executor failed after it
			// (a result store down, a cancelled wait): labelEach will
			// not log this answer, so nothing else would uncount it,
			// and every later request would wait for it forever.
			asked[j] = false
			gated.durable()
		}
		return p, err
	}
	_, err = labelEach(ctx, ask, sub, r.workers(), func(j int, p prefopt.Pair) error {
		e := loggedLabel{Index: todo[j], Prompt: p.Prompt, Chosen: p.Chosen, Rejected: p.Rejected, Level: p.Level.String()}
		err := lg.append(e)
		if asked[j] {
			gated.durable()
		}
		if err != nil {
			return err
		}
		if d, ok := r.cfg.Labeler.(DurableLabeler); ok {
			if err := d.Commit(ctx, sub[j].Prompt, sub[j].A, sub[j].B); err != nil {
				return fmt.Errorf("itec: committing label of candidate %d: %w", todo[j], err)
			}
		}
		have[todo[j]] = e
		done++
		r.progress(Labeling, done, len(cands))
		return nil
	})
	if err != nil {
		return err
	}
	out := make([]prefopt.Pair, len(cands))
	for i := range cands {
		e := have[i]
		out[i] = prefopt.Pair{Prompt: e.Prompt, Chosen: e.Chosen, Rejected: e.Rejected}
		if err := out[i].Level.UnmarshalText([]byte(e.Level)); err != nil {
			return corrupt("label log entry %d: %v", i, err)
		}
	}
	var buf bytes.Buffer
	w := prefopt.NewWriter(&buf)
	for _, p := range out {
		if err := w.Write(p); err != nil {
			return err
		}
	}
	if err := r.saveData(pname, buf.Bytes()); err != nil {
		return err
	}
	r.pairs = append(r.pairs, out...)
	r.summary().NewPairs = len(out)
	return nil
}

func (r *run) workers() int {
	if r.cfg.Workers > 0 {
		return r.cfg.Workers
	}
	return r.sampleOptions().withDefaults().Workers
}

func (r *run) distill(ctx context.Context, name string) error {
	r.progress(Distilling, 0, len(r.cfg.Prompts))
	sel, err := RejectionSample(ctx, r.committee(), r.rm, r.cfg.Prompts, r.sampleOptions())
	if err != nil {
		return err
	}
	b, err := jsonLines(sel.Choices)
	if err != nil {
		return err
	}
	s := r.summary()
	s.Wins = map[string]int{}
	for i, n := range r.st.Committee {
		s.Wins[n] = sel.Wins[i]
	}
	r.progress(Distilling, len(r.cfg.Prompts), len(r.cfg.Prompts))
	return r.saveData(name, b)
}

// train trains one member per algorithm, committing after each, so a
// resumed run retrains none that finished.
func (r *run) train(ctx context.Context, demosName string) error {
	b, err := r.loadData(demosName)
	if err != nil {
		return err
	}
	choices, err := readLines[Choice](b, demosName)
	if err != nil {
		return err
	}
	demos := make([]Demo, len(choices))
	for i, c := range choices {
		demos[i] = Demo{Prompt: c.Prompt, Response: c.Response}
	}
	s := r.summary()
	for ai, alg := range r.cfg.Algorithms {
		name := fmt.Sprintf("r%d-%s", r.st.Round, alg)
		if _, ok := r.members[name]; ok {
			continue // trained before an interruption
		}
		r.progress(Training, ai, len(r.cfg.Algorithms))
		m, err := r.cfg.Trainer.Train(ctx, TrainRequest{
			Round:     r.st.Round,
			Algorithm: alg,
			Seed:      Seed(r.cfg.Seed, r.st.Round, -2, ai, -2),
			Committee: r.committee(),
			Demos:     demos,
			Pairs:     r.pairs,
			Prompts:   r.cfg.Prompts,
			Reward:    r.rm,
		})
		if err != nil {
			return fmt.Errorf("itec: training %s in round %d: %w", alg, r.st.Round, err)
		}
		if m.Model == nil {
			return fmt.Errorf("itec: training %s in round %d returned no model", alg, r.st.Round)
		}
		m.Name, m.Algorithm, m.Round = name, alg, r.st.Round
		r.members[name] = &m
		r.st.Members = append(r.st.Members, MemberInfo{Name: name, Algorithm: alg, Round: r.st.Round, Ref: m.Ref})
		s.Trained = append(s.Trained, name)
		if err := r.commit(); err != nil {
			return err
		}
	}
	r.progress(Training, len(r.cfg.Algorithms), len(r.cfg.Algorithms))
	return nil
}

// evaluate scores every member not yet evaluated, committing after each.
func (r *run) evaluate(ctx context.Context) error {
	total := len(r.st.Members)
	for i := range r.st.Members {
		mi := &r.st.Members[i]
		r.progress(Evaluating, i, total)
		if mi.Eval != nil {
			continue
		}
		v, err := r.cfg.Evaluator.Evaluate(ctx, *r.members[mi.Name])
		if err != nil {
			return fmt.Errorf("itec: evaluating %q: %w", mi.Name, err)
		}
		mi.Eval = &v
		if err := r.commit(); err != nil {
			return err
		}
	}
	r.progress(Evaluating, total, total)
	return nil
}

// choose forms the next committee: the round's best new members and the
// best earlier ones, each group best first; ties keep the earlier member.
func (r *run) choose() {
	var fresh, old []MemberInfo
	for _, mi := range r.st.Members {
		if mi.Round == r.st.Round {
			fresh = append(fresh, mi)
		} else {
			old = append(old, mi)
		}
	}
	byEval := func(ms []MemberInfo) {
		sort.SliceStable(ms, func(i, j int) bool { return *ms[i].Eval > *ms[j].Eval })
	}
	byEval(fresh)
	byEval(old)
	latest, keep := r.cfg.Latest, r.cfg.KeepBest
	if latest <= 0 || latest > len(fresh) {
		latest = len(fresh)
	}
	switch {
	case keep == 0:
		keep = 2
	case keep < 0:
		keep = 0
	}
	keep = min(keep, len(old))
	var next []string
	for _, mi := range fresh[:latest] {
		next = append(next, mi.Name)
	}
	for _, mi := range old[:keep] {
		next = append(next, mi.Name)
	}
	r.summary().Next = next
	r.st.Committee = next
}

// labelerFunc is a Labeler as a function.
type labelerFunc func(ctx context.Context, prompt, a, b string) (Preference, error)

func (f labelerFunc) Label(ctx context.Context, prompt, a, b string) (Preference, error) {
	return f(ctx, prompt, a, b)
}

package itec

import (
	"fmt"
	"math"
	"regexp"
	"slices"
)

func candidatesFile(round int) string { return fmt.Sprintf("candidates-r%d.jsonl", round) }
func pairsFile(round int) string      { return fmt.Sprintf("pairs-r%d.jsonl", round) }
func distilledFile(round int) string  { return fmt.Sprintf("distilled-r%d.jsonl", round) }

var hexSHA256 = regexp.MustCompile(`^[0-9a-f]{64}$`)

// validate checks the invariants of a loaded state against itself and the
// run's Config, so that a state.json that is well-formed and checksummed
// but inconsistent (edited by hand, or written by a different Config) is an
// error wrapping ErrCheckpoint instead of a panic or a silently skipped
// step later on.
func (r *run) validate() error {
	st, cfg := &r.st, &r.cfg
	bad := func(format string, args ...any) error {
		return corrupt("%s: %s", stateFile, fmt.Sprintf(format, args...))
	}
	if st.Round < 1 {
		return bad("round %d, want ≥ 1", st.Round)
	}
	if st.Done < 0 || st.Done >= Choosing {
		return bad("done step %d outside [0, %d]", int(st.Done), int(Choosing)-1)
	}
	done := st.Done // the last step done in st.Round

	// Members: the initial ones first, as Config.Initial has them, then
	// trained ones named r<round>-<algorithm>, rounds non-decreasing.
	byName := map[string]*MemberInfo{}
	if len(st.Members) < len(cfg.Initial) {
		return bad("%d members, fewer than Config.Initial's %d", len(st.Members), len(cfg.Initial))
	}
	for i := range st.Members {
		mi := &st.Members[i]
		if _, dup := byName[mi.Name]; dup || mi.Name == "" {
			return bad("member %d: name %q empty or repeated", i, mi.Name)
		}
		byName[mi.Name] = mi
		if i < len(cfg.Initial) {
			in := cfg.Initial[i]
			if mi.Round != 0 || mi.Name != in.Name || mi.Algorithm != in.Algorithm {
				return bad("member %d is %q (%s, round %d); Config.Initial[%d] is %q (%s)", i, mi.Name, mi.Algorithm, mi.Round, i, in.Name, in.Algorithm)
			}
		} else {
			if mi.Round < 1 || mi.Round > st.Round || i > 0 && mi.Round < st.Members[i-1].Round {
				return bad("member %d (%q): round %d out of order", i, mi.Name, mi.Round)
			}
			if !slices.Contains(cfg.Algorithms, mi.Algorithm) {
				return bad("member %q: algorithm %q is not one of Config.Algorithms", mi.Name, mi.Algorithm)
			}
			if want := fmt.Sprintf("r%d-%s", mi.Round, mi.Algorithm); mi.Name != want {
				return bad("member %d is named %q, want %q", i, mi.Name, want)
			}
			if mi.Round == st.Round && done < Distilling {
				return bad("member %q trained in round %d before its distillation step", mi.Name, mi.Round)
			}
		}
		if mi.Eval != nil && (math.IsNaN(*mi.Eval) || math.IsInf(*mi.Eval, 0)) {
			return bad("member %q: evaluation %v", mi.Name, *mi.Eval)
		}
		if mi.Eval == nil && (max(mi.Round, 1) < st.Round || done >= Evaluating) {
			return bad("member %q: not evaluated, though its evaluation step is done", mi.Name)
		}
	}
	if done >= Training {
		n := 0
		for _, mi := range st.Members {
			if mi.Round == st.Round {
				n++
			}
		}
		if n != len(cfg.Algorithms) {
			return bad("round %d trained %d members, want one per algorithm (%d)", st.Round, n, len(cfg.Algorithms))
		}
	}

	// The committee: distinct members of earlier rounds.
	if err := r.validCommittee(st.Committee, byName, st.Round); err != nil {
		return bad("committee: %v", err)
	}

	// History: one summary per round begun, in order, chained by the
	// committees each chose.
	want := st.Round - 1
	if done >= Collecting {
		want++
	}
	if len(st.History) != want {
		return bad("%d round summaries for round %d, step %d done; want %d", len(st.History), st.Round, int(done), want)
	}
	for i := range st.History {
		h := &st.History[i]
		if h.Round != i+1 {
			return bad("summary %d is for round %d", i, h.Round)
		}
		if err := r.validCommittee(h.Committee, byName, h.Round); err != nil {
			return bad("round %d committee: %v", h.Round, err)
		}
		if i == 0 {
			for j, name := range h.Committee {
				if j >= len(cfg.Initial) || cfg.Initial[j].Name != name {
					return bad("round 1 committee %v is not Config.Initial", h.Committee)
				}
			}
		}
		last := h.Round == st.Round
		if !last && !slices.Equal(h.Next, nextCommittee(st, i)) {
			return bad("round %d chose %v, but round %d sampled with %v", h.Round, h.Next, h.Round+1, nextCommittee(st, i))
		}
		if last && !slices.Equal(h.Committee, st.Committee) {
			return bad("round %d sampled with %v, but the committee is %v", h.Round, h.Committee, st.Committee)
		}
		if last && h.Next != nil {
			return bad("round %d chose a committee before its last step", h.Round)
		}
		if h.NewPairs < 0 || (last && done < Labeling && h.NewPairs != 0) {
			return bad("round %d: %d new pairs", h.Round, h.NewPairs)
		}
		for name, w := range h.Wins {
			if w < 0 || !slices.Contains(h.Committee, name) {
				return bad("round %d: %d wins for %q, not on that committee", h.Round, w, name)
			}
		}
		for _, name := range h.Trained {
			if mi, ok := byName[name]; !ok || mi.Round != h.Round {
				return bad("round %d trained %q, which is not a member of that round", h.Round, name)
			}
		}
	}
	// The reward model exists from round 1's refresh on.
	if hasRM := st.Round > 1 || done >= Refreshing; hasRM != (st.RewardRef != "") {
		return bad("reward model ref %q at round %d, step %d done", st.RewardRef, st.Round, int(done))
	}

	// Data files: exactly those of the steps done, each with a SHA-256.
	files := map[string]bool{}
	for round := 1; round <= st.Round; round++ {
		d := Step(Choosing)
		if round == st.Round {
			d = done
		}
		if d >= Collecting {
			files[candidatesFile(round)] = true
		}
		if d >= Labeling {
			files[pairsFile(round)] = true
		}
		if d >= Distilling {
			files[distilledFile(round)] = true
		}
	}
	for name, sum := range st.Files {
		if !files[name] {
			return bad("lists %s, which no step done wrote", name)
		}
		if !hexSHA256.MatchString(sum) {
			return bad("checksum of %s is not a SHA-256 in hex", name)
		}
	}
	for name := range files {
		if _, ok := st.Files[name]; !ok {
			return bad("lacks %s, which a step done wrote", name)
		}
	}
	if st.Files == nil {
		st.Files = map[string]string{}
	}
	return nil
}

// nextCommittee is the committee the round after History[i] sampled with.
func nextCommittee(st *State, i int) []string {
	if i+1 < len(st.History) {
		return st.History[i+1].Committee
	}
	return st.Committee
}

// validCommittee checks that names are distinct members, trained before
// round.
func (r *run) validCommittee(names []string, byName map[string]*MemberInfo, round int) error {
	if len(names) == 0 {
		return fmt.Errorf("empty")
	}
	seen := map[string]bool{}
	for _, n := range names {
		mi, ok := byName[n]
		switch {
		case !ok:
			return fmt.Errorf("%q is not a member", n)
		case seen[n]:
			return fmt.Errorf("%q appears twice", n)
		case mi.Round >= round:
			return fmt.Errorf("%q was trained in round %d, not before round %d", n, mi.Round, round)
		}
		seen[n] = true
	}
	return nil
}

// matches checks a logged label against the candidate it answers.
func (e loggedLabel) matches(cands []Candidate, i int) error {
	if i < 0 || i >= len(cands) || e.Index != i {
		return fmt.Errorf("label for candidate %d of %d", e.Index, len(cands))
	}
	c := cands[i]
	if e.Prompt != c.Prompt || !(e.Chosen == c.A && e.Rejected == c.B || e.Chosen == c.B && e.Rejected == c.A) {
		return fmt.Errorf("label for candidate %d does not match the candidate", i)
	}
	return nil
}

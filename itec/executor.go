package itec

import (
	"context"
	"fmt"
)

// An Executor runs the loop's units of work — a member's samples for one
// prompt, the reward model's scores for one prompt, one label — wherever
// they run: in this process (InProcess, the default) or on a fleet of
// workers behind a durable queue (the posttrain/jetstream module). Run,
// Collect and RejectionSample call it from up to Workers goroutines at once
// and assemble the results in a fixed order, so the executor changes where
// the work happens, never what the run computes.
//
// Every task carries a stable ID derived from its coordinates (see
// GenerateID, ScoreID, LabelID): an executor that keeps results keyed by ID
// can ignore a redelivered task's duplicate result and answer a resumed run
// from what it already has, without sampling again or asking for a label
// twice. IDs are unique within one run; an executor shared by several runs
// qualifies them with the run's name.
type Executor interface {
	Generate(ctx context.Context, t GenerateTask) ([]string, error)
	Score(ctx context.Context, t ScoreTask) ([]float64, error)
	Label(ctx context.Context, t LabelTask) (Preference, error)
}

// GenerateTask asks committee member Member for one response per seed.
type GenerateTask struct {
	ID     string
	Member Member // Name, Algorithm, Round and Ref identify it; Model samples in process
	Prompt string
	Seeds  []uint64
}

// ScoreTask asks the reward model for the scores of a prompt's responses.
type ScoreTask struct {
	ID        string
	Reward    Scorer // the model, for an in-process executor
	RewardRef string // the RewardTrainer's handle of the same model, for remote ones
	Prompt    string
	Responses []string
}

// LabelTask asks for a preference between two responses.
type LabelTask struct {
	ID        string
	Labeler   Labeler // the run's labeler, for an in-process executor
	Candidate Candidate
}

// GenerateID is the ID of member number m's (named name) samples
// first … first+n−1 for prompt p in round. It names no step: collection
// and distillation sample the same seeds (see Seed), so their samples are
// the same task, and an executor that keeps results computes them once.
func GenerateID(round, p, m int, name string, first, n int) string {
	return fmt.Sprintf("r%d/sample/p%d/m%d=%s/s%d+%d", round, p, m, name, first, n)
}

// ScoreID is the ID of the reward model's scores for prompt p's samples in
// a step of round; rewardRef tells refreshed reward models apart.
func ScoreID(round int, step Step, p int, rewardRef string) string {
	return fmt.Sprintf("r%d/%s/p%d/score=%s", round, step, p, rewardRef)
}

// LabelID is the ID of the label of candidate number c in round.
func LabelID(round, c int) string {
	return fmt.Sprintf("r%d/%s/c%d", round, Labeling, c)
}

// InProcess is the Executor that calls the models directly, in this
// process: Member.Model, ScoreTask.Reward and LabelTask.Labeler.
type InProcess struct{}

// Generate implements Executor.
func (InProcess) Generate(ctx context.Context, t GenerateTask) ([]string, error) {
	return t.Member.Model.Generate(ctx, t.Prompt, t.Seeds)
}

// Score implements Executor.
func (InProcess) Score(ctx context.Context, t ScoreTask) ([]float64, error) {
	return t.Reward.Score(ctx, t.Prompt, t.Responses)
}

// Label implements Executor.
func (InProcess) Label(ctx context.Context, t LabelTask) (Preference, error) {
	return t.Labeler.Label(ctx, t.Candidate.Prompt, t.Candidate.A, t.Candidate.B)
}

func executorOr(e Executor) Executor {
	if e == nil {
		return InProcess{}
	}
	return e
}

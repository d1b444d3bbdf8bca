package jetstream

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"

	"github.com/posttrain/posttrain/distill/cache"
	"github.com/posttrain/posttrain/itec"
)

// Task kinds.
const (
	kindGenerate = "generate"
	kindScore    = "score"
	kindLabel    = "label"
	kindPredict  = "predict"
)

// task is a unit of work as it travels through the queue, JSON-encoded.
type task struct {
	ID   string `json:"id"`            // the itec task ID
	Key  string `json:"key,omitempty"` // see key
	Kind string `json:"kind"`
	// MaxDeliver is Options.MaxDeliver: a delivery past it means the
	// workers of every earlier one crashed or timed out.
	MaxDeliver int       `json:"max_deliver,omitempty"`
	Prompt     string    `json:"prompt"`
	Seeds      []uint64  `json:"seeds,omitempty"`
	Model      *ModelRef `json:"model,omitempty"` // the member (generate) or reward model (score)
	Responses  []string  `json:"responses,omitempty"`
	A          string    `json:"a,omitempty"`
	B          string    `json:"b,omitempty"`
	// predict: a batch of a corpus for the teacher
	Tokens []int32       `json:"tokens,omitempty"`
	First  int64         `json:"first,omitempty"`
	Format *cache.Format `json:"format,omitempty"`
}

// ModelRef identifies a committee member or reward model to a worker.
type ModelRef struct {
	Name      string         `json:"name"` // the member's name; empty for a reward model
	Algorithm itec.Algorithm `json:"algorithm,omitempty"`
	Round     int            `json:"round,omitempty"`
	Ref       string         `json:"ref"` // the trainer's handle
	// Object is the SHA-256 (hex) of the checkpoint file Ref named on the
	// coordinator, stored under that name in the object store; empty if
	// Ref names no file.
	Object string `json:"object,omitempty"`
	// Dir says Ref names a directory, stored as a canonical tar.
	Dir bool `json:"dir,omitempty"`
}

// key is the model's cache key on a worker.
func (m ModelRef) key() string {
	if m.Object != "" {
		return "obj:" + m.Object
	}
	return "ref:" + m.Ref
}

// result is a task's outcome, stored in the results bucket under the
// task's key. A result with Dead set is a dead letter: the task failed
// MaxDeliver times or failed for good.
type result struct {
	ID         string            `json:"id"`
	Texts      []string          `json:"texts,omitempty"`
	Scores     []float64         `json:"scores,omitempty"`
	Preference *itec.Preference  `json:"preference,omitempty"`
	Prediction *cache.Prediction `json:"prediction,omitempty"`
	Err        string            `json:"err,omitempty"`
	Dead       bool              `json:"dead,omitempty"`
	Deliveries uint64            `json:"deliveries,omitempty"` // of the task when the result was stored
	Worker     string            `json:"worker,omitempty"`
}

func (r *result) err() error {
	if !r.Dead {
		return nil
	}
	return &TaskError{ID: r.ID, Deliveries: r.Deliveries, Worker: r.Worker, Cause: r.Err}
}

// TaskError is a dead letter: a task that failed on every delivery, or for
// good, as a worker or the server reported it.
type TaskError struct {
	ID         string // the itec task ID
	Deliveries uint64
	Worker     string // the worker that gave up, if one did
	Cause      string
}

// Error says which task failed, after how many deliveries, on which
// worker, and why.
func (e *TaskError) Error() string {
	s := fmt.Sprintf("jetstream: task %s failed after %d deliveries", e.ID, e.Deliveries)
	if e.Worker != "" {
		s += " (last on worker " + e.Worker + ")"
	}
	return s + ": " + e.Cause
}

// key is the task's subject token and result key: its ID and the digest of
// the checkpoint it runs, hashed (IDs hold characters subjects and keys may
// not). A member retrained under the same name in the same run is a new
// checkpoint, so its tasks are new tasks, never answered from the old one's
// results.
func (t *task) key() string {
	if t.Key != "" {
		return t.Key
	}
	obj := ""
	if t.Model != nil {
		obj = t.Model.Object
	}
	return taskKey(t.ID, obj)
}

func taskKey(id, object string) string {
	h := sha256.Sum256([]byte(id + "\x00" + object))
	return hex.EncodeToString(h[:16])
}

var runName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// names are a run's streams, buckets and subjects.
type names struct {
	run                 string
	tasks, results      string // stream, KV bucket
	work, label         string // subject prefixes, ending in "."
	workCons, labelCons string
}

func namesOf(run string) (names, error) {
	if !runName.MatchString(run) {
		return names{}, fmt.Errorf("jetstream: run name %q: want 1 to 64 letters, digits, '-' or '_'", run)
	}
	return names{
		run:       run,
		tasks:     "PT_TASKS_" + run,
		results:   "PT_RESULTS_" + run,
		work:      "pt." + run + ".work.",
		label:     "pt." + run + ".label.",
		workCons:  "work",
		labelCons: "label",
	}, nil
}

// ModelBucket is the object store bucket of checkpoints, shared by runs:
// objects are named by their SHA-256, so a checkpoint is stored once.
const ModelBucket = "PT_MODELS"

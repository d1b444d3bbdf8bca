// Package itec implements AFM's iterative teaching committee (Apple,
// "Apple Intelligence Foundation Language Models", 2024, §5.1): post-training
// in rounds, where the data each round trains on comes from the best of a
// whole committee of models rather than from one model.
//
// # A round
//
//  1. Collect: every committee member — the latest promising models,
//     trained with SFT, rejection sampling, DPO, IPO and online RL, plus
//     the best models of earlier rounds — samples responses to the prompts.
//  2. Label: pairs of those responses go to a Labeler (human annotators in
//     AFM, a programmatic oracle in experiments), which answers on AFM's
//     four-point scale (prefopt.Level).
//  3. Refresh: the reward model is retrained on every label so far.
//  4. Distill: committee rejection sampling. Per prompt, every member's
//     samples are scored by the refreshed reward model and the single best
//     response, whoever produced it, becomes fine-tuning data. The choice is
//     made per prompt, not by picking one best model: a committee whose
//     members are strong on different prompts yields data better than any
//     member's own best-of-N (the tests show this on a synthetic world).
//  5. Train: one new member per algorithm, on the distilled data, the
//     labels or the reward model.
//  6. Evaluate the new members, and choose the next committee: the best new
//     members plus the best earlier ones.
//
// AFM reports that the algorithms complement each other: online RL, DPO
// and IPO were better at math, rejection sampling at instruction following.
// That is why the committee keeps members of every kind.
//
// # Plugging models in
//
// The package talks to models only through small interfaces — Generator,
// Scorer, Labeler, Trainer, RewardTrainer, Evaluator — so any model, in Go
// or behind an RPC, can sit behind them. RejectionSample, Candidates and
// Label are usable on their own; Run drives whole rounds.
//
// # Determinism and checkpoints
//
// Every sample's seed is derived from the run's seed and the sample's
// round, prompt, member and index (Seed), and ties are broken by member and
// sample order, so results do not depend on the number of workers. Run
// commits its state to a directory after every step, writing each file
// whole (temporary file, sync, rename) with its SHA-256 recorded, and
// state.json checksummed and checked for consistency on load; labels are
// appended to a log as they arrive, one synced, checksummed line each,
// before the next request goes out. A run killed at any point and started
// again continues where it stopped, never asks again for a label it logged,
// and ends in the same state as one never interrupted; only answers in
// flight at the kill (at most one per worker) are asked again, and none
// with a DurableLabeler. A damaged checkpoint is an error wrapping
// ErrCheckpoint. Run locks its directory, so a second run on it fails with
// ErrLocked instead of corrupting it.
package itec

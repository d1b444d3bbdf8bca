// Package jetstream runs posttrain's embarrassingly parallel work —
// committee sampling, reward-model scoring and labeling for iTeC (package
// itec), teacher predictions over a corpus (package distill/cache) — on a
// fleet of workers, through NATS JetStream (https://docs.nats.io/nats-concepts/jetstream).
// It lives in its own module so that importing posttrain's core packages
// never pulls nats-server into a build.
//
// # The queue
//
// Executor implements itec.Executor and, through Executor.Teacher,
// cache.Executor: the same itec.Run and cache.Precompute that compute in
// process hand their units of work to it instead (itec.Config.Executor,
// cache.Distribute). Each unit is a task with a stable ID from its
// coordinates — round, prompt, member and samples; round and candidate;
// corpus and batch — published to a work-queue stream (WorkQueue
// retention, explicit acks). Workers pull one task at a time per slot,
// heartbeat while they work (in-progress acks, so a long generation is not
// mistaken for a dead worker), store the result in a key-value bucket under
// the task's ID, and only then acknowledge. A task not acknowledged within
// AckWait is delivered again, to any worker; after MaxDeliver failed tries
// it becomes a dead letter — written by the worker that gave up, by the
// worker that receives a delivery past MaxDeliver (every earlier worker
// crashed), or from the server's max-deliveries advisory if none is left —
// and the waiting call returns a *TaskError naming the task. A coordinator
// started again retries the dead letters of its predecessor.
//
// Because results are kept by task ID (with the digest of the checkpoint
// the task runs, so a retrained member is new work), the first result wins
// and a redelivered task's duplicate is ignored; and a coordinator that is
// killed and restarted asks for each task again: a task with a result is
// answered from it, a task still queued is waited for, and only a task in
// neither place is published. Nothing is computed twice and no label is
// asked twice — which closes the window that in-process labeling leaves
// between a labeler's answer and its line in itec's label log, as long as
// labels are answered by a label service (a Worker with a Labeler) rather
// than by the coordinator itself.
//
// # Determinism
//
// Every sample's seed is itec.Seed of the run's seed and the task's
// coordinates, carried in the task; results are assembled in a fixed order.
// A distributed run therefore ends in exactly the state of a single-process
// run with the same seed, whatever the number of workers or redeliveries
// (the tests compare the checkpoint directories byte for byte).
//
// # Checkpoints
//
// A member's or reward model's Ref that names a file on the coordinator is
// stored once in the object store (bucket ModelBucket) under its SHA-256.
// A worker fetches it on first use, checks the bytes against the name (the
// object store checks its own digest of the chunks too), keeps it in its
// cache directory, checks the cached copy again when it next starts, and
// loads it with its Loader once per process. A corrupt checkpoint fails its
// task at once with an error naming it. A Ref naming a directory (a
// transformers checkpoint) travels as one canonical tar. TinyLM loads
// nn.TinyLM files, HF transformers directories; another format is another
// Loader.
//
// # Servers
//
// Dial with no URL starts an embedded nats-server with JetStream, its store
// in the run's directory, no listening port and an in-process connection:
// one machine, the same code path, durable.
//
// # Durability
//
// Results are the record of finished work; tasks are only the work still
// to do, which a coordinator publishes again for any task it waits on that
// is neither queued nor answered. So the results bucket is written as the
// server is configured, and the work stream is not fsynced write by write
// (AsyncPersistMode). Dial's embedded server fsyncs every write (Sync):
// a stored result or label survives a power loss, and a task costs one
// fsync, its result's. A crash of the process — the coordinator with its
// embedded server, SIGKILLed — loses no result at all; it may lose the last
// milliseconds of published tasks and acknowledgements, and the
// consumers' record of recent deliveries, so tasks come back: they are
// published again, answered from their results, or — if a worker is still
// running one — waited for by that worker instead of run twice. Without
// Sync, a power loss can lose the results of the last two minutes
// (nats-server's sync_interval), which are computed again, deterministically —
// but a label lost so is asked again. Executor.Delete removes a finished
// run's queue and results. StartServer with Listen lets
// worker processes join (cmd/posttrain-worker), and with Cluster and Routes
// forms a JetStream cluster; Options.Replicas replicates the streams.
package jetstream

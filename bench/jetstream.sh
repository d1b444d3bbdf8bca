#!/usr/bin/env bash
# Measures the JetStream executor's figures (the jetstream module): the
# per-task overhead on the loopback (publish → worker ack → result, median,
# goal ≤ 1 ms) with and without Sync (one fsync per task, the result's),
# and the speed-up of two posttrain-worker processes over one on a
# CPU-bound TinyLM sampling workload, with responses of 48 and of 112
# tokens (goal ≥ 1.8x on 2 cores). The worker counts alternate within
# each round so that a change in the machine's load hits both alike; the
# script prints the median of ROUNDS rounds. There is no external anchor:
# the baseline is one worker.
#
#   bench/jetstream.sh [ROUNDS]      # default 5
set -euo pipefail
cd "$(dirname "$0")/../jetstream"
rounds=${1:-5}

# metric UNIT: "name value" for each benchmark line reporting UNIT.
metric() {
	awk -v unit="$1" '/^Benchmark/ { n=$1; sub(/-[0-9]+$/, "", n); for (i=2;i<NF;i++) if ($(i+1)==unit) print n, $i }'
}
# median NAME < "name value" lines
median() { awk -v n="$1" '$1==n {print $2}' | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

echo "== per-task overhead (2000 tasks, one at a time; median of $rounds rounds)"
out=$(go test -run '^$' -bench 'Overhead' -benchtime 2000x -count "$rounds" . | metric 'median-µs/task')
for n in BenchmarkOverhead/sync=off BenchmarkOverhead/sync=on; do
	printf '%-28s %s µs median round trip (rounds: %s)\n' "$n" "$(median "$n" <<<"$out")" "$(awk -v n="$n" '$1==n {printf "%s ", $2}' <<<"$out")"
done

# workers LEN: two worker processes against one, responses of LEN tokens.
workers() {
echo "== two worker processes vs one (TinyLM sampling, 64 responses of $1 tokens an op; median of $rounds rounds)"
raw=$(JETSTREAM_BENCH_LEN=$1 go test -run '^$' -bench 'Workers' -benchtime 5x -count "$rounds" .)
out=$(metric 'samples/s' <<<"$raw")
one=$(median BenchmarkWorkers/procs=1 <<<"$out")
two=$(median BenchmarkWorkers/procs=2 <<<"$out")
echo "procs=1: $one samples/s; procs=2: $two samples/s"
awk -v a="$one" -v b="$two" 'BEGIN { printf "wall-clock speed-up, 2 workers vs 1: %.2fx (goal ≥ 1.8x)\n", b/a }'
# On a machine shared with other work, wall-clock speed-up measures CPU
# shares. The CPU time per sample does not: with w for a worker and c for
# the coordinator and server, one worker runs at 1/w (the coordinator on
# the other core) and two share both cores at 2/(w + c).
w=$(metric 'worker-cpu-ms/sample' <<<"$raw" | sed 's/procs=[12]/all/' | median BenchmarkWorkers/all)
c=$(metric 'coord-cpu-ms/sample' <<<"$raw" | sed 's/procs=[12]/all/' | median BenchmarkWorkers/all)
echo "CPU per sample: worker $w ms, coordinator and server $c ms"
awk -v w="$w" -v c="$c" 'BEGIN { printf "speed-up on 2 idle cores from CPU time, 2w/(w+c): %.2fx\n", 2*w/(w+c) }'
}
# 48 tokens is about 2 ms of sampling a response, where the coordinator's
# fixed cost per task shows; 112 tokens (the most the 128-token context
# takes after the prompt) is closer to a committee member's real responses.
workers 48
workers 112

#!/usr/bin/env bash
# Measures the JetStream executor's figures (the jetstream module): the
# per-task overhead on the loopback (publish → worker ack → result, median,
# goal ≤ 1 ms) with and without fsync per write, and the speed-up of two
# posttrain-worker processes over one on a CPU-bound TinyLM sampling
# workload (goal ≥ 1.8x on 2 cores). The worker counts alternate within
# each round so that a change in the machine's load hits both alike; the
# script prints the median of ROUNDS rounds. There is no external anchor:
# the baseline is one worker.
#
#   bench/jetstream.sh [ROUNDS]      # default 5
set -euo pipefail
cd "$(dirname "$0")/../jetstream"
rounds=${1:-5}

echo "== per-task overhead (2000 tasks, one at a time)"
go test -run '^$' -bench 'Overhead' -benchtime 2000x -count "$rounds" . |
	awk '/^BenchmarkOverhead/ { n=$1; sub(/-[0-9]+$/, "", n); for (i=2;i<=NF;i++) if ($(i+1)=="median-µs/task") v[n]=v[n] " " $i }
	END { for (n in v) { k=split(v[n], a, " "); asort(a); printf "%-32s median %s µs (rounds:%s)\n", n, a[int((k+1)/2)], v[n] } }'

echo "== two worker processes vs one (TinyLM sampling, 64 samples a round)"
go test -run '^$' -bench 'Workers' -benchtime 5x -count "$rounds" . |
	awk '/^BenchmarkWorkers/ { n=$1; sub(/-[0-9]+$/, "", n); for (i=2;i<=NF;i++) if ($(i+1)=="samples/s") v[n]=v[n] " " $i }
	END { for (n in v) { k=split(v[n], a, " "); asort(a); m[n]=a[int((k+1)/2)]; printf "%-32s median %s samples/s (rounds:%s)\n", n, m[n], v[n] }
	      r1=m["BenchmarkWorkers/procs=1"]; r2=m["BenchmarkWorkers/procs=2"]
	      if (r1 > 0) printf "speed-up, 2 workers vs 1: %.2fx (goal ≥ 1.8x)\n", r2/r1 }'

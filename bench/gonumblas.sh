#!/usr/bin/env bash
# Sgemm through gonum's blas32 with posttrain's implementation
# (tensor/gonumblas) against gonum's native one, in one run, and the ratio.
# Go only; not part of CI.
#
#   bench/gonumblas.sh [BENCHTIME]    # default 1s per size
set -euo pipefail
cd "$(dirname "$0")/.."
echo "$(nproc) cores; $(date -u +%Y-%m-%d)"
go test -run '^$' -bench '^BenchmarkSgemm$' -benchtime "${1:-1s}" -count 1 ./tensor/gonumblas/ |
	awk '/^BenchmarkSgemm/ {
		split($1, p, "/"); impl = p[2]; n = p[3]; sub(/-[0-9]+$/, "", n)
		for (i = 2; i < NF; i++) if ($(i+1) == "GFLOPS") g[impl, n] = $i
		if (!(n in seen)) { seen[n] = 1; order[++ns] = n }
	}
	END {
		printf "%-10s %18s %14s %8s\n", "n³", "posttrain GFLOPS", "gonum GFLOPS", "ratio"
		for (i = 1; i <= ns; i++) { n = order[i]; printf "%-10s %18.1f %14.1f %7.1fx\n", n, g["posttrain", n], g["gonum", n], g["posttrain", n] / g["gonum", n] }
	}'

#!/bin/sh
# gemm_compare.sh: posttrain's Gemm against NumPy's BLAS (OpenBLAS when
# Debian's libopenblas0 provides libblas.so.3), both on the same number of
# threads, run back to back. Prints GFLOPS for both and their ratio.
#
#   bench/gemm_compare.sh [threads]    (default 2)
#
# Both sides take the best of several runs; on a shared machine the
# figures are noisy, so compare ratios from one run, not across runs.
set -eu
cd "$(dirname "$0")/.."
T=${1:-2}
PY=${PYTHON:-/usr/bin/python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

go test ./tensor -run '^$' -bench '^BenchmarkGemm$' -benchtime 1s -count 3 -cpu "$T" |
	awk '/GFLOPS/ { split($1, p, "/"); sub(/-[0-9]+$/, "", p[2]);
		for (i = 1; i < NF; i++) if ($(i+1) == "GFLOPS") g = $i;
		if (g > best[p[2]]) best[p[2]] = g }
		END { for (s in best) print s, best[s] }' >"$tmp/go"
OPENBLAS_NUM_THREADS=$T OMP_NUM_THREADS=$T MKL_NUM_THREADS=$T "$PY" bench/gemm_numpy.py >"$tmp/np"
# Debian's numpy calls whatever libblas.so.3 the alternatives system picks.
blas=$(readlink -f /usr/lib/*/libblas.so.3 2>/dev/null | head -n 1)
blas=${blas:-unknown}

echo "threads: $T   numpy BLAS: $blas"
printf '%-18s %10s %10s %7s\n' shape posttrain numpy ratio
while read -r shape np; do
	go=$(awk -v s="$shape" '$1 == s { print $2 }' "$tmp/go")
	[ -n "$go" ] || continue
	awk -v s="$shape" -v g="$go" -v n="$np" 'BEGIN { printf "%-18s %10.1f %10.1f %7.2f\n", s, g, n, g / n }'
done <"$tmp/np"

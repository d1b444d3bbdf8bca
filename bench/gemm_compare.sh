#!/bin/sh
# gemm_compare.sh: posttrain's Gemm against NumPy's BLAS (OpenBLAS when
# Debian's libopenblas0 provides libblas.so.3), both on the same number of
# threads. Prints the best GFLOPS of each side and their ratio.
#
#   bench/gemm_compare.sh [threads [rounds]]    (defaults 2 and 3)
#
# On a shared machine the load changes from one second to the next, so the
# two sides alternate for several rounds, and each keeps its best figure
# over windows of about 250 ms (Go: -benchtime 250ms -count 5 per round;
# NumPy: five timed windows of 250 ms per round).
#
# The OpenBLAS kernel is OpenBLAS's own choice unless that is a pre-AVX-512
# one on an AVX-512 CPU (bench/openblas.sh); the script prints which ran.
set -eu
cd "$(dirname "$0")/.."
T=${1:-2}
R=${2:-3}
PY=${PYTHON:-/usr/bin/python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

. bench/openblas.sh
echo "$OPENBLAS_NOTE"
# Debian's numpy calls whatever libblas.so.3 the alternatives system picks.
blas=$(readlink -f /usr/lib/*/libblas.so.3 2>/dev/null | head -n 1)
core=$(OPENBLAS_VERBOSE=2 OPENBLAS_NUM_THREADS=1 "$PY" -c 'import numpy; numpy.ones((2, 2), numpy.float32) @ numpy.ones((2, 2), numpy.float32)' 2>&1 | tr '\n' ' ')

go test -c -o "$tmp/tensor.test" ./tensor
: >"$tmp/go"
: >"$tmp/np"
i=0
while [ "$i" -lt "$R" ]; do
	"$tmp/tensor.test" -test.run '^$' -test.bench '^BenchmarkGemm$' -test.benchtime 250ms -test.count 5 -test.cpu "$T" |
		awk '/GFLOPS/ { split($1, p, "/"); sub(/-[0-9]+$/, "", p[2]);
			for (i = 1; i < NF; i++) if ($(i+1) == "GFLOPS") print p[2], $i }' >>"$tmp/go"
	OPENBLAS_NUM_THREADS=$T OMP_NUM_THREADS=$T MKL_NUM_THREADS=$T "$PY" bench/gemm_numpy.py >>"$tmp/np"
	i=$((i + 1))
done

echo "threads: $T   rounds: $R   numpy BLAS: ${blas:-unknown}   OpenBLAS: ${core:-?}"
printf '%-18s %10s %10s %7s\n' shape posttrain numpy ratio
awk 'FNR == NR { if ($2 > g[$1]) g[$1] = $2; next }
	{ if (!($1 in seen)) order[++n] = $1; seen[$1] = 1; if ($2 > np[$1]) np[$1] = $2 }
	END { for (i = 1; i <= n; i++) { s = order[i]; if (s in g)
		printf "%-18s %10.1f %10.1f %7.2f\n", s, g[s], np[s], g[s] / np[s] } }' "$tmp/go" "$tmp/np"

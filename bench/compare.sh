#!/usr/bin/env bash
# Runs posttrain's benchmarks and the same workloads in NumPy/OpenBLAS and
# PyTorch eager in one go, and prints the ratios the issues set as goals.
#
#   bench/compare.sh                 # every section
#   bench/compare.sh kernels gemm    # some sections
#
# Needs Debian's python3-numpy and python3-torch (apt-get install -y
# python3-numpy python3-torch); not part of CI. Sections: kernels gemm bf16
# distill prefopt tinylm.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=/usr/bin/python3
"$PY" -c 'import numpy, torch' 2>/dev/null || {
	echo "compare.sh: needs Debian's python3-numpy and python3-torch" >&2; exit 1; }

# Debian 12's OpenBLAS 0.3.21 predates Zen 4 and falls back to its Prescott
# (SSE3) kernels there, about 18 GFLOPS. Pin its fastest AVX-512 kernels so
# that the anchor is the strongest OpenBLAS this machine can run.
unset OPENBLAS_L2_SIZE
if grep -q avx512f /proc/cpuinfo && [ -z "${OPENBLAS_CORETYPE:-}" ]; then
	export OPENBLAS_CORETYPE=SkylakeX
fi
anchor() { (cd /tmp && "$PY" "$OLDPWD/bench/anchor.py" "$@") | awk '{print $2}'; }

# gobench PKG PATTERN [BENCHTIME]: prints "name ns/op" for each benchmark.
gobench() {
	go test -run '^$' -bench "$2" -benchtime "${3:-1s}" -count 1 "$1" |
		awk '/^Benchmark/ { name=$1; sub(/-[0-9]+$/, "", name); for (i=2;i<=NF;i++) if ($(i+1)=="ns/op") print name, $i }'
}
# ns NAME: ns/op of benchmark NAME from the last gobench output in $OUT.
ns() { awk -v n="$1" '$1==n {print $2}' <<<"$OUT"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a/b }'; }
row() { printf '%-44s %12s %12s %8sx   goal %s\n' "$@"; }
header() { printf '\n%s\n' "$1"; row "workload" "posttrain" "anchor" "ratio" ""; }

TIER=$(go run ./examples/kernels -quick -n 64 | awk -F': ' '/tier in use/ {split($2, a, " "); print a[1]}')
echo "posttrain kernel tier: $TIER; $(nproc) cores; $(date -u +%Y-%m-%dT%H:%MZ)"
echo "OpenBLAS core type: ${OPENBLAS_CORETYPE:-auto}"

section_kernels() {
	header "kernels (one goroutine)"
	OUT=$(gobench ./tensor/ '^Benchmark(Exp|Dot)$/' 1s; gobench ./tensor/ '^BenchmarkLogSoftmaxRows$' 5x)
	for k in Exp Dot; do
		for s in 49152 4M; do
			g=$(ns "Benchmark$k/generic/$s"); t=$(ns "Benchmark$k/$TIER/$s")
			row "$k $s: $TIER vs purego twin" "$(ratio "$t" 1e3) µs" "$(ratio "$g" 1e3) µs" "$(ratio "$g" "$t")" "≥ 4"
		done
	done
	t=$(ns "BenchmarkExp/$TIER/4M"); a=$(anchor exp)
	row "Exp 4M vs np.exp float32" "$(ratio "$t" 1e6) ms" "$a ms" "$(ratio "$a" "$(ratio "$t" 1e6)")" "≥ 1.0"
	t=$(ns "BenchmarkLogSoftmaxRows/$TIER/512x49152"); a=$(anchor logsoftmax)
	row "LogSoftmax 512x49152, 1 thread vs torch" "$(ratio "$t" 1e6) ms" "$a ms" "$(ratio "$a" "$(ratio "$t" 1e6)")" "≥ 2"
}

section_gemm() {
	printf '\nGemm, 2 threads each (best of alternating rounds: bench/gemm_compare.sh)\n'
	sh bench/gemm_compare.sh 2 3
}

section_bf16() {
	printf '\nbfloat16 GEMM and matrix-vector, 2 threads (bench/bf16_compare.sh)\n'
	sh bench/bf16_compare.sh 2 3
}

section_distill() {
	header "distill.ConvexCombination, loss and gradient, [2048 x 49152], 2 threads"
	OUT=$(gobench ./distill/ '^Benchmark(ConvexCombination|Copy)$/^2048x49152$' 5x)
	t=$(ns BenchmarkConvexCombination/2048x49152); c=$(ns BenchmarkCopy/2048x49152); a=$(anchor convex)
	row "vs torch log_softmax+gather+backward" "$(ratio "$t" 1e6) ms" "$a ms" "$(ratio "$a" "$(ratio "$t" 1e6)")" "≥ 8"
	# The bound: logits read twice and the gradient written once, 12 bytes
	# per logit, at the copy bandwidth (8 bytes per element copied).
	bound=$(awk -v c="$c" 'BEGIN { printf "%.1f", c * 12 / 8 / 1e6 }')
	row "vs memory-bandwidth bound (copy: $(awk -v c="$c" 'BEGIN { printf "%.1f", 8*2048*49152/c }') GB/s)" "$(ratio "$t" 1e6) ms" "$bound ms" "$(ratio "$bound" "$(ratio "$t" 1e6)")" "≥ 0.5"
}

section_prefopt() {
	header "prefopt.TokenLogProbs + backward, [4096 x 49152], 2 threads"
	OUT=$(gobench ./prefopt/ '^BenchmarkTokenLogProbs$/^both(-lse)?/4096x49152$' 5x)
	t=$(ns BenchmarkTokenLogProbs/both/4096x49152); l=$(ns BenchmarkTokenLogProbs/both-lse/4096x49152)
	a=$(anchor tokenlogprobs)
	row "vs torch log_softmax+gather+backward" "$(ratio "$t" 1e6) ms" "$a ms" "$(ratio "$a" "$(ratio "$t" 1e6)")" "≥ 5"
	row "  the same, keeping the row log-sum-exps" "$(ratio "$l" 1e6) ms" "$a ms" "$(ratio "$a" "$(ratio "$l" 1e6)")" "≥ 5"
}

section_tinylm() {
	header "TinyLM training step (fwd+bwd+AdamW), 0.72M params, batch 16x128, 2 threads"
	tps=$(go test -run '^$' -bench '^BenchmarkTinyLMStep$/^anchor' -benchtime 10x ./tensor/nn/ |
		awk '{ for (i=2;i<=NF;i++) if ($(i+1)=="tokens/s") print $i }')
	a=$(anchor tinylm)
	row "tokens/s vs torch eager" "$(printf %.0f "$tps")" "$a" "$(ratio "$tps" "$a")" "≥ 1.5"
}

sections=("$@")
[ ${#sections[@]} -gt 0 ] || sections=(kernels gemm bf16 distill prefopt tinylm)
for s in "${sections[@]}"; do
	"section_$s"
done

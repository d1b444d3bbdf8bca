#!/bin/sh
# bf16_compare.sh: posttrain's bfloat16 products against its own float32
# GEMM, OpenBLAS sgemm (through NumPy) and the machine's limits, in one run:
#
#   - GEMM at 1024³ (c = a·bᵀ, b the weights): GemmBF16 on every tier
#     (avx512bf16 = VDPBF16PS; the others widen bfloat16 while packing),
#     GemmMixed (float32 activations), float32 Gemm and NumPy's sgemm, in
#     GFLOPS, with the ratios the issue asks for; and the single-core peak
#     of VFMADD231PS and VDPBF16PS on this CPU (simd's BenchmarkPeak);
#   - MatVecBF16 on the SmolLM2-135M shapes in GB/s of weights read, against
#     the measured copy bandwidth (BenchmarkCopy, bytes read + written);
#   - the weight products of one SmolLM2-135M decoding step (every weight
#     read once): bfloat16 MatVecBF16 against the float32 decoder's Gemm
#     and a float32 Dot per row, in tokens/s, and the bound: bfloat16
#     weight bytes ÷ copy bandwidth;
#   - a LoRA DPO step on SmolLM2-135M's shape (bench/loradpo, gradient
#     checkpointing) with the frozen base in bfloat16 against float32,
#     best of LORA_ROUNDS alternating rounds (default 2) of LORA_PAIRS
#     pairs of 2×128 tokens (default 1; the README's step is 4);
#     LORA=0 skips it.
#
# The first lines say which kernel tier runs: the one chosen at init is
# what GemmBF16, GemmMixed, GemmWiden and the LoRA step use (on AVX-512
# without pinning, bfloat16 is widened while packing and the float32
# micro-kernel runs); the GEMM lines name their tier first.
#
#   bench/bf16_compare.sh [threads [rounds]]    (defaults 2 and 3)
#
# Each side keeps its best figure over alternating rounds, as
# gemm_compare.sh does. OpenBLAS runs twice: with its own CPU detection
# (OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset; the kernel it picked is
# printed, through threadpoolctl when it is installed), and on AVX-512
# CPUs with OPENBLAS_CORETYPE=SkylakeX, since OpenBLAS 0.3.21 (Debian 12)
# detects a Sapphire Rapids VM as Prescott, an SSE3 kernel.
set -eu
cd "$(dirname "$0")/.."
T=${1:-2}
R=${2:-3}
PY=${PYTHON:-/usr/bin/python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

go test -c -o "$tmp/tensor.test" ./tensor
go test -c -o "$tmp/simd.test" ./tensor/internal/simd
core=$(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_VERBOSE=2 OPENBLAS_NUM_THREADS=1 "$PY" -c '
import numpy
numpy.ones((2, 2), numpy.float32) @ numpy.ones((2, 2), numpy.float32)
try:
    import threadpoolctl
    for i in threadpoolctl.threadpool_info():
        print("threadpoolctl:", i.get("internal_api"), i.get("version"), i.get("architecture"))
except ImportError:
    print("threadpoolctl: not installed")
' 2>&1 | tr '\n' ' ')

: >"$tmp/go"
: >"$tmp/np"
i=0
while [ "$i" -lt "$R" ]; do
	"$tmp/tensor.test" -test.run '^$' -test.bench '^BenchmarkGemm$/^1024x1024x1024$|^BenchmarkGemmBF16$/.*/.*/^1024x1024x1024$' \
		-test.benchtime 250ms -test.count 3 -test.cpu "$T" |
		awk '/GFLOPS/ { n = $1; sub(/^Benchmark/, "", n); sub(/-[0-9]+$/, "", n);
			for (i = 1; i < NF; i++) if ($(i+1) == "GFLOPS") print n, $i }' >>"$tmp/go"
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=$T OMP_NUM_THREADS=$T \
		"$PY" bench/gemm_numpy.py 1024x1024x1024 | awk '{ print "numpy-sgemm-auto/" $1, $2 }' >>"$tmp/np"
	if grep -q avx512f /proc/cpuinfo; then
		env -u OPENBLAS_L2_SIZE OPENBLAS_CORETYPE=SkylakeX OPENBLAS_NUM_THREADS=$T OMP_NUM_THREADS=$T \
			"$PY" bench/gemm_numpy.py 1024x1024x1024 | awk '{ print "numpy-sgemm-skylakex/" $1, $2 }' >>"$tmp/np"
	fi
	i=$((i + 1))
done
"$tmp/simd.test" -test.run '^$' -test.bench '^Benchmark(Peak|KernelPeak)$' -test.benchtime 5000x -test.count 2 -test.cpu 1 |
	awk '/GFLOPS/ { n = $1; sub(/^Benchmark/, "", n); sub(/-[0-9]+$/, "", n); r = ""
		for (i = 1; i < NF; i++) { if ($(i+1) == "GFLOPS") g = $i; if ($(i+1) == "Ginst/s" || $(i+1) == "of-peak") r = $i }
		print n, g, r }' >"$tmp/peak"

echo "threads: $T   rounds: $R   CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)   bf16 flags: $(grep -o 'avx512_bf16\|amx_bf16' /proc/cpuinfo | sort -u | tr '\n' ' ')"
go run ./examples/kernels -quick -n 64 | awk '/tier in use/ { sub(/^kernel /, ""); print "posttrain " $0 "; unpinned bfloat16 products run on the tier in use" }'
echo "OpenBLAS: ${core:-?}"
printf '\n%-44s %9s\n' "1024³ (GFLOPS, best of rounds)" GFLOPS
cat "$tmp/go" "$tmp/np" | awk '{ if (!($1 in b)) o[++n] = $1; if ($2 > b[$1]) b[$1] = $2 }
	END { for (i = 1; i <= n; i++) printf "%-44s %9.1f\n", o[i], b[o[i]]
		f32 = b["Gemm/1024x1024x1024"]; np = b["numpy-sgemm-auto/1024x1024x1024"]
		sx = b["numpy-sgemm-skylakex/1024x1024x1024"]; if (sx == 0) sx = np
		printf "\n%-44s %9s %11s %11s\n", "bf16 GEMM 1024³ ratios", "/float32", "/sgemm-auto", "/sgemm-skx"
		for (i = 1; i <= n; i++) if (o[i] ~ /^GemmBF16\//)
			printf "%-44s %9.2f %11.2f %11.2f\n", o[i], b[o[i]] / f32, b[o[i]] / np, b[o[i]] / sx }'
printf '\nsingle core: instruction rate by independent accumulators (Peak), micro-kernels on L1 operands (KernelPeak)\n'
printf '%-44s %9s %9s\n' "" GFLOPS "Ginst/s or of-peak"
awk '{ if (!($1 in b)) o[++n] = $1; if ($2 > b[$1]) { b[$1] = $2; r[$1] = $3 } }
	END { for (i = 1; i <= n; i++) printf "%-44s %9.1f %9.2f\n", o[i], b[o[i]], r[o[i]]
		f = b["Peak/fma/24"]; v = b["Peak/vdpbf16ps/24"]
		if (f > 0 && v > 0) printf "VDPBF16PS peak / FMA peak, in FLOPs: %.2f (bf16 GEMM can beat float32 only above 1)\n", v / f }' "$tmp/peak"
awk '{ if ($2 > b[$1]) b[$1] = $2 } END { v = b["Peak/vdpbf16ps/24"]; if (v > 0) print v }' "$tmp/peak" >"$tmp/vpeak"
awk -v p="$(cat "$tmp/vpeak")" '{ if (!($1 in b)) o[++n] = $1; if ($2 > b[$1]) b[$1] = $2 }
	END { if (p > 0) for (i = 1; i <= n; i++) if (o[i] ~ /^GemmBF16\/avx512bf16\/bf16\//)
		printf "%-44s %9.1f GFLOPS = %.2f of the VDPBF16PS peak x %s threads\n", o[i], b[o[i]], b[o[i]] / (p * '"$T"'), "'"$T"'" }' "$tmp/go"

printf '\nMatVecBF16 (GB/s of weights read) against copy bandwidth, %s threads\n' "$T"
"$tmp/tensor.test" -test.run '^$' -test.bench '^BenchmarkMatVecBF16$|^BenchmarkCopy$' -test.benchtime 300ms -test.count 3 -test.cpu "$T" |
	awk '/GB\/s/ { n = $1; sub(/^Benchmark/, "", n); sub(/-[0-9]+$/, "", n);
		for (i = 1; i < NF; i++) if ($(i+1) == "GB/s") v = $i
		if (!(n in b)) o[++k] = n; if (v > b[n]) b[n] = v }
	END { for (i = 1; i <= k; i++) if (o[i] ~ /^Copy/ && b[o[i]] > c) c = b[o[i]]
		for (i = 1; i <= k; i++) printf "%-44s %8.1f GB/s  %5.2f of copy\n", o[i], b[o[i]], b[o[i]] / c }'

printf '\nSmolLM2-135M weight products per token (tokens/s; bound = 269 MB of bf16 weights / copy bandwidth)\n'
"$tmp/tensor.test" -test.run '^$' -test.bench '^BenchmarkDecodeWeights$|^BenchmarkCopy$/^270MB$' -test.benchtime 10x -test.count 3 -test.cpu "1,$T" |
	awk '{ n = $1; sub(/^Benchmark/, "", n)
		for (i = 1; i < NF; i++) { if ($(i+1) == "tokens/s") t[n] = t[n] > $i ? t[n] : $i
			if ($(i+1) == "GB/s" && n ~ /^Copy/) c[n] = c[n] > $i ? c[n] : $i } }
	END { for (n in t) printf "%-44s %8.2f tokens/s\n", n, t[n]
		for (n in c) printf "%-44s %8.2f GB/s -> bound %.2f tokens/s\n", n, c[n], c[n] * 1e9 / 268959744
		if (("DecodeWeights/f32-gemm-'"$T"'" in t) && ("DecodeWeights/bf16-'"$T"'" in t))
			printf "bf16 / f32-gemm at %s threads: %.2fx\n", "'"$T"'", t["DecodeWeights/bf16-'"$T"'"] / t["DecodeWeights/f32-gemm-'"$T"'"]
		if (("DecodeWeights/f32-dot" in t) && ("DecodeWeights/bf16" in t))
			printf "bf16 / f32-dot at 1 thread: %.2fx\n", t["DecodeWeights/bf16"] / t["DecodeWeights/f32-dot"] }'

[ "${LORA:-1}" = 0 ] && exit 0
LP=${LORA_PAIRS:-1}
LR=${LORA_ROUNDS:-2}
printf '\nLoRA r=16 DPO step, SmolLM2-135M shape, %s pair(s) x 256 tokens, gradient checkpointing, %s threads (bench/loradpo)\n' "$LP" "$T"
go build -o "$tmp/loradpo" ./bench/loradpo
: >"$tmp/lora"
i=0
while [ "$i" -lt "$LR" ]; do
	for b in false true; do
		GOMAXPROCS=$T "$tmp/loradpo" -pairs "$LP" -batch "$LP" -steps 1 -recompute -bf16=$b | awk -v b="$b" '
			$2 == "tier" { tier = $3 } $2 == "step_ms" { ms = $3 } $2 == "training_peak_rss_mib" { rss = $3 }
			$2 == "last_loss" { loss = $3 } $2 == "last_logps_chosen" { lp = $3 }
			END { print b, tier, ms, rss, loss, lp }' >>"$tmp/lora"
	done
	i=$((i + 1))
done
awk 'function rel(a, b) { d = (a - b) / b; return d < 0 ? -d : d }
	{ k = $1; tier[k] = $2; if (!(k in ms) || $3 < ms[k]) ms[k] = $3; if ($4 > rss[k]) rss[k] = $4; loss[k] = $5; lp[k] = $6 }
	END { printf "%-44s %9.0f ms  peak RSS %5.0f MiB  tier %s\n", "float32 base", ms["false"], rss["false"], tier["false"]
		printf "%-44s %9.0f ms  peak RSS %5.0f MiB  tier %s\n", "bfloat16 base (FreezeBF16)", ms["true"], rss["true"], tier["true"]
		printf "bf16 base speed-up: %.2fx (goal >= 1.4)\n", ms["false"] / ms["true"]
		printf "second step: loss %s vs %s (relative difference %.1e, goal <= 1e-2); chosen log-prob %s vs %s (%.1e)\n",
			loss["true"], loss["false"], rel(loss["true"], loss["false"]), lp["true"], lp["false"], rel(lp["true"], lp["false"]) }' "$tmp/lora"

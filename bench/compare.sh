#!/usr/bin/env bash
# Runs posttrain's benchmarks and the same workloads in NumPy/OpenBLAS and
# PyTorch eager in one go, and prints the ratios the issues set as goals.
#
#   bench/compare.sh                 # every section
#   bench/compare.sh kernels gemm    # some sections
#
# Needs Debian's python3-numpy and python3-torch (apt-get install -y
# python3-numpy python3-torch), with libopenblas0 for their BLAS (without
# it Debian's torch falls back to the reference BLAS, ~1.5 GFLOPS); not part
# of CI. Sections: kernels gemm bf16 distill prefopt adamw tinylm llm fused (the
# last is heavy, several TFLOP, and not in the default list).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=/usr/bin/python3
"$PY" -c 'import numpy, torch' 2>/dev/null || {
	echo "compare.sh: needs Debian's python3-numpy and python3-torch" >&2; exit 1; }

. bench/openblas.sh
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
echo "$OPENBLAS_NOTE"

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

section_adamw() {
	header "AdamW step with clipping, one 49,152 x 576 parameter (28.3M), 2 threads"
	OUT=$(gobench ./tensor/nn/ '^BenchmarkAdamW$' 10x)
	t=$(ns "BenchmarkAdamW/$TIER/49152x576"); g=$(ns "BenchmarkAdamW/generic/49152x576"); a=$(anchor adamw)
	row "vs torch.optim.AdamW + clip_grad_norm_" "$(ratio "$t" 1e6) ms" "$a ms" "$(ratio "$a" "$(ratio "$t" 1e6)")" ""
	row "vs the generic twin (the scalar loop)" "$(ratio "$t" 1e6) ms" "$(ratio "$g" 1e6) ms" "$(ratio "$g" "$t")" ""
}

section_tinylm() {
	header "TinyLM training step (fwd+bwd+AdamW), 0.72M params, batch 16x128, 2 threads"
	tps=$(go test -run '^$' -bench '^BenchmarkTinyLMStep$/^anchor' -benchtime 10x ./tensor/nn/ |
		awk '{ for (i=2;i<=NF;i++) if ($(i+1)=="tokens/s") print $i }')
	a=$(anchor tinylm)
	row "tokens/s vs torch eager" "$(printf %.0f "$tps")" "$a" "$(ratio "$tps" "$a")" "≥ 1.5"
}

section_llm() {
	header "Llama-family decoder at SmolLM2-135M's shape (random weights), 2 threads"
	OUT=$(go test -run '^$' -bench '^Benchmark(LLMStep|LLMDecode|Copy)$' -benchtime 2x -count 1 ./tensor/nn/)
	metric() { awk -v n="$1" -v u="$2" '$1 ~ n { for (i=2;i<=NF;i++) if ($(i+1)==u) print $i }' <<<"$OUT" | head -n 1; }
	tps=$(metric 'LLMStep/smol135m-4x256' tokens/s); gf=$(metric 'LLMStep/smol135m-4x256' GFLOP/s)
	tpc=$(metric 'LLMStep/smol135m-4x256' tokens/cpu-s)
	read -r a ac < <(cd /tmp && "$PY" "$OLDPWD/bench/llm_anchor.py" step | awk '{print $2, $3}')
	row "train step 4x256 tokens/s vs torch eager" "$(printf %.1f "$tps")" "$a" "$(ratio "$tps" "$a")" "≥ 2"
	# Per CPU-second: steadier than wall time when other work shares the cores.
	row "  tokens per CPU-second vs torch eager" "$(printf %.1f "$tpc")" "$ac" "$(ratio "$tpc" "$ac")" ""
	g=$(go test -run '^$' -bench '^BenchmarkGemm$/^1024x1024x1024$' -benchtime 20x -count 1 ./tensor/ |
		awk '{ for (i=2;i<=NF;i++) if ($(i+1)=="ns/op") printf "%.1f", 2*1024^3/$i }')
	row "  achieved GFLOP/s vs Gemm 1024³ GFLOP/s" "$gf" "$g" "$(ratio "$gf" "$g")" "≥ 0.5"
	bw=$(metric 'Copy' GB/s)
	# Batch 1 reads every float32 weight once per token (the tied head
	# once): the bound is copy bandwidth / weight bytes.
	bound=$(awk -v bw="$bw" 'BEGIN { printf "%.1f", bw * 1e9 / (4 * 134515008) }')
	for b in 1 8; do
		t=$(metric "LLMDecode/smol135m-b$b-p64-n128" tokens/s)
		a=$(cd /tmp && "$PY" "$OLDPWD/bench/llm_anchor.py" decode $b | awk '{print $2}')
		row "greedy decode b$b, 64+128, tokens/s vs torch" "$(printf %.1f "$t")" "$a" "$(ratio "$t" "$a")" "$([ $b = 8 ] && echo '≥ 5' || echo '')"
		[ $b = 1 ] && row "  vs bandwidth bound ($bw GB/s copy)" "$(printf %.1f "$t")" "$bound" "$(ratio "$t" "$bound")" "≥ 0.77"
	done
	# Frozen in bfloat16 (FreezeBF16): half the bytes per step (issue 16).
	for b in 1 8; do
		t=$(metric "LLMDecode/smol135m-b$b-p64-n128" tokens/s)
		t16=$(metric "LLMDecode/smol135m-bf16-b$b-p64-n128" tokens/s)
		mb=$(metric "LLMDecode/smol135m-bf16-b$b-p64-n128" MB/step)
		row "bf16 greedy decode b$b tokens/s vs float32" "$(printf %.1f "$t16")" "$(printf %.1f "$t")" "$(ratio "$t16" "$t")" "$([ $b = 1 ] && echo '≥ 1.8' || echo '')"
		[ $b = 1 ] && row "  vs bandwidth bound ($bw GB/s copy, $mb MB/step)" "$(printf %.1f "$t16")" \
			"$(awk -v bw="$bw" -v mb="$mb" 'BEGIN { printf "%.1f", bw * 1e3 / mb }')" \
			"$(ratio "$t16" "$(awk -v bw="$bw" -v mb="$mb" 'BEGIN { printf "%.1f", bw * 1e3 / mb }')")" "≥ 0.77"
	done
	dir=$(mktemp -d)
	go run ./bench/llmload -make -shape qwen2.5-0.5b -dtype BF16 -dir "$dir/qwen" >/dev/null
	go build -o "$dir/llmload" ./bench/llmload
	printf '\nQwen2.5-0.5B shape from BF16 (random weights):\n'
	"$dir/llmload" -dir "$dir/qwen" -prompt 64 -new 32
	rm -rf "$dir"
}

# gobenchm PKG PATTERN: prints "name ns/op peak-MB cpu-s/op" for each
# benchmark, one run each (-benchtime 1x).
gobenchm() {
	go test -run '^$' -bench "$2" -benchtime 1x -count 1 -timeout 60m "$1" |
		awk '/^Benchmark/ { name=$1; sub(/-[0-9]+$/, "", name); ns=""; mb=""; cpu="";
			for (i=2;i<=NF;i++) { if ($(i+1)=="ns/op") ns=$i; if ($(i+1)=="peak-MB") mb=$i; if ($(i+1)=="cpu-s/op") cpu=$i }
			print name, ns, mb, cpu }'
}
mb() { awk -v n="$1" '$1==n {print $3}' <<<"$OUT"; }
cpus() { awk -v n="$1" '$1==n {print $4}' <<<"$OUT"; }

# The fused LM head (issue 15): loss and gradients straight from hidden
# states h [N, H] and the head W [V, H], chunked, against the unfused path
# (logits [N, V] materialized, the loss, two gradient GEMMs), the three
# GEMMs alone (6·N·H·V FLOPs, the floor) and PyTorch eager's linear +
# cross_entropy + backward. Peak extra memory is the process's resident
# high-water mark during the call above its resident memory before it:
# 4·N·V bytes of logits for unfused (the gradient overwrites them), about
# 4·c·V for fused with a chunk of c rows (per model: twice with a teacher).
# Each workload runs once: the figures are one sample each. FUSED_PARTS
# picks parts, one at a time on a shared machine: "49152", "151936" (the
# convex loss at that vocabulary) and "jsd" (default: all three).
section_fused() {
	local n=${FUSED_N:-8192} # FUSED_N=256 for a quick smoke run
	local parts=" ${FUSED_PARTS:-49152 151936 jsd} "
	for hv in 576,49152 896,151936; do
		[[ $parts == *" ${hv#*,} "* ]] || continue
		local h=${hv%,*} v=${hv#*,} name="${n}x${hv/,/x}"
		header "fused LM head + AFM convex loss, N=$n H=$h V=$v, 2 threads, one run each"
		OUT=$(FUSED_BENCH=$n,$h,$v gobenchm ./distill/ "^Benchmark(Fused|Unfused|Gemms)\$/^$name\$")
		local f=$(ns "BenchmarkFused/$name") u=$(ns "BenchmarkUnfused/$name") g=$(ns "BenchmarkGemms/$name")
		local fm=$(mb "BenchmarkFused/$name") um=$(mb "BenchmarkUnfused/$name")
		local fc=$(cpus "BenchmarkFused/$name") uc=$(cpus "BenchmarkUnfused/$name") gc=$(cpus "BenchmarkGemms/$name")
		read -r ta tm tc < <(cd /tmp && "$PY" "$OLDPWD/bench/fused_torch.py" "$n" "$h" "$v")
		row "time: fused vs unfused (x faster)" "$(ratio "$f" 1e9) s" "$(ratio "$u" 1e9) s" "$(ratio "$u" "$f")" "≥ 1.0"
		row "  CPU seconds (steadier when loaded)" "$fc s" "$uc s" "$(ratio "$uc" "$fc")" "≥ 1.0"
		row "time: fused / three GEMMs (6NHV floor)" "$(ratio "$f" 1e9) s" "$(ratio "$g" 1e9) s" "$(ratio "$f" "$g")" "≤ 1.15"
		row "  CPU seconds" "$fc s" "$gc s" "$(ratio "$fc" "$gc")" "≤ 1.15"
		if [ "$ta" != - ]; then
			row "time: fused vs torch eager (x faster)" "$(ratio "$f" 1e9) s" "$ta s" "$(ratio "$ta" "$(ratio "$f" 1e9)")" "≥ 1.8"
			row "  CPU seconds" "$fc s" "$tc s" "$(ratio "$tc" "$fc")" "≥ 1.8"
			# The most any fused path can reach: torch against the floor.
			row "  bound: three GEMMs vs torch eager" "$(ratio "$g" 1e9) s" "$ta s" "$(ratio "$ta" "$(ratio "$g" 1e9)")" ""
			row "  bound, CPU seconds" "$gc s" "$tc s" "$(ratio "$tc" "$gc")" ""
			# The same three GEMMs through OpenBLAS: no BLAS here does better.
			local ob=$(cd /tmp && OPENBLAS_NUM_THREADS=2 "$PY" "$OLDPWD/bench/fused_openblas.py" "$n" "$h" "$v")
			[ "$ob" = - ] || row "  bound: OpenBLAS's three GEMMs vs torch eager" "$ob s" "$ta s" "$(ratio "$ta" "$ob")" ""
		else
			echo "  torch eager skipped: not enough free memory for its three [N, V] tensors"
		fi
		row "peak extra MB: unfused / fused" "$fm MB" "$um MB" "$(ratio "$um" "$fm")" "≥ 10"
		[ "$ta" = - ] || row "peak extra MB: torch / fused" "$fm MB" "$tm MB" "$(ratio "$tm" "$fm")" ""
		row "GFLOPS (6NHV): fused, three GEMMs" "$(ratio "$(awk -v n=$n -v h=$h -v v=$v 'BEGIN{print 6*n*h*v}')" "$f")" \
			"$(ratio "$(awk -v n=$n -v h=$h -v v=$v 'BEGIN{print 6*n*h*v}')" "$g")" "" ""
	done
	[[ $parts == *" jsd "* ]] || return 0
	local name="${n}x576x49152"
	header "fused teacher-student GeneralizedJSD (beta 0.5), both heads, N=$n H=576 V=49152, one run each"
	OUT=$(FUSED_BENCH=$n,576,49152 gobenchm ./distill/ "^Benchmark(Fused|Unfused|Gemms)JSD\$/^$name\$")
	local f=$(ns "BenchmarkFusedJSD/$name") u=$(ns "BenchmarkUnfusedJSD/$name") g=$(ns "BenchmarkGemmsJSD/$name")
	row "time: fused vs unfused (x faster)" "$(ratio "$f" 1e9) s" "$(ratio "$u" 1e9) s" "$(ratio "$u" "$f")" ""
	row "time: fused / four GEMMs (8NHV floor)" "$(ratio "$f" 1e9) s" "$(ratio "$g" 1e9) s" "$(ratio "$f" "$g")" "≤ 1.15"
	local fc=$(cpus "BenchmarkFusedJSD/$name") uc=$(cpus "BenchmarkUnfusedJSD/$name") gc=$(cpus "BenchmarkGemmsJSD/$name")
	row "  CPU seconds: fused vs unfused" "$fc s" "$uc s" "$(ratio "$uc" "$fc")" ""
	row "  CPU seconds: fused / four GEMMs" "$fc s" "$gc s" "$(ratio "$fc" "$gc")" "≤ 1.15"
	row "peak extra MB: unfused / fused" "$(mb "BenchmarkFusedJSD/$name") MB" "$(mb "BenchmarkUnfusedJSD/$name") MB" \
		"$(ratio "$(mb "BenchmarkUnfusedJSD/$name")" "$(mb "BenchmarkFusedJSD/$name")")" "≥ 10"
}

sections=("$@")
[ ${#sections[@]} -gt 0 ] || sections=(kernels gemm bf16 distill prefopt adamw tinylm llm)
for s in "${sections[@]}"; do
	"section_$s"
done

#!/usr/bin/env bash
# Tokenizer throughput of tensor/nn/hf against @huggingface/tokenizers (the
# pure-JS tokenizer of transformers.js) in Node on the same machine, in one
# go, on the Opticks text Go ships ($(go env GOROOT)/src/testdata), with the
# real vocabularies of tensor/nn/hf/testdata/tokenizer — the whole text in
# one call and paragraph by paragraph. It also checks that
# both produce the same ids on the whole text. The issue's goal is ≥ 2x.
#
#   bench/tokenizer_compare.sh
#
# Needs node and npm (it installs the package in a temporary folder); not
# part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v node >/dev/null && command -v npm >/dev/null || {
	echo "tokenizer_compare.sh: needs node and npm" >&2; exit 1; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
(cd "$TMP" && npm init -y >/dev/null && npm install --silent @huggingface/tokenizers@0.2.0 >/dev/null)
OPTICKS="$(go env GOROOT)/src/testdata/Isaac.Newton-Opticks.txt"
NAMES="gpt2 llama3 qwen2 mistral gpt4o"
mkdir "$TMP/ids"
echo "$(nproc) cores; $(date -u +%Y-%m-%dT%H:%MZ); node $(node --version)"
JS=$(cd "$TMP" && node "$OLDPWD/bench/tokenizer_node.mjs" "$OLDPWD/tensor/nn/hf/testdata/tokenizer" "$OPTICKS" "$TMP/ids" $NAMES)
GO=$(go test -run '^$' -bench '^BenchmarkEncode$' -benchtime 10x -count 1 ./tensor/nn/hf/ |
	awk '/^BenchmarkEncode/ { split($1, a, "/"); sub(/-[0-9]+$/, "", a[3]); for (i=2;i<=NF;i++) if ($(i+1)=="MB/s") print a[2] "/" a[3], $i }')
printf '\n%-22s %14s %16s %8s   goal\n' "tokenizer/workload" "posttrain MB/s" "tokenizers.js" ratio
for n in $NAMES; do
	for w in opticks paragraphs; do
		g=$(awk -v n="$n/$w" '$1==n {print $2}' <<<"$GO")
		j=$(awk -v n="$n/$w" '$1==n {print $2}' <<<"$JS")
		printf '%-22s %14s %16s %7.2fx   ≥ 2\n' "$n/$w" "$g" "$j" "$(awk -v a="$g" -v b="$j" 'BEGIN {print a/b}')"
	done
done
echo
HF_TOKENIZER_IDS="$TMP/ids" go test -count 1 -run '^TestOpticksIDs$' -v ./tensor/nn/hf/ | grep -E '^(--- |ok|FAIL|\s+tokenizer)' || true

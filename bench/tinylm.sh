#!/usr/bin/env bash
# One TinyLM training step (forward, cross-entropy, backward, AdamW) of the
# anchor model (vocab 256, d_model 128, 4 layers, 4 heads, context 128,
# batch 16, SwiGLU hidden 256): posttrain against PyTorch eager, both on the
# same 2 threads, in one run. Prints tokens/s of each and the ratio.
#
#   bench/tinylm.sh            # anchor from ../shared/anchors (or $ANCHOR)
set -euo pipefail
cd "$(dirname "$0")/.."
anchor=${ANCHOR:-../shared/anchors/tinylm_torch.py}
py=${PYTHON:-/usr/bin/python3}

torch_tps=$("$py" "$anchor" | awk '/tokens\/s/ {print $(NF-1)}')
go_tps=$(GOMAXPROCS=2 go test -run '^$' -bench 'TrainStep/anchor' -benchtime 10x ./tensor/nn |
	awk '{for (i = 2; i <= NF; i++) if ($i == "tokens/s") print $(i-1)}')

awk -v t="$torch_tps" -v g="$go_tps" 'BEGIN {
	printf "tinylm train step  torch %s tokens/s  posttrain %s tokens/s  ratio %.2fx\n", t, g, g / t }'

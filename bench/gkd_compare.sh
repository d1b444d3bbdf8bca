#!/usr/bin/env bash
# distill.GKD.Loss (on-policy distillation: generalized JSD, β = 0.5, over
# the completion rows of 8 sequences of 64 tokens, vocabulary 32000, the
# first quarter of each masked as prompt) against TRL's generalized_jsd_loss
# and its backward in PyTorch eager, both on 2 threads. Needs Debian's
# python3-torch; not part of CI.
#
#   bench/gkd_compare.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=/usr/bin/python3
go_ns=$(GOMAXPROCS=2 go test -run '^$' -bench '^BenchmarkGKD$/^masked/512x32000$' -benchtime 5x -count 1 ./distill/ |
	awk '/^BenchmarkGKD/ { for (i=2;i<=NF;i++) if ($(i+1)=="ns/op") print $i }')
torch_ms=$(cd /tmp && "$PY" "$OLDPWD/bench/gkd_anchor.py" 2 | awk '{print $2}')
awk -v g="$go_ns" -v a="$torch_ms" 'BEGIN {
	printf "GKD.Loss 512x32000 with gradient: posttrain %.1f ms, torch eager %.1f ms, ratio %.2fx\n", g/1e6, a, a/(g/1e6) }'

#!/usr/bin/env bash
# One DPO step with LoRA r=16 on q/k/v/o (4 pairs x 256 tokens: reference
# forward with the adapters off, policy forward and backward, AdamW on the
# adapters) on a model of SmolLM2-135M's shape with random weights:
# posttrain (bench/loradpo) against PyTorch eager (bench/loradpo_anchor.py)
# on the same number of threads, and the peak RSS of each against the
# model's float32 size. Goals (issue 14): >= 1.5x PyTorch; peak RSS <= 1.3x
# the model.
#
#   bench/loradpo_compare.sh [THREADS] [STEPS]   # defaults 2 and 3
#   RECOMPUTE=false bench/loradpo_compare.sh      # without gradient checkpointing
#   BATCH=4 bench/loradpo_compare.sh              # the 4 pairs in one micro-batch
#
# By default the step accumulates 4 micro-batches of one pair (Batch 1,
# Accum 4: the same gradient as one batch of 4, as TRL's
# per_device_train_batch_size=1, gradient_accumulation_steps=4): the
# checkpointed block inputs, 4·(Layers+1)·tokens·DModel bytes, are then a
# quarter of what they are with all 8 sequences in one pass. The Go
# binary's -memstats flag prints the heap and the resident set after
# every step, -memprofile a heap profile of what the steps allocate.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${1:-2}
STEPS=${2:-3}
go build -o /tmp/posttrain-loradpo ./bench/loradpo
GO=$(GOMAXPROCS=$THREADS /usr/bin/time -f "go process_peak_rss_mib %M" /tmp/posttrain-loradpo -steps "$STEPS" -batch ${BATCH:-1} -recompute=${RECOMPUTE:-true} 2>&1 | awk '$2=="process_peak_rss_mib" {$3=int($3/1024)} {print}')
PT=$(OMP_NUM_THREADS=$THREADS /usr/bin/python3 bench/loradpo_anchor.py --threads "$THREADS" --steps "$STEPS")
echo "$GO"
echo "$PT"
g=$(awk '$2=="step_ms" {print $3}' <<<"$GO")
gc=$(awk '$2=="step_cpu_ms" {print $3}' <<<"$GO")
pc=$(awk '$2=="step_cpu_ms" {print $3}' <<<"$PT")
p=$(awk '$2=="step_ms" {print $3}' <<<"$PT")
m=$(awk '$2=="model_f32_mib" {print $3}' <<<"$GO")
pr=$(awk '$2=="peak_rss_mib" {print $3}' <<<"$PT")
gr=$(awk '$2=="training_peak_rss_mib" {print $3}' <<<"$GO")
awk -v g="$g" -v p="$p" 'BEGIN { printf "DPO step, LoRA r=16 q/k/v/o, 4x256 tokens, %s threads: posttrain %.0f ms, torch %.0f ms, speedup %.2fx (goal >= 1.5)\n", '"$THREADS"', g, p, p/g }'
awk -v g="$gc" -v p="$pc" 'BEGIN { if (p > 0 && g > 0) printf "CPU time per step: posttrain %.0f ms, torch %.0f ms, ratio %.2fx\n", g, p, p/g }'
awk -v g="$gr" -v r="$pr" -v m="$m" 'BEGIN { printf "peak RSS during training: posttrain %.0f MiB = %.2fx the model (%.0f MiB; goal <= 1.3x), torch process %.0f MiB = %.2fx\n", g, g/m, m, r, r/m }'

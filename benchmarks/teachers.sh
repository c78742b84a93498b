#!/usr/bin/env bash
# Fine-tune the benchmark teachers (all-MiniLM-L6-v2 → SST-2, MRPC, CoLA, STS-B, RTE) with
# `layerkd finetune` on the full training sets (SST-2 too: 67k sentences, 2 epochs, 38 min on one CPU core;
# the SST-2 *students* train on a fixed 8,000-sentence subsample, see configs/suites/). Resumable: a finished task is skipped, an interrupted
# one continues from its last checkpoint. Outputs go outside git:
#   $LAYERKD_WORK/teachers/<task>/   (default LAYERKD_WORK = <repo>/../layerkd-work)
# then `python benchmarks/collect_teachers.py` writes benchmarks/results/teachers.{md,json}.
#
# Usage: bash benchmarks/teachers.sh [task ...]     (default: all five)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="${LAYERKD_WORK:-$repo/../layerkd-work}"
shared="${LAYERKD_SHARED:-$repo/../shared}"
layerkd="${LAYERKD_BIN:-$repo/.venv/bin/layerkd}"
model="$shared/models/all-MiniLM-L6-v2"
glue="$shared/data/glue"
mkdir -p "$work/teachers"

# task:epochs — hyper-parameters shared by all: lr 5e-5, batch 32, max length 128, AdamW (wd 0.01),
# 10 % linear warm-up then linear decay, fp32, seed 42, best dev epoch kept.
declare -A EPOCHS=( [mrpc]=5 [rte]=8 [sts-b]=5 [cola]=5 [sst-2]=2 )
tasks=("$@")
[ ${#tasks[@]} -eq 0 ] && tasks=(mrpc rte sts-b cola sst-2)
for t in "${tasks[@]}"; do
  out="$work/teachers/$t"
  if [ -f "$out/metrics.json" ]; then echo "[$t] done, skipping"; continue; fi
  extra=()
  [ -d "$out/checkpoints" ] && extra=(--resume)
  echo "[$t] fine-tuning ($(date -Is))"
  start=$(date +%s)
  "$layerkd" finetune --model "$model" --task "$t" --data-dir "$glue" --output-dir "$out" \
    --epochs "${EPOCHS[$t]}" --lr 5e-5 --batch-size 32 --max-length 128 --seed 42 "${extra[@]}"
  echo "$(( $(date +%s) - start ))" > "$out/wall_seconds.txt"
  rm -rf "$out/checkpoints"   # keep the exported best model; drop optimizer-state checkpoints
done

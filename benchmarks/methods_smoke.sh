#!/usr/bin/env bash
# Issue 3 smoke check on real data: every method once, MiniLM-L6 teacher (benchmarks/teachers.sh)
# → 2-layer student cut from the teacher's bottom layers, on MRPC and RTE. Resumable: finished
# runs are skipped. Then: python benchmarks/collect_smoke.py → benchmarks/results/methods-smoke.md
#
# Usage: bash benchmarks/methods_smoke.sh [task ...]   (default: mrpc rte)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="${LAYERKD_WORK:-$repo/../layerkd-work}"
shared="${LAYERKD_SHARED:-$repo/../shared}"
layerkd="${LAYERKD_BIN:-$repo/.venv/bin/layerkd}"
export LAYERKD_CACHE="${LAYERKD_CACHE:-$work/cache}"
METHODS=(ce kd pkd pkd-last tinybert ckd ckd-po alp alp-no alp-po rail rail-c rail-paper universal universal-losses
         universal+alp universal+rail universal+pkd internal internal-progressive internal-all dih annealing universal-ta takd)
tasks=("$@")
[ ${#tasks[@]} -eq 0 ] && tasks=(mrpc rte)
for t in "${tasks[@]}"; do
  teacher="$work/teachers/$t"
  [ -f "$teacher/metrics.json" ] || { echo "[$t] no teacher yet ($teacher); run benchmarks/teachers.sh $t"; continue; }
  for m in "${METHODS[@]}"; do
    out="$work/smoke/$t/$m"
    [ -f "$out/metrics.json" ] && { echo "[$t/$m] done"; continue; }
    extra=(--overwrite)
    [ -d "$out/checkpoints" ] && extra=(--resume)
    echo "[$t/$m] $(date -Is)"
    start=$(date +%s)
    "$layerkd" distill --method "$m" --task "$t" --data-dir "$shared/data/glue" --teacher "$teacher" \
      --student bottom:2 --output-dir "$out" --epochs 4 --lr 1e-4 --batch-size 32 --max-length 128 --seed 1 "${extra[@]}"
    echo "$(( $(date +%s) - start ))" > "$out/wall_seconds.txt"
    rm -rf "$out/checkpoints" "$out/teacher_heads_run"
  done
done

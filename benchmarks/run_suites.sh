#!/usr/bin/env bash
# Run the experiment suites in priority order (resumable: finished cells are skipped, a cell that
# was interrupted resumes from its checkpoint, a cell whose teacher directory is missing is listed
# as no-teacher and skipped). On the 2-core CPU machine the full grids do not fit in one session;
# this order gets the most informative cells first:
#   1. ild on MRPC (PAWS-Wiki OOD included), core methods then all 13 rows, seeds 1-3
#   2. cross-arch and capacity-gap on MRPC and SST-2
#   3. ild on RTE, the internal schedules, the pretrained student, then ild on SST-2 and CoLA
#   4. everything else (STS-B needs its teacher first: bash benchmarks/teachers.sh sts-b)
# Results: <cells folder>/<key>.json (see R below); then `bash benchmarks/report.sh <cells folder> <report folder>`.
#
# Lanes: LAYERKD_LANES=2 bash benchmarks/run_suites.sh starts two copies of this script on the same results
# folder (one thread each unless OMP_NUM_THREADS is set; LAYERKD_LANE_GAP seconds apart, default 20); `layerkd bench` claims each cell before running it, so a
# copy skips the cells the other one is running and every cell runs once. Logs: <cells folder>/runs/lane-<i>.log.
set -uo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
lanes="${LAYERKD_LANES:-1}"
export LAYERKD_WORK="${LAYERKD_WORK:-$repo/../layerkd-work}"
export LAYERKD_SHARED="${LAYERKD_SHARED:-$repo/../shared}"
export LAYERKD_CACHE="${LAYERKD_CACHE:-$LAYERKD_WORK/cache}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"  # one thread per process: the CPU is shared with other jobs
layerkd="${LAYERKD_BIN:-$repo/.venv/bin/layerkd}"
# Results: one folder per teacher generation, because a cell's key includes its teacher's weights and the report
# keeps only the newest result of a (task, student, method, seed): benchmarks/results/cells holds the cells of the
# first teachers (lost with their work area, kept as recorded); the retrained teachers' cells go to cells-t2.
R="${LAYERKD_CELLS:-$repo/benchmarks/results/cells-t2}"
S="$repo/configs/suites"
b() { "$layerkd" bench "$@" --results "$R"; }
if [ "$lanes" -gt 1 ]; then
  mkdir -p "$R/runs"
  for i in $(seq 1 "$lanes"); do
    LAYERKD_LANES=1 bash "$0" > "$R/runs/lane-$i.log" 2>&1 &
    sleep "${LAYERKD_LANE_GAP:-20}"   # let the first lane claim its first cell before the next one plans
  done
  wait
  exit 0
fi
core=(--method ce --method kd --method pkd --method alp --method rail --method universal --method universal+alp)
b "$S/ild.yaml" --task mrpc "${core[@]}" --seed 1
b "$S/ild.yaml" --task mrpc "${core[@]}" --seed 2
b "$S/cross-arch.yaml" --task mrpc --seed 1
b "$S/capacity-gap.yaml" --task mrpc --seed 1
b "$S/ild.yaml" --task mrpc "${core[@]}" --seed 3
b "$S/cross-arch.yaml" --task mrpc --seed 2
b "$S/capacity-gap.yaml" --task mrpc --seed 2
b "$S/cross-arch.yaml" --task sst-2 --seed 1 --seed 2
b "$S/capacity-gap.yaml" --task sst-2 --seed 1 --seed 2
b "$S/ild.yaml" --task mrpc
b "$S/capacity-gap.yaml" --task mrpc --seed 3
b "$S/cross-arch.yaml" --seed 3
b "$S/ild.yaml" --task rte
b "$S/internal-schedules.yaml" --task mrpc --task rte
b "$S/pretrained-student.yaml" --task mrpc --task rte
b "$S/smoke.yaml"
b "$S/ild.yaml" --task sst-2 --task cola
b "$S/internal-schedules.yaml"
b "$S/ild.yaml"
b "$S/pretrained-student.yaml"
b "$S/internal-schedules.yaml"
b "$S/cross-arch.yaml"
b "$S/capacity-gap.yaml"

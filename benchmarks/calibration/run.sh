#!/usr/bin/env bash
# Calibration of the v2 setting (issue 20): before any method is compared, show that the plain
# student learns. For each task: the teacher (all-MiniLM-L6-v2 fine-tuned with mean pooling) and the
# 2-layer `ce` student, [CLS] head vs mean-pooled head, initialised from the pretrained encoder's
# bottom 2 blocks ("pre") or cut from the fine-tuned teacher ("cut", as `bottom:2` does). Every run
# selects on the validation split carved from the training set (layerkd.data.validation) and scores
# GLUE dev once at the end (the test set); per-epoch validation curves are in each results.json.
#
# Resumable: a finished run is skipped, an interrupted one continues (--resume).
#   bash benchmarks/calibration/run.sh teachers [task ...]     # the v2 teachers (also what ild-v2 uses)
#   bash benchmarks/calibration/run.sh students-pre [task ...] # pretrained-init students (no teacher needed)
#   bash benchmarks/calibration/run.sh students-cut [task ...] # teacher-cut students (needs the teachers)
#   bash benchmarks/calibration/run.sh budget TASK LR EPOCHS   # one more budget for the cut mean-head
#       student (a task whose student has not plateaued, or overfits, at the shared budget)
# LAYERKD_POOLINGS="cls" (or "mean") runs one head only, e.g. two lanes side by side.
# then: python benchmarks/calibration/collect.py  -> benchmarks/results/calibration.{md,json}
#   (--from-json renders calibration.md again from the committed json, e.g. after a reproduction record)
# Bit-for-bit check of a teacher: LAYERKD_REPRO=<fresh folder> bash benchmarks/calibration/reproduce.sh TASK
# A teacher rebuilt after the work area was lost, checked against what the committed cells recorded:
#   python benchmarks/calibration/reproduce.py --recorded benchmarks/results/cells-v2 --rerun ../layerkd-work/teachers-v2 TASK
# Outputs (outside git): $LAYERKD_WORK/teachers-v2/<task>, $LAYERKD_WORK/calibration/<run>
set -uo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
work="${LAYERKD_WORK:-$repo/../layerkd-work}"
shared="${LAYERKD_SHARED:-$repo/../shared}"
layerkd="${LAYERKD_BIN:-$repo/.venv/bin/layerkd}"
python="${LAYERKD_PYTHON:-$repo/.venv/bin/python}"
glue="$shared/data/glue"
model="$shared/models/all-MiniLM-L6-v2"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
# teacher epochs as for the v1 teachers (benchmarks/teachers.sh); lr 5e-5, batch 32, max length 128, seed 42
declare -A TEPOCHS=( [mrpc]=5 [rte]=8 [sts-b]=5 [cola]=5 [sst-2]=2 )
# student budget: 8 epochs (SST-2: 4 on its fixed 8,000-row subsample), lr 1e-4, batch 32, max length 128, seed 1
declare -A SEPOCHS=( [mrpc]=8 [rte]=8 [sts-b]=8 [cola]=8 [sst-2]=4 )
declare -A SUB=( [sst-2]=8000 )
what="$1"; shift
if [ "$what" = budget ]; then  # budget TASK LR EPOCHS -> $work/calibration/<task>-cut-mean-lr<LR>-e<EPOCHS>
  [ $# -eq 3 ] || { echo "usage: run.sh budget TASK LR EPOCHS"; exit 2; }
  blr="$2"; bep="$3"; set -- "$1"
fi
tasks=("$@"); [ ${#tasks[@]} -eq 0 ] && tasks=(sts-b mrpc rte cola sst-2)

run() {  # run OUT COMMAND... : skip when finished, resume when interrupted
  local out="$1"; shift
  if [ -f "$out/metrics.json" ]; then echo "[$(basename "$out")] done"; return 0; fi
  local extra=(); [ -d "$out/checkpoints" ] && extra=(--resume)
  echo "[$(basename "$out")] start $(date -Is)"
  local t0; t0=$(date +%s)
  "$@" --output-dir "$out" "${extra[@]}" && echo "$(( $(date +%s) - t0 ))" > "$out/wall_seconds.txt"
}

for t in "${tasks[@]}"; do
  sub=(); [ -n "${SUB[$t]:-}" ] && sub=(--train-subsample "${SUB[$t]}")
  common=(--task "$t" --data-dir "$glue" --lr "${blr:-1e-4}" --batch-size 32 --max-length 128 --seed 1
          --epochs "${bep:-${SEPOCHS[$t]}}" "${sub[@]}")
  case "$what" in
    teachers)
      run "$work/teachers-v2/$t" "$layerkd" finetune --model "$model" --task "$t" --data-dir "$glue" --pooling mean \
        --epochs "${TEPOCHS[$t]}" --lr 5e-5 --batch-size 32 --max-length 128 --seed 42
      rm -rf "$work/teachers-v2/$t/checkpoints" ;;
    students-pre)
      cut="$work/calibration/init-pre-$t"
      "$python" "$repo/benchmarks/calibration/cut.py" "$model" "$t" 2 "$cut" --seed 0
      for p in ${LAYERKD_POOLINGS:-cls mean}; do run "$work/calibration/$t-pre-$p" "$layerkd" finetune --model "$cut" --pooling "$p" "${common[@]}"; done ;;
    students-cut)
      for p in ${LAYERKD_POOLINGS:-cls mean}; do
        run "$work/calibration/$t-cut-$p" "$layerkd" distill --method ce --teacher "$work/teachers-v2/$t" --student bottom:2 \
          --pooling "$p" --no-cache "${common[@]}"
      done ;;
    budget)
      run "$work/calibration/$t-cut-mean-lr$blr-e$bep" "$layerkd" distill --method ce --teacher "$work/teachers-v2/$t" \
        --student bottom:2 --pooling mean --no-cache "${common[@]}" ;;
    *) echo "unknown step $what (teachers | students-pre | students-cut | budget)"; exit 2 ;;
  esac
done

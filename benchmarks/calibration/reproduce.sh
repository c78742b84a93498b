#!/usr/bin/env bash
# Fine-tune v2 teachers again from scratch in a fresh folder and record whether they are bit-identical
# to the ones the ild-v2 cells use (benchmarks/results/teacher-reproduction.{json,md}).
#   LAYERKD_REPRO=<fresh folder> [LAYERKD_REPRO_NOTE="why"] bash benchmarks/calibration/reproduce.sh TASK...
# Resumable like run.sh (a finished rerun is only compared again). One thread per run (run.sh's default).
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
work="${LAYERKD_WORK:-$repo/../layerkd-work}"
repro="${LAYERKD_REPRO:-}"
python="${LAYERKD_PYTHON:-$repo/.venv/bin/python}"
[ -n "$repro" ] && [ $# -ge 1 ] || { echo "usage: LAYERKD_REPRO=<fresh folder> bash benchmarks/calibration/reproduce.sh TASK..."; exit 2; }
[ "$(cd "$repro" 2>/dev/null && pwd)" != "$(cd "$work" && pwd)" ] || { echo "LAYERKD_REPRO must not be the work area ($work)"; exit 2; }
LAYERKD_WORK="$repro" bash "$repo/benchmarks/calibration/run.sh" teachers "$@"
"$python" "$repo/benchmarks/calibration/reproduce.py" --original "$work/teachers-v2" --rerun "$repro/teachers-v2" --note "${LAYERKD_REPRO_NOTE:-}" "$@"

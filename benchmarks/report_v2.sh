#!/usr/bin/env bash
# The v2 report (issue 20): aggregate the v2 cells, decide the declared comparisons, and write the
# v2 lead of docs/results.md from the generated files. Run from anywhere; paths are the repo's.
#   bash benchmarks/report_v2.sh        (LAYERKD_WORK / LAYERKD_SHARED override ../layerkd-work, ../shared)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
work="${LAYERKD_WORK:-../layerkd-work}"
shared="${LAYERKD_SHARED:-../shared}"
layerkd="${LAYERKD_BIN:-$repo/.venv/bin/layerkd}"
python="${LAYERKD_PYTHON:-$repo/.venv/bin/python}"
"$layerkd" report benchmarks/results/cells-v2 --out benchmarks/results/report-v2 \
  --suite configs/suites/ild-v2.yaml --suite configs/suites/ood-v2.yaml --suite configs/suites/pretrained-student-v2.yaml \
  --var shared="$shared" --var work="$work"
"$python" benchmarks/results_v2.py

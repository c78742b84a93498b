#!/usr/bin/env bash
# Aggregate every finished suite cell into benchmarks/results/report/ (report.md, CSV tables,
# figures), flagging the cells of the shipped suites that have not been run yet.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
export LAYERKD_WORK="${LAYERKD_WORK:-$repo/../layerkd-work}"
export LAYERKD_SHARED="${LAYERKD_SHARED:-$repo/../shared}"
layerkd="${LAYERKD_BIN:-$repo/.venv/bin/layerkd}"
suites=()
for s in ild pretrained-student cross-arch capacity-gap ood internal-schedules smoke; do
  suites+=(--suite "$repo/configs/suites/$s.yaml")
done
"$layerkd" report "$repo/benchmarks/results/cells" --out "$repo/benchmarks/results/report" --baseline ce "${suites[@]}" "$@"

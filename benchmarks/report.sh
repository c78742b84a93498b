#!/usr/bin/env bash
# Aggregate every finished suite cell of a results folder into a report folder (report.md, CSV
# tables, figures), flagging the cells of the shipped suites that have not been run yet.
#
# Usage: bash benchmarks/report.sh [CELLS_DIR [OUT_DIR]] [extra `layerkd report` options]
#   default: benchmarks/results/cells → benchmarks/results/report (the first teacher generation);
#   the retrained teachers' cells: bash benchmarks/report.sh benchmarks/results/cells-t2 benchmarks/results/report-t2
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
export LAYERKD_WORK="${LAYERKD_WORK:-$repo/../layerkd-work}"
export LAYERKD_SHARED="${LAYERKD_SHARED:-$repo/../shared}"
layerkd="${LAYERKD_BIN:-$repo/.venv/bin/layerkd}"
cells="${1:-$repo/benchmarks/results/cells}"; [ $# -gt 0 ] && shift
out="${1:-$repo/benchmarks/results/report}"; [ $# -gt 0 ] && shift
suites=()
for s in ild pretrained-student cross-arch capacity-gap ood internal-schedules smoke; do
  suites+=(--suite "$repo/configs/suites/$s.yaml")
done
# the papers' pairwise claims (docs/results.md): METHOD:BASELINE, tested wherever both rows exist
claims=(
  alp:pkd alp:kd alp:alp-no alp:ckd                     # ALP-KD: attention over all layers beats skipping / buckets
  universal+alp:alp universal+rail:rail universal:kd    # Universal-KD (i) combined with an ILD method, (iii) cross-arch
  universal-ta:takd                                     # Universal-KD (ii): pseudo classifiers instead of an assistant
  universal-ta-std:takd universal-ta-std:universal-ta   # (ii) with standardised teacher heads (capacity-gap ablation)
  universal-std:universal universal+alp-std:universal+alp universal+rail-std:universal+rail  # the heads fix itself (ild ablation)
  universal-std:kd universal+alp-std:alp universal+rail-std:rail  # (i) and (iii) again with standardised heads
  rail:pkd rail:alp                                     # RAIL-KD: beats other ILD methods
  internal:kd internal:internal-all internal:internal-progressive  # Aguilar et al.: stacked internal distillation
)
compare=()
for c in "${claims[@]}"; do compare+=(--compare "$c"); done
"$layerkd" report "$cells" --out "$out" --baseline ce "${suites[@]}" "${compare[@]}" "$@"

#!/usr/bin/env bash
# internal's two terms, decomposed on a small STS-B run (1,600 training rows, 6 epochs, seed 1):
# kd alone; internal-mean's stacked schedule as declared; the same with only the cosine term or only
# the attention KL; both terms beside ce + kd from the start (schedule none), and each term alone so. Then collect.
#   bash benchmarks/results/diagnostics/terms/run.sh     (from the repo root; ~6 min a run on 1 core)
set -euo pipefail
repo="$(cd "$(dirname "$0")/../../../.." && pwd)"
cd "$repo"
work="${LAYERKD_WORK:-../layerkd-work}"
layerkd="${LAYERKD_BIN:-$repo/.venv/bin/layerkd}"
for n in kd stacked stacked-cos stacked-att none none-att none-cos; do
  out="$work/diagnostics/terms/out-$n"
  [ -f "$out/results.json" ] && continue
  "$layerkd" distill --config "benchmarks/results/diagnostics/terms/$n.yaml" --output-dir "$out" --no-cache
done
"${LAYERKD_PYTHON:-$repo/.venv/bin/python}" benchmarks/diagnostic_terms.py --runs "$work/diagnostics/terms"

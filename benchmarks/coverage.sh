#!/usr/bin/env bash
# Issue 21 point 1: the model-family coverage table. Runs tests/test_family_matrix.py (every encoder
# family x student kind x method, cross-family pairs, a few CLI runs; tiny random models, CPU, about
# two minutes) with LAYERKD_COVERAGE_OUT set, so that each case records its outcome, and renders
# docs/coverage.md from what the tests recorded (benchmarks/coverage.py). Commit the generated file.
#
# Usage: bash benchmarks/coverage.sh [OUT_MD]   (default docs/coverage.md)
set -uo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
py="${LAYERKD_PYTHON:-$repo/.venv/bin/python}"
dest="${1:-$repo/docs/coverage.md}"
work="$(mktemp -d "${TMPDIR:-/tmp}/layerkd-coverage.XXXXXX")"
trap 'rm -rf "$work"' EXIT
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false LAYERKD_COVERAGE_OUT="$work/out"
cd "$repo"

t0=$(date +%s)
"$py" -m pytest -p no:cacheprovider -q tests/test_family_matrix.py >"$work/pytest.log" 2>&1
rc=$?
secs=$(( $(date +%s) - t0 ))
echo "[matrix] exit $rc in $secs s"
if [ ! -f "$work/out/coverage.json" ]; then
  echo "the matrix recorded nothing: see the log below"; tail -60 "$work/pytest.log"; exit 1
fi
"$py" benchmarks/coverage.py "$work/out/coverage.json" "$dest" --seconds "$secs" --exit-code "$rc" || exit 1
[ "$rc" = 0 ] || { echo "[matrix] failed: see below"; tail -60 "$work/pytest.log"; }
exit "$rc"

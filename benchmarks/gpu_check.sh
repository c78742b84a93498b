#!/usr/bin/env bash
# The GPU check (issue 22 point 5): device tests, bf16 speed rows at the papers' shapes, and a
# 1-epoch distillation on MRPC, in under 8 minutes on a CUDA machine; writes benchmarks/results/gpu.md.
#
#   bash benchmarks/gpu_check.sh             # on the GPU machine (needs ../shared: GLUE + MiniLM)
#   bash benchmarks/gpu_check.sh --dry-run   # the same steps on the CPU, tiny shapes, toy data;
#                                            # the report goes to a temporary file (tests/test_gpu_check.py)
#
# Set-up: an existing .venv is used as it is (nothing is downloaded). Without one, this runs
# `bash scripts/setup.sh --dev` first, which needs a package index (and keeps a CUDA torch that is
# already installed in .venv; see scripts/setup.sh). The steps: benchmarks/gpu_check.py.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  echo "gpu_check: no .venv: running scripts/setup.sh --dev" >&2
  bash scripts/setup.sh --dev
fi
exec .venv/bin/python benchmarks/gpu_check.py "$@"

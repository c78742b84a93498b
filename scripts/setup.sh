#!/usr/bin/env bash
# Create .venv and install layerkd into it.  Usage: bash scripts/setup.sh [--dev]
#
# PyTorch: if the venv has no torch yet, this installs torch==$LAYERKD_TORCH_VERSION (default
# 2.13.0; on the project's CPU machines that is the CPU build on local disk). A GPU user keeps
# control: install the CUDA build of torch into .venv first (or set LAYERKD_TORCH_INDEX to a
# PyTorch wheel index, or LAYERKD_TORCH_VERSION to another version) and this script leaves it alone.
# The package itself only asks for torch>=2.4, so pip never replaces an installed build.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$python" -m venv .venv
export PIP_DISABLE_PIP_VERSION_CHECK=1
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  index=()
  [ -n "${LAYERKD_TORCH_INDEX:-}" ] && index=(--index-url "$LAYERKD_TORCH_INDEX")
  .venv/bin/pip install -q "torch==${LAYERKD_TORCH_VERSION:-2.13.0}" "${index[@]}"
fi
extras=""
[ "${1:-}" = "--dev" ] && extras="[dev]"
.venv/bin/pip install -q -e ".${extras}"
.venv/bin/python -c "import layerkd, torch; print(f'layerkd {layerkd.__version__} with torch {torch.__version__} installed in .venv')"

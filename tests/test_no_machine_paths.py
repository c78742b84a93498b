"""Committed results and docs carry no absolute path of the machine they ran on (a path relative to
the checkout, or a ``${work}``/``${shared}`` placeholder, plus a fingerprint instead)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ABSOLUTE = re.compile(r"""(?<![\w.$}])/(?:work|root|home|tmp|Users|mnt|opt|srv)/[\w.-]""")


def _tracked() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "benchmarks/results", "docs", "README.md", "configs"], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [REPO / p for p in out.splitlines() if p.endswith((".md", ".json", ".csv", ".yaml", ".txt"))]


def test_committed_results_and_docs_name_no_machine_path():
    bad = []
    for f in _tracked():
        if not f.exists():
            continue
        for i, line in enumerate(f.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if ABSOLUTE.search(line):
                bad.append(f"{f.relative_to(REPO)}:{i}: {ABSOLUTE.search(line).group(0)}")
    assert not bad, f"{len(bad)} absolute path(s), e.g. {bad[:3]}"

"""The results folder on disk, as ``layerkd bench`` writes it: one result file per finished cell,
and the per-cell claim (an exclusive ``flock`` on ``runs/<key>.lock``) that lets several bench
processes share one folder. The layout and the claim protocol are described in
:mod:`layerkd.bench.runner`; the report reads the same files through :mod:`.results`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: no flock; one bench process per results directory
    fcntl = None  # type: ignore[assignment]

from .. import jsonio
from ..checkpoint import atomic_write_text
from .results import SCHEMA


def result_path(results: Path, key: str) -> Path:
    return results / f"{key}.json"


def read_result(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("schema") == SCHEMA else None


def _lock_path(results: Path, key: str) -> Path:
    return results / "runs" / f"{key}.lock"


@contextlib.contextmanager
def claim_cell(results: Path, key: str, *, wait: bool = False) -> Iterator[bool]:
    """Hold the cell's lock for the ``with`` block; yields False when another process holds it.

    ``wait=True`` blocks until the lock is free instead (used for the brief update of a finished
    cell's suite list). The lock file stays behind in ``runs/``; only the lock on it matters."""
    path = _lock_path(results, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", encoding="utf-8") as fh:
        held = True
        if fcntl is not None:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                held = False
        try:
            yield held
        finally:
            if held and fcntl is not None:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def cell_is_running(results: Path, key: str) -> bool:
    """Whether another process holds the cell's claim right now (nothing is created)."""
    path = _lock_path(results, key)
    if fcntl is None or not path.exists():
        return False
    with open(path, "rb") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    return False


def finished_results(results: Path) -> list[dict[str, Any]]:
    out = []
    for p in sorted(results.glob("*.json")):
        if p.name.endswith(".failed.json"):
            continue
        r = read_result(p)
        if r is not None:
            out.append(r)
    return out


def _add_suite(results: Path, key: str, name: str, *, locked: bool = False) -> None:
    """Record that suite ``name`` contains the finished cell ``key`` (under the cell's lock, so two
    processes adding different suites cannot lose one of the updates)."""
    p = result_path(results, key)
    r = read_result(p)
    if r is None or name in r.get("suites", []):
        return
    if not locked:
        with claim_cell(results, key, wait=True):
            _add_suite(results, key, name, locked=True)  # reads the file again under the lock
        return
    r["suites"] = [*r.get("suites", []), name]
    atomic_write_text(p, jsonio.dumps(r, indent=1))

"""Fault injection for the crash-safety tests (test-only; does nothing unless asked).

``LAYERKD_FAULT=<point>:<n>`` makes the process ``SIGKILL`` itself the ``n``-th time (1-based,
counted per process) it reaches the named point, e.g. ``LAYERKD_FAULT=checkpoint:2``;
``<point>:<n>:INT`` or ``:TERM`` sends SIGINT (Ctrl-C) or SIGTERM instead, for the tests of an
interrupted run. Several faults may be given, comma-separated; the first one reached fires. Points:

* ``step`` — mid-step: after the backward pass, before the optimiser step;
* ``eval`` — mid-evaluation: after the first evaluation batch;
* ``checkpoint`` — mid-checkpoint-write: a training checkpoint's weights are on disk in the
  temporary directory, the manifest and the rename are not;
* ``swap`` — while an existing directory is being replaced (``best``): the old one is moved
  aside, the new one not yet renamed into place;
* ``outputs`` — while writing the final outputs: the model is saved, the metrics are not.

SIGKILL cannot be caught, so nothing (no ``finally``, no ``atexit``) runs: the process dies
exactly as it would under ``kill -9`` or the OOM killer. Only the tests set this variable.
"""

from __future__ import annotations

import os
import signal

ENV = "LAYERKD_FAULT"
POINTS = ("step", "eval", "checkpoint", "swap", "outputs")

_counts: dict[str, int] = {}


def _targets() -> dict[str, tuple[int, signal.Signals]]:
    spec = os.environ.get(ENV, "").strip()
    out: dict[str, tuple[int, signal.Signals]] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, rest = part.partition(":")
        n, _, sig = rest.partition(":")
        if name in POINTS:
            out[name] = (int(n or 1), getattr(signal, f"SIG{sig.upper()}") if sig else signal.SIGKILL)
    return out


def point(name: str) -> None:
    """Called at each named point; a no-op unless ``LAYERKD_FAULT`` names it."""
    if ENV not in os.environ:
        return
    targets = _targets()
    if name not in targets:
        return
    _counts[name] = _counts.get(name, 0) + 1
    n, sig = targets[name]
    if _counts[name] == n:
        os.kill(os.getpid(), sig)

"""JSON as layerkd writes it: strict JSON, ``null`` for a number that is not finite.

Python's ``json`` writes ``NaN``/``Infinity`` by default, which is not JSON (``jq``, JavaScript,
most other languages refuse the file). Every JSON file layerkd writes for people or other tools —
``metrics.json``, ``results.json``, ``log.jsonl``, ``eval-*.json``, ``demo.json``, bench result
files, cache and model metadata — goes through :func:`dumps`: a non-finite float (a Pearson
correlation of constant predictions, a skipped non-finite loss) becomes ``null``, NumPy scalars
and arrays become numbers and lists, and ``allow_nan=False`` guarantees nothing slips through.

Reading: :func:`loads`/:func:`read_json` also accept the ``NaN``/``Infinity`` tokens of files
written before this rule, and :func:`nan_for_null` turns the ``null`` of a metrics mapping back
into ``nan`` where a number is expected.

The one exception is a checkpoint's ``state.json`` (read back only by ``--resume``), whose
``-inf`` "no best epoch yet" must round-trip exactly.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


def finite(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by None, tuples as lists, NumPy values and
    other number-like objects (0-d tensors) as plain numbers."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, (str, bool, int)):
        return obj
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    tolist = getattr(obj, "tolist", None)  # NumPy arrays and scalars, tensors
    if callable(tolist):
        return finite(tolist())
    try:
        return finite(float(obj))
    except (TypeError, ValueError):
        raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable") from None


def dumps(obj: Any, **kw: Any) -> str:
    """Strict JSON text of ``obj`` (see :func:`finite`); ``kw`` as for :func:`json.dumps`."""
    return json.dumps(finite(obj), allow_nan=False, **kw)


def loads(text: str | bytes) -> Any:
    """Parse JSON; the ``NaN``/``Infinity`` tokens of older files are accepted."""
    return json.loads(text)


def read_json(path: str | Path) -> Any:
    return loads(Path(path).read_text(encoding="utf-8"))


def nan_for_null(metrics: dict[str, Any]) -> dict[str, Any]:
    """A metrics mapping with ``null`` values read back as ``nan``."""
    return {k: math.nan if v is None else v for k, v in metrics.items()}

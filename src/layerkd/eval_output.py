"""Where ``layerkd evaluate`` writes its result, and when it may replace a file there.

Each result is named by what was evaluated (in ``MODEL_DIR`` unless ``--output`` says where):

* a GLUE split (``--data-dir``/``--split``): ``eval-split-<split>.json``;
* a file (``--file``): ``eval-file-<stem>-<hash>.json``, ``<hash>`` the first 8 hex digits of
  the SHA-256 of the file's absolute path and the ``--columns`` mapping — two files called
  ``dev.tsv`` in different folders, or one file read with two column mappings, get two results.

Every result records what was evaluated under ``"evaluated"`` (the split and data directory, or
the file and column mapping, and the model directory). An existing file is replaced only when it
holds the same evaluation — a rerun, e.g. after more training or with another ``--max-length``.
Anything else there (another evaluation, a file without that record such as an ``eval-dev.json``
of layerkd ≤ 0.1 or a file that is not an evaluation at all) is an error: nothing is
evaluated and nothing is written; choose another ``--output``. Where a result may go at all (not
a directory, not over an input, writable) is :func:`layerkd.outputs.check_output_file`'s rule.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from .errors import ConfigError


def _abs(p: str | Path) -> str:
    return os.path.abspath(os.path.expanduser(str(p)))


def evaluation_id(model_dir: str, *, data_dir: str | None, split: str, file: str | None,
                  columns: str | None) -> dict[str, Any]:
    """What an evaluation is: its data (split + data directory, or file + columns) and model."""
    model = _abs(model_dir) if Path(model_dir).exists() else str(model_dir)  # a hub id stays as given
    if file is not None:
        return {"model": model, "file": _abs(file), "columns": columns}
    return {"model": model, "split": split, "data_dir": _abs(data_dir) if data_dir is not None else None}


def default_name(ident: dict[str, Any]) -> str:
    if "file" in ident:
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(ident["file"]).stem)[:40] or "file"
        digest = hashlib.sha256(f"{ident['file']}\0{ident['columns'] or ''}".encode()).hexdigest()[:8]
        return f"eval-file-{stem}-{digest}.json"
    return f"eval-split-{re.sub(r'[^A-Za-z0-9._-]+', '_', ident['split'])}.json"


def _describe(ident: dict[str, Any]) -> str:
    if "file" in ident:
        cols = f" with --columns {ident['columns']}" if ident.get("columns") else ""
        return f"{ident['file']}{cols} on {ident.get('model')}"
    return f"split {ident.get('split')} of {ident.get('data_dir')} on {ident.get('model')}"


def _same(old: dict[str, Any], new: dict[str, Any], where: Path) -> bool:
    """Same evaluation; in the model's own directory the model is the directory, wherever it was
    when the old result was written (a moved model directory keeps its results replaceable)."""
    if _abs(where.parent) == new["model"]:
        old, new = ({k: v for k, v in d.items() if k != "model"} for d in (old, new))
    return old == new


def check_replaceable(path: Path, ident: dict[str, Any]) -> None:
    """Raise a one-line error unless ``path`` is absent or holds the same evaluation."""
    path = Path(path)
    if not path.is_file():  # absent (a directory, an unwritable place: layerkd.outputs.check_output_file)
        return
    try:
        old = json.loads(path.read_text(encoding="utf-8")).get("evaluated")
    except (OSError, ValueError, AttributeError):
        old = None
    if not isinstance(old, dict):
        raise ConfigError(f"evaluate: {path} exists and is not a layerkd evaluation result; it was left as it is "
                          "(give another --output)")
    if not _same(old, ident, path):
        raise ConfigError(f"evaluate: {path} holds another evaluation ({_describe(old)}); it was left as it is "
                          "(give another --output)")

"""The end of a successful run: keep what evaluation and ``--resume`` need, drop the rest.

Once ``finetune``/``distill`` has written its final files (the model, ``config.yaml``,
``results.json``, ``metrics.json``), :func:`finish_run` removes the run folder's ``checkpoints/``
— the step checkpoints (weights, optimizer and scheduler state, RNG) and ``checkpoints/best`` (a
copy of the saved model) — and those of its sub-runs (takd's ``assistant/``, the teacher-heads
fit's ``teacher_heads_run/``), then logs the folder's size. What stays is what evaluation needs:
the model, its config, results, metrics, the JSONL log (and ``teacher_heads/``), about the size of
the model's weights. ``train.keep_final_checkpoints: true`` (``--keep-checkpoints``) keeps them.
Not to be confused with ``train.keep_checkpoints``, how many step checkpoints are kept *while*
the run trains.

**Resume.** A run folder with ``metrics.json`` and ``results.json`` and no step checkpoint is a
finished run: ``--resume`` says so and returns its recorded results instead of training again
(:func:`finished_result`; with another configuration it is an error). A finished run whose checkpoints were kept resumes from its last
checkpoint as before (that re-scores it and rewrites the same outputs). An interrupted run has no
``metrics.json`` yet and its checkpoints are untouched.

The removal is crash-safe: ``checkpoints/`` is first renamed to ``.checkpoints.removed`` (a kill
then leaves no half-deleted checkpoint that ``--resume`` could mistake for the newest one) and the
leftover of a killed removal is cleared by the next :func:`finish_run`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

log = logging.getLogger("layerkd")

REMOVED = ".checkpoints.removed"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")


def folder_size(path: Path) -> int:
    """Bytes in the files under ``path`` (symlinks not followed)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:  # removed meanwhile
                pass
    return total


def format_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover


def weights_size(out: Path) -> int:
    """Bytes of the saved model's weight files (the run folder's top level)."""
    return sum(p.stat().st_size for p in Path(out).iterdir() if p.is_file() and p.suffix in WEIGHT_SUFFIXES)


def _checkpoint_dirs(out: Path) -> list[Path]:
    found = (out / "checkpoints", *sorted(out.glob("*/checkpoints")), *sorted(out.glob("*/*/checkpoints")))
    return [d for d in found if d.is_dir() and not d.is_symlink()]


def _remove(d: Path) -> int:
    size = folder_size(d)
    aside = d.with_name(REMOVED)
    shutil.rmtree(aside, ignore_errors=True)
    os.replace(d, aside)
    shutil.rmtree(aside, ignore_errors=True)
    return size


def finish_run(out: str | Path, *, keep_checkpoints: bool) -> dict[str, int]:
    """Drop the finished run's checkpoints unless ``keep_checkpoints``; log and return the sizes
    (``folder``, ``weights``, ``removed`` bytes)."""
    out = Path(out)
    for leftover in (out / REMOVED, *out.glob(f"*/{REMOVED}"), *out.glob(f"*/*/{REMOVED}")):
        shutil.rmtree(leftover, ignore_errors=True)
    removed = 0 if keep_checkpoints else sum(_remove(d) for d in _checkpoint_dirs(out))
    sizes = {"folder": folder_size(out), "weights": weights_size(out), "removed": removed}
    note = ""
    if removed:
        note = f"; removed {format_bytes(removed)} of checkpoints (optimizer state, intermediate steps): --keep-checkpoints keeps them"
    elif keep_checkpoints:
        note = "; checkpoints kept (--keep-checkpoints)"
    log.info("run folder %s: %s (model weights %s)%s", out, format_bytes(sizes["folder"]), format_bytes(sizes["weights"]), note)
    return sizes


def finished_result(out: str | Path | None, config_hash: str = "") -> dict[str, Any] | None:
    """The recorded results of a finished run in ``out`` whose checkpoints were removed (None:
    not such a run, so ``--resume`` goes on as usual); says so in the log. A finished run trained
    with another configuration (``config_hash`` differs from the one in its ``results.json``) is
    a :class:`~layerkd.errors.CheckpointError`: there is nothing to continue it from."""
    if out is None:
        return None
    out = Path(out)
    ckpts = out / "checkpoints"
    if not (out / "metrics.json").is_file() or (ckpts.is_dir() and any(ckpts.glob("step-*"))):
        return None
    try:
        result = json.loads((out / "results.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(result, dict) or not {"best", "last", "best_epoch"} <= set(result):
        return None
    if config_hash and result.get("config_hash") not in (None, config_hash):
        from .errors import CheckpointError  # noqa: PLC0415

        raise CheckpointError(f"--resume: {out} holds a finished run trained with another configuration (resolved config "
                              "hash differs); nothing to resume: use a new --output-dir, or --overwrite to train it again")
    log.info("--resume: %s holds a finished run (metrics.json, results.json; its checkpoints were removed at the end): "
             "nothing to resume; its recorded results follow (--overwrite trains it again)", out)
    return result

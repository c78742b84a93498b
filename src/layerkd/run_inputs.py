"""What a run is trained from, recorded in every checkpoint, so that ``--resume`` notices a change.

The resolved config already travels as ``config_hash`` (checked by the trainer: another config
is refused). A config names its inputs by *path*, though, and the files behind a path can change
between a run and its resume (a train file halved, labels flipped, a teacher re-trained in
place). So every checkpoint's ``state.json`` also records the *content* of each input, with the
fingerprints layerkd already computes:

* ``train``, ``eval``, ``test`` (when the evaluation split is held out) and each ``extra_eval:<name>`` — the split as read, after subsampling:
  :attr:`layerkd.data.readers.Split.fingerprint` (the source bytes' SHA-256, the column mapping
  and the subsample), its source and row count;
* ``teacher`` — :func:`layerkd.models.fingerprint.model_fingerprint` of the teacher as loaded
  (weights, config, tokenizer; after any label reordering, :mod:`layerkd.models.labels`);
* ``student`` (distil) / ``model`` (finetune) — the same fingerprint of the model training
  starts from, before the first step (a path, or a spec built from the teacher and the seed);
* ``teacher_heads`` — the fingerprint of heads given as a directory (``teacher.heads``); fitted
  heads are keyed by the teacher, the train data and the config, all covered above.

On ``--resume`` the newest checkpoint's record is compared with this run's
(:func:`check_resume_inputs`, called by the stages before any work). A difference stops the run
with a one-line :class:`~layerkd.errors.CheckpointError` naming each changed input (exit code 2),
nothing touched. ``--allow-changed-inputs`` continues anyway, with a warning naming the same
changes; the checkpoints written from then on record the new inputs. Checkpoints of older
layerkd versions have no record and are resumed as before.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from torch import nn

from .checkpoint import list_checkpoints
from .errors import CheckpointError
from .models.fingerprint import model_fingerprint

log = logging.getLogger("layerkd")

ALLOW_FLAG = "--allow-changed-inputs"

_WHAT = {"train": "training data", "eval": "evaluation data", "test": "test data", "teacher": "teacher", "student": "student's starting weights",
         "model": "starting model", "teacher_heads": "teacher heads"}


def split_input(split) -> dict[str, Any]:
    return {"fingerprint": split.fingerprint, "source": split.source, "rows": len(split)}


def model_input(model: nn.Module, source: str, fingerprint: str | None = None) -> dict[str, Any]:
    return {"fingerprint": fingerprint or model_fingerprint(model), "source": str(source)}


def run_inputs(*, train, dev, test=None, extra=None, **models: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The record of a run's inputs: its splits and ``models`` (name → :func:`model_input`)."""
    out = {"train": split_input(train), "eval": split_input(dev)}
    if test is not None:
        out["test"] = split_input(test)
    for name, split in sorted((extra or {}).items()):
        out[f"extra_eval:{name}"] = split_input(split)
    out.update({k: v for k, v in models.items() if v is not None})
    return out


def recorded_inputs(ckpt_dir: Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint with a readable ``state.json`` and the inputs it records (None: no
    checkpoint, or one written before inputs were recorded)."""
    for ckpt in reversed(list_checkpoints(ckpt_dir)):
        try:
            state = json.loads((ckpt / "state.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # incomplete or corrupted: the trainer falls back past it, and so does this check
        inputs = state.get("inputs")
        return (ckpt, inputs) if isinstance(inputs, dict) else None
    return None


def _describe(key: str, old: dict[str, Any], new: dict[str, Any]) -> str:
    base, _, name = key.partition(":")
    what = f"extra evaluation set {name!r}" if base == "extra_eval" else _WHAT.get(key, key)
    src = new.get("source") or old.get("source")
    text = f"{what} {src}" if src else what
    if old.get("source") and new.get("source") and old["source"] != new["source"]:
        text = f"{what} (was {old['source']}, now {new['source']})"
    if "rows" in old and "rows" in new:
        text += f" ({new['rows']} rows, was {old['rows']})" if old["rows"] != new["rows"] else " (same row count, other content)"
    return text


def input_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """One phrase per input whose content differs (inputs only one side knows are ignored: a record
    of an older layerkd, or an input this kind of run does not have)."""
    return [_describe(k, old[k], new[k]) for k in new
            if k in old and isinstance(old[k], dict) and old[k].get("fingerprint") != new[k].get("fingerprint")]


def check_resume_inputs(out_dir: Path, inputs: dict[str, Any], *, allow: bool) -> None:
    """Compare this run's inputs with the newest checkpoint's record (see the module docstring)."""
    found = recorded_inputs(Path(out_dir) / "checkpoints")
    if found is None:
        return
    ckpt, old = found
    changed = input_changes(old, inputs)
    if not changed:
        return
    listing = "; ".join(changed)
    if allow:
        log.warning("--resume: continuing from %s although these inputs changed (%s): %s", ckpt.name, ALLOW_FLAG, listing)
        return
    raise CheckpointError(f"--resume: inputs changed since checkpoint {ckpt}: {listing}; pass {ALLOW_FLAG} to continue "
                          "anyway, or start again with --overwrite")

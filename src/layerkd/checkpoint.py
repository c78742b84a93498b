"""Crash-safe checkpoints.

A checkpoint is a directory ``checkpoints/step-000123/`` written as ``.step-000123.tmp``,
every file fsync'ed, a ``manifest.json`` with each file's size and SHA-256 written last, then
renamed into place (and the parent directory fsync'ed). Loading verifies the manifest; a
truncated or corrupted checkpoint is reported and the previous one is used. Out-of-disk while
saving removes the temporary directory, leaves the previous checkpoints intact and raises a
clear :class:`~layerkd.errors.CheckpointError`.

Contents (everything needed to continue exactly): ``model.safetensors`` (student),
``objectives.safetensors`` (projections, student heads …), ``optimizer.pt`` and ``scheduler.pt``
(loaded with ``weights_only=True``), ``rng.safetensors`` + ``state.json`` (RNG states of Python,
NumPy and torch, the recipe's phase and objective states such as RAIL's draw, the data-order
position, the best score, the evaluation history and the log offset).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import shutil
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import nn

from . import faults
from .errors import CheckpointError

MANIFEST = "manifest.json"


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            block = fh.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def atomic_write_text(path: Path, text: str) -> None:
    """Write a small file atomically (temp name, fsync, rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def out_of_space(exc: BaseException, where: Path | None = None) -> bool:
    """Whether ``exc`` means the disk (or quota) is full. Writers report it differently: ``open``
    raises ``OSError(ENOSPC)``, safetensors a ``SafetensorError`` naming "os error 28", and
    ``torch.save`` a bare ``RuntimeError`` ("unexpected pos …") — for those the free space of
    ``where`` decides."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc)
    if any(s in text for s in ("No space left on device", "os error 28", "Disk quota exceeded", "os error 122")):
        return True
    if where is not None and isinstance(exc, (OSError, RuntimeError)):
        try:
            return shutil.disk_usage(where).free < (1 << 20)
        except OSError:
            return False
    return False


def no_space_error(what: Path | str) -> CheckpointError:
    return CheckpointError(
        f"no space left on device while writing {what}; nothing half-written was kept and earlier checkpoints are intact "
        "— free space and run again with --resume"
    )


@contextmanager
def disk_space_guard(what: Path | str, where: Path):
    """Turn an out-of-disk failure while writing ``what`` into a one-line :class:`CheckpointError`."""
    try:
        yield
    except CheckpointError:
        raise
    except Exception as exc:
        if out_of_space(exc, where):
            raise no_space_error(what) from None
        raise


def write_dir_atomically(final: Path, writer: Callable[[Path], None]) -> None:
    """Run ``writer(tmp_dir)``, add a checksum manifest, fsync and rename ``tmp_dir`` → ``final``.

    On any failure (out of disk, an interrupt) the temporary directory is removed and an existing
    ``final`` is left — or put back — in place; out of disk becomes a one-line
    :class:`~layerkd.errors.CheckpointError`. A hard kill between moving an existing ``final``
    aside and renaming the new one in leaves ``.<name>.old``; :func:`recover_dir` puts it back."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp")
    old: Path | None = None
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        tmp.mkdir()
        writer(tmp)
        manifest = {}
        for f in sorted(tmp.rglob("*")):
            if f.is_file():
                _fsync_file(f)
                manifest[str(f.relative_to(tmp))] = {"size": f.stat().st_size, "sha256": sha256_file(f)}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
        _fsync_file(tmp / MANIFEST)
        _fsync_dir(tmp)
        if final.exists():
            old = final.with_name(f".{final.name}.old")
            if old.exists():
                shutil.rmtree(old)
            os.replace(final, old)
            faults.point("swap")
        os.replace(tmp, final)
        _fsync_dir(final.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException as exc:  # noqa: BLE001 - clean up on anything (KeyboardInterrupt included), then re-raise
        full = isinstance(exc, Exception) and out_of_space(exc, final.parent)
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and old.exists() and not final.exists():
            os.replace(old, final)
        if full:
            raise no_space_error(final) from None
        raise


def recover_dir(final: Path, warn: Callable[[str], None] | None = None) -> None:
    """Undo a replacement interrupted by a hard kill: ``final`` missing but ``.<name>.old``
    complete → put the old one back. Leftover temporary directories are removed."""
    final = Path(final)
    old = final.with_name(f".{final.name}.old")
    tmp = final.with_name(f".{final.name}.tmp")
    if not final.exists() and old.is_dir() and verify_dir(old) is None:
        os.replace(old, final)
        _fsync_dir(final.parent)
        if warn is not None:
            warn(f"{final.name}: restored the previous version (a replacement was interrupted)")
    for leftover in (old, tmp):
        if leftover.exists():
            shutil.rmtree(leftover, ignore_errors=True)


def recover_all(folder: Path, warn: Callable[[str], None] | None = None) -> None:
    """:func:`recover_dir` for every directory of ``folder`` whose replacement a hard kill left
    half done (a ``.<name>.old`` or ``.<name>.tmp`` beside it)."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for leftover in sorted(folder.glob(".*.old")) + sorted(folder.glob(".*.tmp")):
        recover_dir(folder / leftover.name[1:].rsplit(".", 1)[0], warn=warn)


def verify_dir(path: Path) -> str | None:
    """None if the directory matches its manifest, else a one-line reason."""
    path = Path(path)
    mpath = path / MANIFEST
    if not mpath.exists():
        return "no manifest (incomplete write)"
    try:
        manifest = json.loads(mpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return "manifest unreadable"
    for name, meta in manifest.items():
        f = path / name
        if not f.exists():
            return f"{name} missing"
        if f.stat().st_size != meta["size"]:
            return f"{name} truncated ({f.stat().st_size} of {meta['size']} bytes)"
        if sha256_file(f) != meta["sha256"]:
            return f"{name} checksum mismatch"
    return None


# ------------------------------------------------------------------------- RNG states


def capture_rng() -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    py = random.getstate()
    np_state = np.random.get_state()
    meta = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
    }
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda_{i}"] = s
    return meta, tensors


def restore_rng(meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    py = meta["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = meta["numpy"]
    np.random.set_state((n[0], np.asarray(n[1], dtype=np.uint32), n[2], n[3], n[4]))
    torch.set_rng_state(tensors["torch_cpu"])
    if torch.cuda.is_available():
        states = [tensors[k] for k in sorted(tensors) if k.startswith("torch_cuda_")]
        if states:
            torch.cuda.set_rng_state_all(states)


# ------------------------------------------------------------------------- save / load


def save_module(module: nn.Module, path: Path) -> None:
    """safetensors, shared tensors (tied embeddings) handled; an empty module writes a stub."""
    if any(True for _ in module.state_dict()):
        save_model(module, str(path))
    else:
        save_file({"_empty": torch.zeros(0)}, str(path))


def load_module(module: nn.Module, path: Path) -> None:
    if any(True for _ in module.state_dict()):
        missing, unexpected = load_model(module, str(path), strict=True)


def save_checkpoint(
    path: Path,
    *,
    model: nn.Module,
    objectives: nn.Module,
    optimizer_state: dict[str, Any],
    scheduler_state: dict[str, Any],
    state: dict[str, Any],
    rng_ranks: list[tuple[dict[str, Any], dict[str, torch.Tensor]]] | None = None,
) -> None:
    """``rng_ranks``: every process's RNG states (multi-process runs), gathered by the caller."""
    rng_meta, rng_tensors = capture_rng()
    if rng_ranks:
        state = dict(state, rng_ranks=[meta for meta, _ in rng_ranks])
        rng_tensors = dict(rng_tensors)
        for r, (_, tensors) in enumerate(rng_ranks):
            rng_tensors.update({f"rank{r}.{k}": v for k, v in tensors.items()})

    def writer(tmp: Path) -> None:
        save_module(model, tmp / "model.safetensors")
        faults.point("checkpoint")  # test-only fault injection (LAYERKD_FAULT)
        save_module(objectives, tmp / "objectives.safetensors")
        torch.save(optimizer_state, tmp / "optimizer.pt")
        torch.save(scheduler_state, tmp / "scheduler.pt")
        save_file(rng_tensors, str(tmp / "rng.safetensors"))
        (tmp / "state.json").write_text(json.dumps(dict(state, rng=rng_meta)))

    write_dir_atomically(path, writer)


def load_checkpoint(path: Path) -> dict[str, Any]:
    path = Path(path)
    reason = verify_dir(path)
    if reason:
        raise CheckpointError(f"checkpoint {path} is corrupted: {reason}")
    return {
        "model": path / "model.safetensors",
        "objectives": path / "objectives.safetensors",
        "optimizer": torch.load(path / "optimizer.pt", weights_only=True, map_location="cpu"),
        "scheduler": torch.load(path / "scheduler.pt", weights_only=True, map_location="cpu"),
        "rng": load_file(str(path / "rng.safetensors")),
        "state": json.loads((path / "state.json").read_text()),
    }


def rank_rng(state: dict[str, Any], tensors: dict[str, torch.Tensor], rank: int) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The RNG states to restore in process ``rank`` (its own when the checkpoint has them)."""
    ranks = state.get("rng_ranks") or []
    if rank < len(ranks):
        prefix = f"rank{rank}."
        return ranks[rank], {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    return state["rng"], {k: v for k, v in tensors.items() if not k.startswith("rank")}


def list_checkpoints(root: Path) -> list[Path]:
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-")), key=lambda p: p.name)


def latest_valid_checkpoint(root: Path, warn: Callable[[str], None]) -> Path | None:
    """Newest checkpoint that verifies; corrupted ones are reported (and skipped)."""
    for ckpt in reversed(list_checkpoints(root)):
        reason = verify_dir(ckpt)
        if reason is None:
            return ckpt
        warn(f"checkpoint {ckpt.name} is corrupted ({reason}); falling back to the previous one")
    return None


def prune_checkpoints(root: Path, keep: int) -> None:
    for old in list_checkpoints(root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)

"""Shared stage plumbing: data loading, output directories, result files, config hashing."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .. import __version__, faults, jsonio
from ..checkpoint import atomic_write_text, disk_space_guard
from ..config import DataConfig, RunConfig, dump_config, trained_dump
from ..data.readers import Split, read_file, read_split
from ..data.validation import split_validation
from ..errors import ConfigError
from ..model_card import write_card
from ..tasks import Task


class RunData(NamedTuple):
    """The splits of a run: ``train``; ``select`` serves every choice (best epoch, early stopping,
    teacher heads); ``test`` is scored once at the end (None when ``select`` is the evaluation split
    itself, ``data.validation.source: eval``); ``extra`` are further labelled evaluation sets."""

    train: Split
    select: Split
    test: Split | None
    extra: dict[str, Split]


def load_data(data: DataConfig, task: Task) -> RunData:
    """Read the splits; carve the validation split (:mod:`layerkd.data.validation`) before subsampling."""
    if data.data_dir is not None or data.hf_dataset is not None:
        kw = {"data_dir": data.data_dir, "hf_dataset": data.hf_dataset, "hf_config": data.hf_config, "columns": data.columns}
        train = read_split(task, data.train_split, **kw)
        dev = read_split(task, data.eval_split, **kw)
    else:
        if data.train_file is None or data.dev_file is None:
            raise ConfigError("data: give both train_file and dev_file (or a GLUE data_dir)")
        train = read_file(task, data.train_file, data.columns, split="train")
        dev = read_file(task, data.dev_file, data.columns, split="dev")
    val = None
    if data.validation.source == "carve":
        v = data.validation
        train, val = split_validation(train, fraction=v.fraction, max_rows=v.max_rows, seed=v.seed)
    train = train.subsample(data.train_subsample, data.subsample_seed)
    extra = {name: read_file(task, es.file, es.columns, split=name) for name, es in data.extra_eval.items()}
    return RunData(train, dev, None, extra) if val is None else RunData(train, val, dev, extra)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch before anything random is built (student init, projections,
    heads), so that a rebuilt run — e.g. on --resume — starts from the same state."""
    import random  # noqa: PLC0415

    import torch  # noqa: PLC0415

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def environment() -> dict[str, Any]:
    import torch  # noqa: PLC0415
    import transformers  # noqa: PLC0415

    return {
        "layerkd": __version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def config_hash(cfg: RunConfig) -> str:
    """Hash of everything that changes what is trained (not where outputs or caches go)."""
    return hashlib.sha256(json.dumps(trained_dump(cfg), sort_keys=True).encode()).hexdigest()[:16]


def distributed() -> bool:
    """Launched as one of several processes (``accelerate launch``/``torchrun`` set WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def _process_state():
    import torch  # noqa: PLC0415
    from accelerate import PartialState  # noqa: PLC0415

    return PartialState(cpu=not torch.cuda.is_available())


def is_main_process() -> bool:
    """True in a single-process run and in the main process of a distributed one."""
    return not distributed() or _process_state().is_main_process


def barrier() -> None:
    """Wait for every process (a no-op in a single-process run)."""
    if distributed():
        _process_state().wait_for_everyone()


def end_distributed() -> None:
    """Tear the process group down at the end of a distributed command (a no-op otherwise).

    Left to the interpreter's exit, gloo's process group is destroyed with its threads still
    joinable, and a rank can abort (``terminate called without an active exception``, SIGABRT)
    after the run has finished and written its results — seen on a loaded 2-core machine."""
    if not distributed():
        return
    import torch.distributed as dist  # noqa: PLC0415

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def output_directory(path: str | None, *, overwrite: bool, resume: bool, cfg: RunConfig | None = None):
    """The run directory, checked, created, locked and marked by :func:`layerkd.outputs.run_directory`
    (never over or around an input of ``cfg``: :func:`layerkd.outputs.input_paths`). An existing non-empty directory is
    refused unless ``overwrite`` (replace it: only a directory layerkd made) or ``resume`` (continue
    the run in it); a failure before the first checkpoint removes what the run created. With
    several processes every process checks first, then only the main one changes anything."""
    from ..outputs import input_paths, run_directory  # noqa: PLC0415

    inputs = input_paths(cfg) if cfg is not None else ()
    with run_directory(path, overwrite=overwrite, resume=resume, inputs=inputs, main=is_main_process(),
                       barrier=barrier) as out:
        yield out


def write_outputs(out: Path, model, cfg: RunConfig, result: dict[str, Any], *, eval_outputs: dict[str, np.ndarray] | None = None,
                  split_name: str = "dev") -> None:
    """Final files: the (best) model as a loadable directory, metrics.json, results.json, config.yaml and
    the model card README.md (:mod:`layerkd.model_card`).
    Out of disk is a one-line error (the last checkpoint is intact: ``--resume`` writes them again)."""
    with disk_space_guard(f"the final outputs in {out}", out):
        model.save_pretrained(out)
        faults.point("outputs")  # test-only fault injection (LAYERKD_FAULT)
        metrics = {"task": result["task"], "split": split_name, **result["best"], "last_epoch": result["last"],
                   "best_epoch": result["best_epoch"], "best_step": result["best_step"]}
        full = dict(result, environment=environment(), config_hash=config_hash(cfg))
        if eval_outputs:
            full["dev_predictions"] = {k: v.tolist() for k, v in eval_outputs.items()}
        atomic_write_text(out / "config.yaml", dump_config(cfg))
        atomic_write_text(out / "results.json", jsonio.dumps(full, indent=1))
        write_card(out, model, cfg, result)  # README.md: the Hugging Face model card (layerkd.model_card)
        atomic_write_text(out / "metrics.json", jsonio.dumps(metrics, indent=2))


def format_metrics(metrics: dict[str, float]) -> str:
    return "  ".join(f"{k}={v:.4f}" for k, v in metrics.items() if isinstance(v, (int, float)))

"""Shared stage plumbing: data loading, output directories, result files, config hashing."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__, faults
from ..checkpoint import atomic_write_text, disk_space_guard, list_checkpoints
from ..config import DataConfig, RunConfig, dump_config, trained_dump
from ..data.readers import Split, read_file, read_split
from ..errors import ConfigError, LayerKDError
from ..tasks import Task


def load_data(data: DataConfig, task: Task) -> tuple[Split, Split, dict[str, Split]]:
    """Train split (subsampled if asked), evaluation split and extra evaluation sets."""
    if data.data_dir is not None or data.hf_dataset is not None:
        kw = {"data_dir": data.data_dir, "hf_dataset": data.hf_dataset, "hf_config": data.hf_config, "columns": data.columns}
        train = read_split(task, data.train_split, **kw)
        dev = read_split(task, data.eval_split, **kw)
    else:
        if data.train_file is None or data.dev_file is None:
            raise ConfigError("data: give both train_file and dev_file (or a GLUE data_dir)")
        train = read_file(task, data.train_file, data.columns, split="train")
        dev = read_file(task, data.dev_file, data.columns, split="dev")
    train = train.subsample(data.train_subsample, data.subsample_seed)
    extra = {name: read_file(task, es.file, es.columns, split=name) for name, es in data.extra_eval.items()}
    return train, dev, extra


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
def output_directory(path: str | None, *, overwrite: bool, resume: bool):
    """Create the run directory; on a user error before the first checkpoint, remove it again.

    An existing non-empty directory is refused unless ``overwrite`` (replace it) or ``resume``
    (continue the run in it). With several processes every process checks first, then only the
    main one replaces or creates the directory."""
    if path is None:
        raise ConfigError("output_dir: missing; give --output-dir")
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output directory {out} exists and is a file")
    existed = out.exists() and any(out.iterdir())
    if existed and not (overwrite or resume):
        raise ConfigError(f"output directory {out} exists and is not empty; pass --overwrite to replace it or --resume to continue")
    created = not out.exists() or (existed and overwrite and not resume)
    barrier()  # every process has looked before the main one changes anything
    main = is_main_process()
    if main:
        if existed and overwrite and not resume:
            shutil.rmtree(out)
        out.mkdir(parents=True, exist_ok=True)
    barrier()
    existed = existed and not (overwrite and not resume)
    try:
        yield out
    except (LayerKDError, KeyboardInterrupt):
        if main and (created or not existed) and not list_checkpoints(out / "checkpoints"):
            shutil.rmtree(out, ignore_errors=True)
        raise


def write_outputs(out: Path, model, cfg: RunConfig, result: dict[str, Any], *, eval_outputs: dict[str, np.ndarray] | None = None,
                  split_name: str = "dev") -> None:
    """Final files: the (best) model as a loadable directory, metrics.json, results.json, config.yaml.
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
        atomic_write_text(out / "results.json", json.dumps(full, indent=1, default=float))
        atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2, default=float))


def format_metrics(metrics: dict[str, float]) -> str:
    return "  ".join(f"{k}={v:.4f}" for k, v in metrics.items() if isinstance(v, (int, float)))

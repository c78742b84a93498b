"""``layerkd fit-heads``: the fit-teacher-heads stage on its own (heads + per-layer report)."""

from __future__ import annotations

from pathlib import Path

from .. import jsonio
from ..checkpoint import atomic_write_text
from ..config import CacheConfig, DataConfig, HeadsFitConfig, RunConfig, TeacherConfig
from ..data.encoding import EncodedSplit
from ..models.fingerprint import model_fingerprint
from ..models.load import load_model
from ..tasks import task_from_config
from .common import load_data, output_directory
from .distill import cache_root
from .heads import fit_teacher_heads
from .preflight import check_max_length


def fit_options(*, epochs: int, layers: str, standardize: bool) -> HeadsFitConfig:
    """The fit settings from ``fit-heads``' options: ``--layers`` is ``intermediate``, ``all`` or
    comma-separated layer numbers; anything else, and values the config model refuses (e.g.
    ``--epochs 0``), is a one-line ConfigError."""
    from pydantic import ValidationError  # noqa: PLC0415

    from ..config import format_validation_error  # noqa: PLC0415
    from ..errors import ConfigError  # noqa: PLC0415

    if layers in ("intermediate", "all"):
        lay: str | list[int] = layers
    else:
        try:
            lay = [int(x) for x in layers.split(",") if x.strip()]
        except ValueError:
            raise ConfigError(f"--layers {layers!r}: expected intermediate, all or comma-separated layer numbers "
                              "(e.g. 1,2,3)") from None
    try:
        return HeadsFitConfig(epochs=epochs, layers=lay, standardize=standardize)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, "fit-heads").replace(": layers:", ": --layers:")) from None


def fit_heads_cli(*, teacher: str, task: str, data_dir: str, output_dir, fit: HeadsFitConfig, max_length: int, seed: int,
                  subsample: int | None, overwrite: bool) -> dict:
    t = task_from_config(task)
    train, dev, _, _ = load_data(DataConfig(data_dir=data_dir, train_subsample=subsample), t)
    model = load_model(teacher, t, require_head=True)
    check_max_length(max_length, "--max-length", teacher=model)
    enc = {"student": model.text_encoder, "teacher": model.text_encoder}
    train_ds, dev_ds = EncodedSplit(train, enc, max_length), EncodedSplit(dev, enc, max_length)
    cfg = RunConfig(task=task, data=DataConfig(data_dir=data_dir), teacher=TeacherConfig(path=teacher), student="bottom:1",
                    cache=CacheConfig())
    from ..teacher_cache import TeacherCache  # noqa: PLC0415

    root = cache_root(cfg)
    with output_directory(str(output_dir) if output_dir else None, overwrite=overwrite, resume=False, cfg=cfg) as out:
        heads, report = fit_teacher_heads(teacher=model, task=t, train=train_ds, dev=dev_ds, cfg=fit, seed=seed,
                                          max_length=max_length, work_dir=Path(out) / "run", cache_root=root,
                                          teacher_fp=model_fingerprint(model), cache=TeacherCache(root, max_length=max_length))
        heads.save(out, extra=report)
        atomic_write_text(Path(out) / "report.json", jsonio.dumps(report, indent=2))
    return report

"""``cache ls``, ``cache clear`` and ``cache build`` (the entries a cache-only distillation reads)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from .app import cache_app
from .options import (
    ConfigOpt,
    DataDirOpt,
    HfConfigOpt,
    HfDatasetOpt,
    LabelColumnOpt,
    MaxLenOpt,
    RemoteOpt,
    SubOpt,
    TaskOpt,
    TextColumnsOpt,
    build_config,
    hf_options,
)

log = logging.getLogger("layerkd")


@cache_app.command("ls")
def cache_ls(cache_dir: Annotated[Path | None, typer.Option("--cache-dir")] = None) -> None:
    """List teacher-cache entries (directories carrying the cache's metadata; anything else is named in a warning)."""
    from ..teacher_cache import TeacherCache, default_cache_dir  # noqa: PLC0415

    root = cache_dir or default_cache_dir()
    rows, strangers = TeacherCache(root).scan()
    _warn_strangers(strangers)
    if not rows:
        typer.echo(f"{root}: empty")
    for r in rows:
        what = r.get("field", "?") + (f":{r['pooling']}" if r.get("pooling") else "")
        typer.echo(f"{r['key']}  {r['bytes'] / 1e6:9.2f} MB  {what:22s} rows={r.get('rows', '?'):<7} "
                   f"max_len={r.get('max_length', '?'):<4} teacher={str(r.get('teacher', '?'))[:12]}  {r.get('data_source', '')}")


@cache_app.command("clear")
def cache_clear(
    keys: Annotated[list[str] | None, typer.Argument(help="entries to remove (default: all)")] = None,
    cache_dir: Annotated[Path | None, typer.Option("--cache-dir")] = None,
) -> None:
    """Remove teacher-cache entries (all, or the given keys); files that are not entries are left alone."""
    from ..teacher_cache import TeacherCache, default_cache_dir  # noqa: PLC0415

    root = cache_dir or default_cache_dir()
    n, strangers = TeacherCache(root).clear(keys or None)
    _warn_strangers(strangers)
    typer.echo(f"removed {n} entr{'y' if n == 1 else 'ies'} from {root}")


def _warn_strangers(paths: list[Path]) -> None:
    if paths:
        names = ", ".join(p.name for p in paths[:10]) + (f" and {len(paths) - 10} more" if len(paths) > 10 else "")
        log.warning("warning: %s holds %d item(s) that are not teacher-cache entries, left alone: %s",
                    paths[0].parent, len(paths), names)


@cache_app.command("build")
def cache_build(
    teacher: Annotated[str | None, typer.Option("--teacher", help="fine-tuned teacher directory")] = None,
    needs: Annotated[str, typer.Option("--needs", help="what to cache: logits, layer_vectors[:cls|mean|max], head_logits "
                                                       "(comma-separated; layer_vectors alone is cls)")] = "logits",
    task: TaskOpt = None,
    data_dir: DataDirOpt = None,
    train_file: Annotated[Path | None, typer.Option("--train-file", help="training file (with --dev-file)")] = None,
    dev_file: Annotated[Path | None, typer.Option("--dev-file", help="evaluation file")] = None,
    hf_dataset: HfDatasetOpt = None,
    hf_config: HfConfigOpt = None,
    text_columns: TextColumnsOpt = None,
    label_column: LabelColumnOpt = None,
    teacher_heads: Annotated[str | None, typer.Option("--teacher-heads", help="fitted pseudo classifiers (for head_logits)")] = None,
    max_length: MaxLenOpt = None,
    train_subsample: SubOpt = None,
    cache_dir: Annotated[Path | None, typer.Option("--cache-dir", help="teacher cache directory")] = None,
    dtype: Annotated[str | None, typer.Option("--dtype", help="fp16 or fp32 (cache.dtype) \\[default: fp16]")] = None,
    config: ConfigOpt = None,
    trust_remote_code: RemoteOpt = False,
) -> None:
    """Load the teacher once and write the cache entries a `distill --teacher-cache-only` run reads
    (training and validation splits, made as distill makes them from the same options)."""
    from ..cache_build import build_cache, parse_needs  # noqa: PLC0415
    from ..config import read_yaml  # noqa: PLC0415

    wanted = parse_needs(needs)
    ov = {"task": task, "data.data_dir": data_dir, "data.train_file": train_file, "data.dev_file": dev_file,
          "data.train_subsample": train_subsample, "teacher.path": teacher, "teacher.heads": teacher_heads,
          "train.max_length": max_length, "cache.dir": cache_dir, "cache.dtype": dtype,
          "trust_remote_code": trust_remote_code or None}
    ov.update(hf_options(hf_dataset, hf_config, text_columns, label_column))
    given = read_yaml(config) if config is not None else {}
    if given.get("model") is None and given.get("student") is None:
        ov["student"] = "bilstm:"  # a distill config needs a student; cache build never builds it
    cfg = build_config(config, ov)
    if cfg.teacher is None:
        from ..errors import ConfigError  # noqa: PLC0415

        raise ConfigError("cache build: give --teacher (or a distill --config naming teacher.path)")
    for r in build_cache(cfg, wanted):
        what = r["field"] + (f":{r['pooling']}" if r["pooling"] else "")
        typer.echo(f"{r['key']}  {'built' if r['built'] else 'present':7s}  {what:22s} {r['split']:10s} rows={r['rows']:<7} {r['source']}")
    typer.echo(f"cache: {cfg.cache.dir or 'the default cache directory'}; distill with --teacher-cache-only reads these entries")

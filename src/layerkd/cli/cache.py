"""``cache ls`` and ``cache clear``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from .app import cache_app

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

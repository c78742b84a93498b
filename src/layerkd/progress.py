"""A rich progress bar that degrades to nothing when stderr is not a terminal (background runs
log to ``log.jsonl`` instead)."""

from __future__ import annotations

from contextlib import contextmanager


class _NoBar:
    def add_task(self, *a, **k):
        return 0

    def update(self, *a, **k):
        return None


@contextmanager
def make_progress(enabled: bool):
    if not enabled:
        yield _NoBar()
        return
    from rich.progress import (  # noqa: PLC0415
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), transient=True) as bar:
        yield bar

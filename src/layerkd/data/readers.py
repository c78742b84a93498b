"""Readers: every source becomes a :class:`Split` of :class:`Example` rows.

* GLUE directories in the classic layout (``<dir>/RTE/train.tsv``) are read the way GLUE's own
  processors read them: tab-separated, **no quote processing** (``csv.reader(quotechar=None)``),
  UTF-8 with an optional BOM, columns by header name or, for header-less CoLA, by position.
* User files: ``.tsv`` (GLUE-style, no quoting), ``.csv`` (RFC-4180 quoting), ``.jsonl`` (one
  object per line), with a column mapping ``text_a=…,text_b=…,label=…``.
* Hugging Face ``datasets`` (hub id or a local ``save_to_disk`` directory), with the optional
  ``hub`` extra installed.

Every problem is a :class:`~layerkd.errors.DataError` naming the file, the line and what was
expected. A split is fingerprinted by the SHA-256 of its source bytes (and any subsampling), so
caches keyed on it notice a changed file.

One module per source — :mod:`.glue`, :mod:`.files`, :mod:`.hf` — and the shared row checks in
:mod:`.split`; this module is the one entry point, :func:`read_split`, and re-exports the rest.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from ..tasks import Task
from .files import parse_columns, read_file
from .glue import glue_path, read_glue
from .hf import read_hf
from .split import Example, Split

__all__ = ["Example", "Split", "glue_path", "parse_columns", "read_file", "read_glue", "read_hf", "read_split"]


def read_split(
    task: Task,
    split: str,
    *,
    data_dir: str | Path | None = None,
    file: str | Path | None = None,
    hf_dataset: str | None = None,
    hf_config: str | None = None,
    columns: dict[str, str] | str | None = None,
    require_labels: bool = True,
) -> Split:
    """One entry point for the three sources (exactly one must be given)."""
    given = [x for x in (data_dir, file, hf_dataset) if x is not None]
    if len(given) != 1:
        raise DataError("give exactly one data source: a GLUE --data-dir, a --file, or a Hugging Face dataset")
    if data_dir is not None:
        if columns is not None:
            # a GLUE directory's columns are fixed by the task; a column mapping would be silently ignored
            raise DataError(f"--columns / data.columns applies to files and Hugging Face datasets, not to a GLUE "
                            f"--data-dir ({data_dir}), whose columns the task fixes; remove it or read the file with --file")
        out = read_glue(task, data_dir, split)
    elif file is not None:
        out = read_file(task, file, columns, split=split, require_labels=require_labels)
    else:
        out = read_hf(task, str(hf_dataset), split, columns, config_name=hf_config)
    if require_labels and not out.has_labels:
        raise DataError(f"{out.source}: split {split!r} has no labels, so it cannot be scored")
    return out

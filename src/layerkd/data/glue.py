"""GLUE directories in the classic layout (``<dir>/RTE/train.tsv``), read the way GLUE's own
processors read them: tab-separated, **no quote processing** (``csv.reader(quotechar=None)``),
UTF-8 with an optional BOM, columns by header name or, for header-less CoLA, by position."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

from ..errors import DataError
from ..tasks import Task
from .split import (
    Example,
    Split,
    _check_text,
    _decode,
    _label,
    _read_bytes,
    _sha256_bytes,
    check_unique_columns,
)


def _tsv_rows(text: str, path: Path) -> Iterator[tuple[int, list[str]]]:
    """Rows of a GLUE-style TSV: split on tabs only, no quote handling (as GLUE's processors)."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t", quotechar=None)
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:  # e.g. a field over csv's size limit: a user error, not a traceback
            raise DataError(f"{path} line {reader.line_num}: malformed row ({exc})") from None
        yield reader.line_num, row



def glue_path(task: Task, data_dir: str | Path, split: str) -> Path:
    if task.glue_dir is None:
        raise DataError(f"task {task.name!r} is not a GLUE task; read it with --file / data.train_file")
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"GLUE data directory not found: {root} (expected {root}/{task.glue_dir}/train.tsv …)")
    if split not in task.glue_splits:
        raise DataError(f"{task.name} has no split {split!r}; expected one of: {', '.join(task.glue_splits)}")
    task_dir = root / task.glue_dir
    if not task_dir.is_dir():
        raise DataError(f"GLUE task directory not found: {task_dir}")
    return task_dir / task.glue_splits[split].file


def read_glue(task: Task, data_dir: str | Path, split: str) -> Split:
    """Read one split of a GLUE task from a directory in the classic layout."""
    path = glue_path(task, data_dir, split)
    spec = task.glue_splits[split]
    data = _read_bytes(path, f"{task.name} {split} split")
    text = _decode(data, path)
    rows = _tsv_rows(text, path)
    width: int | None = None
    idx_a, idx_b, idx_label = spec.text_a, spec.text_b, spec.label
    names: dict[str | int, str] = {}
    if spec.header:
        try:
            _, header = next(rows)
        except StopIteration:
            raise DataError(f"{path}: empty file, expected a header row and data rows") from None
        width = len(header)
        check_unique_columns(header, path)
        index = {name: i for i, name in enumerate(header)}

        def col(name: str | int | None) -> int | None:
            if name is None or isinstance(name, int):
                return name
            if name not in index:
                raise DataError(f"{path}: header has no column {name!r} (found: {', '.join(header)})")
            names[index[name]] = name
            return index[name]

        idx_a, idx_b, idx_label = col(spec.text_a), col(spec.text_b), col(spec.label)
    examples: list[Example] = []
    for line, row in rows:
        if not row:
            raise DataError(f"{path} line {line}: empty line, expected {width or 'tab-separated'} fields")
        if width is None:
            width = len(row)  # header-less file: the first row sets the field count
        if len(row) != width:
            raise DataError(f"{path} line {line}: expected {width} tab-separated fields, found {len(row)}")
        a = _check_text(row[idx_a], path, line, names.get(idx_a, f"#{idx_a}"))
        b = None if idx_b is None else _check_text(row[idx_b], path, line, names.get(idx_b, f"#{idx_b}"))
        label = None if idx_label is None else _label(task, row[idx_label], path, line)
        examples.append(Example(a, b, label))
    if not examples:
        raise DataError(f"{path}: no data rows (empty {split} split)")
    return Split(task, split, examples, str(path), _sha256_bytes(data))

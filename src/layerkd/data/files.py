"""User files: ``.tsv`` (GLUE-style, no quoting), ``.csv`` (RFC-4180 quoting) and ``.jsonl`` (one
object per line), with a column mapping ``text_a=…,text_b=…,label=…``."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

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


def parse_columns(spec: str | dict[str, str] | None) -> dict[str, str] | None:
    """``"text_a=sentence1,text_b=sentence2,label=label"`` → mapping (validated keys)."""
    if spec is None or isinstance(spec, dict):
        mapping = spec
    else:
        mapping = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            if "=" not in part:
                raise DataError(f"--columns: expected key=column pairs like text_a=sentence1, got {part!r}")
            key, value = (s.strip() for s in part.split("=", 1))
            if key in mapping:
                raise DataError(f"--columns: {key} is given twice ({mapping[key]!r} and {value!r}); give it once")
            mapping[key] = value
    if mapping is not None:
        bad = sorted(set(mapping) - {"text_a", "text_b", "label"})
        if bad:
            raise DataError(f"--columns: unknown key {bad[0]!r}; expected text_a, text_b and label")
    return mapping


def _default_columns(task: Task) -> dict[str, str]:
    cols = {"text_a": task.text_columns[0], "label": task.label_column}
    if task.is_pair:
        cols["text_b"] = task.text_columns[1]
    return cols


def _records_jsonl(text: str, path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    # split on "\n" only: str.splitlines() also breaks at U+2028, U+2029 and U+0085, which JSON
    # allows unescaped inside strings (json.dumps(..., ensure_ascii=False) writes them raw)
    for line_no, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line, object_pairs_hook=lambda pairs, n=line_no: _unique_object(pairs, path, n))
        except json.JSONDecodeError as exc:
            raise DataError(f"{path} line {line_no}: not valid JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise DataError(f"{path} line {line_no}: expected a JSON object per line")
        yield line_no, obj


def _unique_object(pairs: list[tuple[str, Any]], path: Path, line_no: int) -> dict[str, Any]:
    """A JSON object whose keys are unique (``json.loads`` keeps the last of a repeated key)."""
    check_unique_columns([k for k, _ in pairs], path, line_no)
    return dict(pairs)


def _records_table(text: str, path: Path, delimiter: str, quoting: bool) -> Iterator[tuple[int, dict[str, Any]]]:
    kwargs: dict[str, Any] = {"delimiter": delimiter}
    if not quoting:
        kwargs["quotechar"] = None
    else:
        # strict: an unclosed quote is an error, not a field that silently swallows the rest of the file
        kwargs["strict"] = True
    reader = csv.reader(io.StringIO(text, newline=""), **kwargs)
    try:
        header = next(reader)
    except StopIteration:
        raise DataError(f"{path}: empty file, expected a header row and data rows") from None
    except csv.Error as exc:
        raise DataError(f"{path} line 1: malformed row ({exc})") from None
    check_unique_columns(header, path)
    while True:
        start = reader.line_num + 1  # where the next record begins (a quoted field may span lines)
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise DataError(f"{path} line {start}: malformed row, bad quoting ({exc})") from None
        if not row:
            continue
        if len(row) != len(header):
            raise DataError(f"{path} line {reader.line_num}: expected {len(header)} fields (as in the header), found {len(row)}")
        yield reader.line_num, dict(zip(header, row, strict=True))


def _file_format(path: Path, fmt: str) -> str:
    if fmt != "auto":
        if fmt not in ("tsv", "csv", "jsonl"):
            raise DataError(f"data format {fmt!r} unknown; expected tsv, csv or jsonl")
        return fmt
    suffix = path.suffix.lower()
    return {".tsv": "tsv", ".txt": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl"}.get(suffix, "") or _bad_suffix(path)


def _bad_suffix(path: Path) -> str:
    raise DataError(f"{path}: cannot tell the format from the extension; expected .tsv, .csv or .jsonl (or give the format)")


def read_file(
    task: Task,
    path: str | Path,
    columns: dict[str, str] | str | None = None,
    *,
    fmt: str = "auto",
    split: str = "file",
    require_labels: bool = True,
    quoting: bool | None = None,
) -> Split:
    """Read a labelled TSV/CSV/JSONL file for ``task``.

    ``columns`` maps ``text_a``/``text_b``/``label`` to the file's column names; by default the
    task's own column names. TSV files are read without quote processing (GLUE style) unless
    ``quoting=True``; CSV files always honour quotes.
    """
    path = Path(path)
    mapping = parse_columns(columns) or _default_columns(task)
    if "text_a" not in mapping:
        raise DataError("--columns: text_a is required")
    if task.is_pair and "text_b" not in mapping:
        raise DataError(f"--columns: task {task.name} takes sentence pairs; give text_b=<column>")
    if not task.is_pair and "text_b" in mapping:
        raise DataError(f"--columns: task {task.name} takes single sentences; remove text_b")
    data = _read_bytes(path, "data file")
    text = _decode(data, path)
    kind = _file_format(path, fmt)
    if kind == "jsonl":
        records: Iterable[tuple[int, dict[str, Any]]] = _records_jsonl(text, path)
    else:
        records = _records_table(text, path, "\t" if kind == "tsv" else ",", bool(quoting) or kind == "csv")
    examples: list[Example] = []
    checked = False
    for line, rec in records:
        if not checked:
            need = [mapping["text_a"]] + ([mapping["text_b"]] if "text_b" in mapping else [])
            if require_labels:
                need.append(mapping.get("label", "label"))
            for col in need:
                if col not in rec:
                    raise DataError(f"{path}: no column {col!r} (found: {', '.join(map(str, rec))}); map columns with --columns")
            checked = True
        a = rec.get(mapping["text_a"])
        if not isinstance(a, str):
            raise DataError(f"{path} line {line}: column {mapping['text_a']!r} must be text")
        a = _check_text(a, path, line, mapping["text_a"])
        b = None
        if "text_b" in mapping:
            b = rec.get(mapping["text_b"])
            if not isinstance(b, str):
                raise DataError(f"{path} line {line}: column {mapping['text_b']!r} must be text")
            b = _check_text(b, path, line, mapping["text_b"])
        label = None
        if require_labels:
            raw = rec.get(mapping.get("label", "label"))
            if raw is None or (isinstance(raw, str) and not raw.strip()):
                raise DataError(f"{path} line {line}: missing label in column {mapping.get('label', 'label')!r}")
            label = _label(task, raw, path, line)
        examples.append(Example(a, b, label))
    if not examples:
        raise DataError(f"{path}: no data rows")
    return Split(task, split, examples, str(path), _sha256_bytes(data) + ":" + json.dumps(mapping, sort_keys=True))

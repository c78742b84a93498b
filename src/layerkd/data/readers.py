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
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import DataError
from ..tasks import Task


@dataclass(frozen=True)
class Example:
    text_a: str
    text_b: str | None
    label: int | float | None


@dataclass
class Split:
    """The rows of one split of one task, with where they came from."""

    task: Task
    name: str
    examples: list[Example]
    source: str
    fingerprint: str
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.examples)

    @property
    def has_labels(self) -> bool:
        return bool(self.examples) and self.examples[0].label is not None

    def labels(self) -> list[int | float]:
        if not self.has_labels:
            raise DataError(f"{self.source}: split {self.name!r} has no labels")
        return [e.label for e in self.examples]  # type: ignore[misc]

    def subsample(self, n: int | None, seed: int = 0) -> Split:
        """A fixed random subset of ``n`` rows (kept in file order). ``None`` or n ≥ len: unchanged."""
        if n is None or n >= len(self.examples):
            return self
        if n <= 0:
            raise DataError(f"{self.source}: subsample size must be positive, got {n}")
        rng = random.Random(seed)
        keep = sorted(rng.sample(range(len(self.examples)), n))
        fp = hashlib.sha256(f"{self.fingerprint}:subsample:{n}:{seed}".encode()).hexdigest()
        meta = dict(self.meta, subsample={"n": n, "seed": seed, "of": len(self.examples)})
        return replace(self, examples=[self.examples[i] for i in keep], fingerprint=fp, meta=meta)


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_bytes(path: Path, what: str) -> bytes:
    if not path.exists():
        raise DataError(f"{what} not found: {path}")
    if path.is_dir():
        raise DataError(f"{what} is a directory, expected a file: {path}")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def _decode(data: bytes, path: Path) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(
            f"{path} line {line}: not valid UTF-8 (byte 0x{data[exc.start]:02x}); save the file as UTF-8"
        ) from None


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


def _check_text(value: str, path: Path, line: int, column: str) -> str:
    if not value.strip():
        raise DataError(f"{path} line {line}: empty text in column {column!r}")
    return value


def _label(task: Task, raw: Any, path: Path, line: int) -> int | float:
    try:
        return task.label_id(raw)
    except ValueError as exc:
        raise DataError(f"{path} line {line}: {exc}") from None


# ----------------------------------------------------------------------------- GLUE directories


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


# ----------------------------------------------------------------------------- user files


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
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path} line {line_no}: not valid JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise DataError(f"{path} line {line_no}: expected a JSON object per line")
        yield line_no, obj


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


# ----------------------------------------------------------------------------- Hugging Face datasets


def read_hf(
    task: Task,
    name_or_path: str,
    split: str,
    columns: dict[str, str] | str | None = None,
    *,
    config_name: str | None = None,
) -> Split:
    """Read a split from Hugging Face ``datasets``: a hub id (e.g. ``nyu-mll/glue`` with
    ``config_name='rte'``) or a local directory written by ``Dataset(Dict).save_to_disk``.
    Needs the ``hub`` extra. Integer labels of a ``ClassLabel`` column whose names are the task's
    label names are mapped by name; other integer labels index the task's label list."""
    try:
        import datasets  # noqa: PLC0415
    except ImportError:
        raise DataError("reading Hugging Face datasets needs the 'hub' extra: pip install 'layerkd[hub]'") from None
    mapping = parse_columns(columns) or _default_columns(task)
    local = Path(name_or_path)
    try:
        if local.exists():
            ds = datasets.load_from_disk(str(local))
            if isinstance(ds, datasets.DatasetDict):
                if split not in ds:
                    raise DataError(f"{local}: no split {split!r}; found: {', '.join(ds)}")
                ds = ds[split]
            fp_source = str(getattr(ds, "_fingerprint", "")) or str(local)
        else:
            ds = datasets.load_dataset(name_or_path, config_name, split=split)
            fp_source = str(getattr(ds, "_fingerprint", name_or_path))
    except DataError:
        raise
    except Exception as exc:  # datasets raises many exception types; name the source and stop
        raise DataError(f"cannot load dataset {name_or_path!r} split {split!r}: {type(exc).__name__}: {exc}") from None
    for key in ("text_a", "text_b", "label"):
        if key in mapping and mapping[key] not in ds.column_names:
            raise DataError(f"dataset {name_or_path!r}: no column {mapping[key]!r} (found: {', '.join(ds.column_names)})")
    # A ClassLabel column whose names are the task's label names is mapped by name, not position:
    # Hugging Face GLUE MNLI numbers entailment/neutral/contradiction 0/1/2, the task (as GLUE's
    # processors) orders its labels contradiction/entailment/neutral.
    features = getattr(ds, "features", None) or {}
    class_names = getattr(features.get(mapping.get("label", "label")), "names", None)
    if not (task.labels is not None and class_names and set(map(str, class_names)) <= set(task.labels)):
        class_names = None
    examples = []
    for i, rec in enumerate(ds, start=1):
        a = _check_text(str(rec[mapping["text_a"]]), Path(name_or_path), i, mapping["text_a"])
        b = _check_text(str(rec[mapping["text_b"]]), Path(name_or_path), i, mapping["text_b"]) if "text_b" in mapping else None
        raw = rec.get(mapping.get("label", "label"))
        if class_names is not None and isinstance(raw, int) and not isinstance(raw, bool) and 0 <= raw < len(class_names):
            raw = str(class_names[raw])
        label = None if raw is None or raw == -1 else _label(task, raw, Path(name_or_path), i)
        examples.append(Example(a, b, label))
    if not examples:
        raise DataError(f"dataset {name_or_path!r} split {split!r}: no rows")
    fp = hashlib.sha256(f"hf:{fp_source}:{split}:{json.dumps(mapping, sort_keys=True)}".encode()).hexdigest()
    return Split(task, split, examples, f"{name_or_path}[{split}]", fp)


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
        out = read_glue(task, data_dir, split)
    elif file is not None:
        out = read_file(task, file, columns, split=split, require_labels=require_labels)
    else:
        out = read_hf(task, str(hf_dataset), split, columns, config_name=hf_config)
    if require_labels and not out.has_labels:
        raise DataError(f"{out.source}: split {split!r} has no labels, so it cannot be scored")
    return out

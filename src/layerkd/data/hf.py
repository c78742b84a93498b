"""Hugging Face ``datasets`` (a hub id or a local ``save_to_disk`` directory); needs the optional
``hub`` extra."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..errors import DataError
from ..tasks import Task
from .files import _default_columns, parse_columns
from .split import Example, Split, _check_text, _label


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

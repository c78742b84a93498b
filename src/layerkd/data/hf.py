"""Hugging Face ``datasets`` (a hub id, the local ``datasets`` cache, a ``save_to_disk`` directory or
a folder of parquet/CSV/JSON files); needs the optional ``hub`` extra.

Which split: the name asked for (``data.train_split`` / ``data.eval_split``); ``dev`` — layerkd's
default evaluation split — reads the dataset's ``validation`` split when it has no ``dev``.
Offline: a ``save_to_disk`` directory is read with ``load_from_disk``; another local folder with
``load_dataset(folder)`` (its file types and split names from the file names: ``train.parquet``,
``validation.parquet``, ``data/train-*.parquet`` …); a hub id with ``load_dataset`` (from the
local cache when ``HF_DATASETS_OFFLINE=1``)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..errors import DataError
from ..tasks import Task
from .files import _default_columns, parse_columns
from .split import Example, Split, _check_text, _label

SPLIT_ALIASES = {"dev": "validation"}


def _pick(ds, split: str, where: str):
    """One split of a ``DatasetDict`` (``dev`` falls back to ``validation``)."""
    import datasets  # noqa: PLC0415

    if not isinstance(ds, datasets.DatasetDict):
        return ds
    if split not in ds and SPLIT_ALIASES.get(split) in ds:
        split = SPLIT_ALIASES[split]
    if split not in ds:
        raise DataError(f"dataset {where}: no split {split!r}; found: {', '.join(ds)}")
    return ds[split]


def load_hf_split(name_or_path: str, split: str, config_name: str | None = None):
    """``(dataset, fingerprint source)`` of one split (see the module docstring for the sources)."""
    try:
        import datasets  # noqa: PLC0415
    except ImportError:
        raise DataError("reading Hugging Face datasets needs the 'hub' extra: pip install 'layerkd[hub]'") from None
    local = Path(name_or_path)
    try:
        if local.is_dir() and any((local / f).is_file() for f in ("dataset_dict.json", "state.json")):
            ds = _pick(datasets.load_from_disk(str(local)), split, repr(name_or_path))
            return ds, str(getattr(ds, "_fingerprint", "")) or str(local)
        source = str(local) if local.exists() else name_or_path
        try:
            ds = datasets.load_dataset(source, config_name, split=split)
        except ValueError as exc:  # "Unknown split 'dev'": a dataset whose evaluation split is 'validation'
            if split not in SPLIT_ALIASES or "split" not in str(exc).lower():
                raise
            ds = datasets.load_dataset(source, config_name, split=SPLIT_ALIASES[split])
        return ds, str(getattr(ds, "_fingerprint", "")) or name_or_path
    except DataError:
        raise
    except Exception as exc:  # datasets raises many exception types; name the source and stop
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise DataError(f"cannot load dataset {name_or_path!r} split {split!r}: {type(exc).__name__}: {first}") from None


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
    mapping = {**_default_columns(task), **(parse_columns(columns) or {})}  # the task's columns unless renamed
    ds, fp_source = load_hf_split(name_or_path, split, config_name)
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

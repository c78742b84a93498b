"""Hugging Face ``datasets`` rows as layerkd data, for :class:`~layerkd.integrations.DistillationTrainer`.

A ``datasets.Dataset`` (or any sequence of dict rows) with the task's text columns and its label
column becomes a layerkd :class:`~layerkd.data.readers.Split`, tokenised once per role
(:class:`~layerkd.data.encoding.EncodedSplit`: the student's tokenizer and, when it differs, the
teacher's). The ``transformers.Trainer`` then iterates over *row indices*
(:class:`RowIndex`) and :class:`RowCollator` pads the rows of a batch exactly as the layerkd CLI
does (``EncodedSplit.batch``). Rows are identified by their position in the dataset given to
the trainer: that index is what the teacher cache reads, and the cache's key covers the
teacher's token ids of every row, so a reordered, filtered or edited dataset builds a new entry
instead of serving another row's teacher outputs.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from ..data.encoding import EncodedSplit
from ..data.readers import Split
from ..data.split import Example, _check_text, _label
from ..errors import DataError
from ..tasks import Task


def split_from_dataset(task: Task, dataset: Any, name: str) -> Split:
    """The rows of ``dataset`` (their order kept) as a :class:`Split` of ``task``. A ``ClassLabel``
    label column whose names are the task's labels is mapped by name, other integers index the
    task's labels (as :func:`layerkd.data.hf.read_hf`)."""
    columns = list(getattr(dataset, "column_names", None) or (dataset[0].keys() if len(dataset) else []))
    wanted = [*task.text_columns, task.label_column]
    missing = [c for c in wanted if c not in columns]
    if missing:
        raise DataError(f"{name} dataset: no column {missing[0]!r} (found: {', '.join(map(str, columns))}); the task "
                        f"{task.name} reads text from {', '.join(task.text_columns)} and labels from {task.label_column}")
    features = getattr(dataset, "features", None) or {}
    names = getattr(features.get(task.label_column), "names", None)
    if not (task.labels is not None and names and set(map(str, names)) <= set(task.labels)):
        names = None
    where = Path(f"{name} dataset")
    examples = []
    for i, row in enumerate(dataset, start=1):
        a = _check_text(str(row[task.text_columns[0]]), where, i, task.text_columns[0])
        b = _check_text(str(row[task.text_columns[1]]), where, i, task.text_columns[1]) if task.is_pair else None
        raw = row[task.label_column]
        if names is not None and isinstance(raw, int) and not isinstance(raw, bool) and 0 <= raw < len(names):
            raw = str(names[raw])
        examples.append(Example(a, b, None if raw is None or raw == -1 else _label(task, raw, where, i)))
    if not examples:
        raise DataError(f"{name} dataset: no rows")
    source = str(getattr(dataset, "_fingerprint", "") or "")
    h = hashlib.sha256(f"hf-object:{name}:{source}:{task.name}".encode())
    if not source:  # no datasets fingerprint: the rows themselves
        h.update(json.dumps([(e.text_a, e.text_b, e.label) for e in examples]).encode())
    return Split(task, name, examples, f"{name} dataset", h.hexdigest())


class RowIndex(torch.utils.data.Dataset):
    """What the ``transformers.Trainer`` iterates over: ``(split key, row index)`` pairs."""

    def __init__(self, key: str, encoded: EncodedSplit):
        self.key = key
        self.encoded = encoded

    def __len__(self) -> int:
        return len(self.encoded)

    def __getitem__(self, i: int) -> tuple[str, int]:
        return self.key, int(i)


class RowCollator:
    """Pads a list of ``(split key, row)`` items into ``{"layerkd_batch": Batch, "layerkd_split": key,
    "labels": …}`` with
    :meth:`EncodedSplit.batch`; ``labels`` is what the ``Trainer`` hands to ``compute_metrics``."""

    def __init__(self, splits: dict[str, EncodedSplit]):
        self.splits = splits

    def __call__(self, items: list[tuple[str, int]]) -> dict[str, Any]:
        keys = {k for k, _ in items}
        if len(keys) != 1:
            raise ValueError(f"a batch mixes rows of several datasets: {sorted(keys)}")
        key = keys.pop()
        batch = self.splits[key].batch([i for _, i in items])
        # layerkd_split: which EncodedSplit the rows index (the teacher cache reads rows by it)
        return {"layerkd_batch": batch, "layerkd_split": key, "labels": batch.labels}

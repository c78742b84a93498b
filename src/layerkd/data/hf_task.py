"""A task defined by a Hugging Face dataset's own features (``--hf-dataset`` without ``--task``).

The label column says what the task is, without code:

* a ``ClassLabel`` column: a classification task whose labels are its names, in its order; metrics
  accuracy and F1 (of the second label) for two classes, accuracy for more;
* a float column (``Value('float32'/'float64')``): a regression task, metrics Pearson and Spearman;
* anything else (integers or strings without class names) cannot say which labels exist: give
  ``--task`` (a registered task) or a task mapping in the config.

The task is named ``hf-<dataset name>[-<config>]`` and written, like every task, into the run's
resolved ``config.yaml``, so ``layerkd evaluate`` and ``--resume`` see the same definition.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .files import parse_columns
from .hf import load_hf_split


def task_name(name_or_path: str, config_name: str | None) -> str:
    base = Path(name_or_path.rstrip("/")).name or "dataset"
    name = "hf-" + re.sub(r"[^A-Za-z0-9._-]+", "-", base)
    return f"{name}-{config_name}" if config_name else name


def infer_task(name_or_path: str, config_name: str | None, columns: str | dict | None, split: str = "train") -> dict[str, Any]:
    """The task mapping (:func:`layerkd.tasks.task_from_config`) that the dataset's features define."""
    mapping = parse_columns(columns) if columns is not None else {}
    if "text_a" not in mapping:
        raise ConfigError(f"--hf-dataset {name_or_path}: without --task, give the text columns (--text-columns a[,b]) "
                          "and the label column (--label-column, default 'label')")
    label_col = mapping.get("label", "label")
    ds, _ = load_hf_split(name_or_path, split, config_name)
    features = getattr(ds, "features", None) or {}
    if label_col not in features:
        raise ConfigError(f"--hf-dataset {name_or_path}: no label column {label_col!r} (found: {', '.join(features)})")
    feature = features[label_col]
    text_columns = [mapping["text_a"], *([mapping["text_b"]] if "text_b" in mapping else [])]
    task: dict[str, Any] = {"name": task_name(name_or_path, config_name), "text_columns": text_columns,
                            "label_column": label_col,
                            "description": f"from the features of Hugging Face dataset {name_or_path}"}
    names = getattr(feature, "names", None)
    dtype = str(getattr(feature, "dtype", type(feature).__name__))
    if names:
        if len(names) < 2:
            raise ConfigError(f"--hf-dataset {name_or_path}: ClassLabel column {label_col!r} has {len(names)} class; "
                              "a classification task needs at least two")
        task.update(labels=[str(n) for n in names], metrics=["accuracy", "f1"] if len(names) == 2 else ["accuracy"])
    elif dtype.startswith("float"):
        task.update(regression=True, metrics=["pearson", "spearmanr"])
    else:
        raise ConfigError(f"--hf-dataset {name_or_path}: label column {label_col!r} is {dtype}, not a ClassLabel (whose "
                          "names would be the labels) or a float (regression); give --task or a task in the config")
    return task

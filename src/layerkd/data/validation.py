"""The validation split: carved once from a task's training set, it serves every choice a run makes.

GLUE papers report on the dev set, so a run that also *chooses* on the dev set (best epoch, early
stopping, the teacher's checkpoint, the teacher pseudo-classifiers' fit) reports an optimistically
selected number. With ``data.validation.source: carve`` (the default) layerkd holds out a fixed
part of the training rows instead:

* about ``fraction`` (10 %) of the training rows, at most ``max_rows`` (2,000), drawn with a fixed
  ``seed`` — so the teacher, its heads and every student of a task see the same split;
* stratified for classification (each label keeps its share, at least one row of every label
  that has two or more), plain random for regression;
* carved from the full training set *before* any ``train_subsample``, so a subsampled student
  still validates on the same rows as its teacher;
* its row numbers (0-based positions in the training file as read) are recorded in the run's
  results (``selection.rows``).

The evaluation split (GLUE dev) then becomes the test set: it is scored once at the end, at the
validation-selected epoch (the primary score, ``best``) and at the last epoch (``last``).
``source: eval`` selects on the evaluation split as layerkd did before 2026-12-06 (the shipped v1
suites pin it so their recorded cells keep their meaning). A training set too small to carve
(fewer than :data:`MIN_ROWS` rows) falls back to ``eval`` with a warning, recorded in the results.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections import defaultdict
from dataclasses import replace

from .split import Split

log = logging.getLogger("layerkd")

MIN_ROWS = 20  # below this, a held-out tenth is too small to select anything on


def carve_rows(labels: list, *, fraction: float, max_rows: int, seed: int, stratify: bool) -> list[int]:
    """Sorted row numbers of the validation part (the rest trains)."""
    n = len(labels)
    total = min(max_rows, max(1, round(fraction * n)))
    rng = random.Random(seed)
    if not stratify:
        return sorted(rng.sample(range(n), total))
    by_label: dict = defaultdict(list)
    for i, y in enumerate(labels):
        by_label[y].append(i)
    share = total / n
    picked: list[int] = []
    for y in sorted(by_label, key=str):
        rows = by_label[y]
        k = round(share * len(rows))
        if k == 0 and len(rows) >= 2:
            k = 1
        picked += rng.sample(rows, min(k, len(rows) - 1))
    return sorted(picked)


def split_validation(train: Split, *, fraction: float, max_rows: int, seed: int) -> tuple[Split, Split | None]:
    """``(rest, validation)``; ``validation`` is None when ``train`` is too small to carve."""
    n = len(train)
    if n < MIN_ROWS:
        log.warning("%s: %d training rows are too few to carve a validation split (need %d); selecting on the "
                    "evaluation split instead (data.validation.source: eval)", train.source, n, MIN_ROWS)
        return train, None
    labels = train.labels() if train.has_labels else [None] * n
    rows = carve_rows(labels, fraction=fraction, max_rows=max_rows, seed=seed,
                      stratify=train.has_labels and not train.task.is_regression)
    chosen = set(rows)
    tag = f"{train.fingerprint}:validation:{fraction}:{max_rows}:{seed}"
    meta = {"of": n, "seed": seed, "fraction": fraction, "max_rows": max_rows}
    val = replace(train, name="validation", examples=[train.examples[i] for i in rows],
                  fingerprint=hashlib.sha256(f"{tag}:held".encode()).hexdigest(),
                  meta=dict(train.meta, validation=dict(meta, rows=rows)))
    rest = replace(train, examples=[e for i, e in enumerate(train.examples) if i not in chosen],
                   fingerprint=hashlib.sha256(f"{tag}:rest".encode()).hexdigest(),
                   meta=dict(train.meta, validation_held_out=dict(meta, count=len(rows))))
    return rest, val

"""Catalogue cases of cache-only mode, ``layerkd cache build`` and ``--hf-dataset`` (issue 21
points 2 and 6), merged into ``tests/test_errors_catalogue.py``'s CASES."""

from __future__ import annotations

from pathlib import Path

import pytest


def _ints_dataset(ctx) -> Path:
    datasets = pytest.importorskip("datasets")
    d = ctx.tmp / "ints"
    datasets.Dataset.from_dict({"text": ["the movie was good", "the plot was bad"], "y": [1, 0]}).save_to_disk(str(d))
    return d


CASES = {
    "cache-only-entry-missing": (lambda c: c.distill("--teacher-cache-only", student=str(c.tiny_bert)),
                                 r"teacher cache \(cache-only mode\): no entry for the teacher's logits on .*train\.tsv "
                                 r"\(train, \d+ rows, max length 32\) in .*cache; build it with: layerkd cache build --config"),
    "cache-only-student-cut": (lambda c: c.distill("--teacher-cache-only"),
                               r"--teacher-cache-only: student 'bottom:2' is built from the teacher model, which cache-only "
                               r"mode never loads"),
    "cache-only-needs-live": (lambda c: c.distill("--teacher-cache-only", student=str(c.tiny_bert), method="tinybert"),
                              r"--teacher-cache-only: method tinybert needs the teacher's attentions, hidden_states, which "
                              r"are never cached"),
    "cache-build-needs-unknown": (lambda c: ["cache", "build", "--teacher", c.teacher, "--needs", "hidden_states",
                                             "--cache-dir", c.tmp / "cache"],
                                  r"--needs: unknown need 'hidden_states'; expected logits, layer_vectors\[:cls\|mean\|max\] "
                                  r"or head_logits"),
    "hf-task-label-not-classlabel": (lambda c: ["finetune", "--model", c.tiny_bert, "--hf-dataset", _ints_dataset(c),
                                                "--text-columns", "text", "--label-column", "y", "--output-dir", c.out],
                                     r"--hf-dataset .*ints: label column 'y' is int64, not a ClassLabel .*; give --task"),
    "hf-task-no-text-columns": (lambda c: ["finetune", "--model", c.tiny_bert, "--hf-dataset", _ints_dataset(c),
                                           "--output-dir", c.out],
                                r"--hf-dataset .*ints: without --task, give the text columns \(--text-columns a\[,b\]\)"),
}

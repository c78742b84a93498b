"""Save the bottom K blocks of a pretrained (not fine-tuned) encoder as a model directory, with a
fresh classification head for TASK: the "pretrained" initialisation of the calibration students.
Deterministic (the head is drawn under SEED).

Usage: python benchmarks/calibration/cut.py MODEL TASK K OUT [--seed 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from layerkd.models.transformer import TransformerClassifier, student_from_layers
from layerkd.tasks import get_task


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("task")
    ap.add_argument("k", type=int)
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    if (Path(a.out) / "config.json").exists():
        return
    torch.manual_seed(a.seed)
    task = get_task(a.task)
    full = TransformerClassifier.from_pretrained(a.model, num_labels=task.num_labels, label_names=task.labels)
    student_from_layers(full, list(range(1, a.k + 1))).save_pretrained(a.out)


if __name__ == "__main__":
    main()

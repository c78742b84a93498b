"""Distil a teacher into a Hugging Face student with ``transformers.Trainer`` and a layerkd recipe.

    python examples/hf_trainer_distill.py --output-dir runs/hf-alp                       # toy data, toy teacher
    python examples/hf_trainer_distill.py --teacher runs/teacher-sst2 --task sst-2 \\
        --glue-dir ../shared/data/glue --rows 2000 --method universal+alp --epochs 3 --output-dir runs/hf-sst2

The data are ``datasets.Dataset`` objects: toy sentiment rows made by ``layerkd.toy`` (default), or
a GLUE task's TSV files read offline with ``datasets.load_dataset("csv", ...)``. Without
``--teacher`` a tiny toy teacher is fine-tuned first (``layerkd.stages.finetune``), so that the
example runs offline in about a minute on a CPU. The student is the teacher's bottom
``--student-layers`` blocks (``AutoModelForSequenceClassification`` with ``num_hidden_layers``),
trained by :class:`layerkd.integrations.DistillationTrainer` with ordinary ``TrainingArguments``.
Needs the ``hub`` extra (``datasets``).
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path


def toy_datasets(rows: int):
    from datasets import Dataset

    from layerkd import toy

    def make(n: int, seed: int):
        examples = toy.sentiment_examples(n, seed, noise=0.0, max_extra_clauses=0)
        return Dataset.from_dict({"sentence": [t for t, _ in examples], "label": [y for _, y in examples]})

    return make(rows, 0), make(max(16, rows // 4), 1)


def glue_datasets(glue_dir: Path, task, rows: int):
    from datasets import load_dataset

    out = {}
    for split in ("train", "dev"):
        gs = task.glue_splits[split]
        if not gs.header:
            raise SystemExit(f"{task.name} {split}: a file without a header row; this example reads headed TSV files")
        ds = load_dataset("csv", data_files=str(glue_dir / task.glue_dir / gs.file), delimiter="\t", split="train",
                          quoting=csv.QUOTE_NONE, keep_default_na=False)
        ds = ds.rename_columns({old: new for old, new in zip((gs.text_a, gs.text_b, gs.label), _columns(task), strict=True)
                                if old is not None and old != new})
        out[split] = ds
    train = out["train"].shuffle(seed=0).select(range(min(rows, len(out["train"]))))
    return train, out["dev"]


def _columns(task) -> tuple:
    """The task's column names in GLUE's (text_a, text_b, label) order."""
    return task.text_columns[0], task.text_columns[1] if task.is_pair else None, task.label_column


def toy_teacher(work: Path) -> Path:
    """A tiny BERT fine-tuned on toy sentiment rows (a few seconds)."""
    from layerkd import toy
    from layerkd.config import validate_run_config
    from layerkd.stages.finetune import finetune

    train, dev = toy.write_sentiment_data(work / "data", n_train=400, n_dev=100, noise=0.0, max_extra_clauses=0)
    bert = toy.write_tiny_bert(work / "bert", layers=4, hidden=32, heads=4, intermediate=64)
    cfg = validate_run_config({"task": toy.TOY_TASK, "model": str(bert), "output_dir": str(work / "teacher"),
                               "data": {"train_file": str(train), "dev_file": str(dev)},
                               "train": {"epochs": 4, "lr": 2e-3, "batch_size": 16, "max_length": 32, "seed": 0}})
    finetune(cfg, progress=False)
    return work / "teacher"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--output-dir", type=Path, required=True)
    ap.add_argument("--teacher", type=Path, help="fine-tuned teacher directory (default: fine-tune a toy one)")
    ap.add_argument("--task", default=None, help="a GLUE task with --glue-dir (default: the toy task)")
    ap.add_argument("--glue-dir", type=Path, help="GLUE data in the classic layout, read with datasets' csv loader")
    ap.add_argument("--rows", type=int, default=256, help="training rows")
    ap.add_argument("--method", default="alp", help="a layerkd method or a+b combination")
    ap.add_argument("--student-layers", type=int, default=2)
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--max-steps", type=int, default=-1)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--no-cache", action="store_true", help="run the teacher live on every batch")
    a = ap.parse_args(argv)

    from transformers import AutoModelForSequenceClassification, AutoTokenizer, TrainingArguments

    from layerkd import toy
    from layerkd.integrations import DistillationTrainer
    from layerkd.tasks import task_from_config

    task = task_from_config(a.task or toy.TOY_TASK)
    if a.glue_dir is not None:
        train, dev = glue_datasets(a.glue_dir, task, a.rows)
    else:
        train, dev = toy_datasets(a.rows)
    teacher = a.teacher or toy_teacher(a.output_dir / "toy-teacher")
    student = AutoModelForSequenceClassification.from_pretrained(str(teacher), num_hidden_layers=a.student_layers)
    args = TrainingArguments(output_dir=str(a.output_dir / "student"), num_train_epochs=a.epochs, max_steps=a.max_steps,
                             per_device_train_batch_size=a.batch_size, per_device_eval_batch_size=64, learning_rate=a.lr,
                             eval_strategy="epoch", logging_steps=1, save_strategy="no", report_to=[], seed=0,
                             disable_tqdm=True)
    trainer = DistillationTrainer(model=student, args=args, teacher=str(teacher), recipe=a.method, task=task,
                                  train_dataset=train, eval_dataset=dev,
                                  processing_class=AutoTokenizer.from_pretrained(str(teacher)),
                                  cache=False if a.no_cache else a.output_dir / "cache", max_length=a.max_length)
    trainer.train()
    metrics = trainer.evaluate()
    trainer.save_model()
    out = {"method": a.method, "eval": metrics, "log": trainer.state.log_history}
    (a.output_dir / "result.json").write_text(json.dumps(out, indent=1))
    print(json.dumps(metrics, indent=1))
    return out


if __name__ == "__main__":
    main()

"""``layerkd.integrations.DistillationTrainer``: a ``transformers.Trainer`` whose first step's loss
terms are the ``layerkd distill`` CLI stage's on the same batch (kd, alp), with the teacher cache
serving the teacher; Universal-KD's heads are fitted first; the example script runs."""

from __future__ import annotations

import csv
import json
import runpy
import shutil
import sys
from pathlib import Path

import pytest

pytest.importorskip("datasets")

from conftest import REPO, distill_config  # noqa: E402
from layerkd import toy  # noqa: E402
from layerkd.errors import ConfigError  # noqa: E402


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, tiny_teacher_dir) -> Path:
    """The tiny fine-tuned teacher without dropout: a training step is then the same computation in
    both loops (no random masks to line up)."""
    d = tmp_path_factory.mktemp("hf-teacher") / "teacher"
    shutil.copytree(tiny_teacher_dir, d, ignore=shutil.ignore_patterns("checkpoints", "*.jsonl", "results.json"))
    cfg = json.loads((d / "config.json").read_text())
    cfg.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (d / "config.json").write_text(json.dumps(cfg))
    return d


@pytest.fixture(scope="module")
def rows(tmp_path_factory) -> tuple[Path, Path]:
    """16 training rows (one batch) and 16 evaluation rows, as TSV files for the CLI."""
    return toy.write_sentiment_data(tmp_path_factory.mktemp("hf-rows"), n_train=16, n_dev=16, noise=0.0, max_extra_clauses=0)


def _dataset(path: Path):
    from datasets import Dataset

    with open(path, encoding="utf-8") as fh:
        records = list(csv.DictReader(fh, delimiter="\t"))
    return Dataset.from_dict({"sentence": [r["sentence"] for r in records], "label": [int(r["label"]) for r in records]})


def _hf_trainer(teacher, rows, out: Path, recipe: str, **kw):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, TrainingArguments

    from layerkd.integrations import DistillationTrainer

    args = TrainingArguments(output_dir=str(out), per_device_train_batch_size=16, max_steps=1, learning_rate=3e-3,
                             logging_steps=1, save_strategy="no", report_to=[], seed=0, disable_tqdm=True,
                             warmup_steps=0, weight_decay=0.01)
    student = AutoModelForSequenceClassification.from_pretrained(str(teacher), num_hidden_layers=2)  # = bottom:2
    return DistillationTrainer(model=student, args=args, teacher=str(teacher), recipe=recipe, task=toy.TOY_TASK,
                               train_dataset=_dataset(rows[0]), eval_dataset=_dataset(rows[1]), max_length=32,
                               processing_class=AutoTokenizer.from_pretrained(str(teacher)), **kw)


@pytest.mark.parametrize("method", ["kd", "alp"])
def test_first_step_loss_equals_the_cli(method, teacher, rows, tmp_path):
    from layerkd.stages.distill import distill

    cfg = distill_config(teacher, rows, method, tmp_path / "cli", epochs=1, extra={
        "data": {"validation": {"source": "eval"}}, "cache": {"enabled": False},
        "train": {"batch_size": 16, "max_steps": 1, "log_every_steps": 1}})
    distill(cfg, progress=False)
    (cli,) = [json.loads(x) for x in (tmp_path / "cli" / "log.jsonl").read_text().splitlines() if '"event": "train"' in x]

    trainer = _hf_trainer(teacher, rows, tmp_path / "hf", method, cache=tmp_path / "cache", cache_dtype="fp32")
    trainer.train()
    hf = trainer.state.log_history[0]
    terms = {k: v for k, v in cli.items() if k.startswith("term/")}
    assert set(terms) == {"term/ce", "term/kd"} | ({"term/alp"} if method == "alp" else set())
    for k, v in terms.items():
        assert hf[k] == pytest.approx(v, rel=1e-5, abs=1e-7), k
    assert hf["loss"] == pytest.approx(cli["loss"], abs=1e-4)  # the Trainer rounds its logged loss
    assert [d["mode"] for d in trainer.provider.decisions] == ["cache"]  # the teacher came from the cache
    assert any((tmp_path / "cache" / "teacher").iterdir())


def test_universal_fits_the_teacher_heads_first(teacher, rows, tmp_path):
    trainer = _hf_trainer(teacher, rows, tmp_path / "hf", "universal", cache=False, heads_fit={"epochs": 1})
    assert (tmp_path / "hf" / "teacher_heads" / "heads.json").exists()  # fitted before the first step
    trainer.train()
    assert "term/universal" in trainer.state.log_history[0]


def test_refusals(teacher, rows, tmp_path):
    from transformers import AutoModelForSequenceClassification, TrainingArguments

    from layerkd.integrations import DistillationTrainer

    with pytest.raises(ConfigError, match=r"method 'takd' is a multi-stage pipeline"):
        _hf_trainer(teacher, rows, tmp_path / "a", "takd")
    args = TrainingArguments(output_dir=str(tmp_path / "b"), report_to=[], max_steps=1)
    student = AutoModelForSequenceClassification.from_pretrained(str(teacher), num_hidden_layers=2)
    with pytest.raises(ConfigError, match=r"universal needs the teacher's pseudo classifiers; fitting them needs train_dataset "
                                          r"and eval_dataset"):
        DistillationTrainer(model=student, args=args, teacher=str(teacher), recipe="universal", task=toy.TOY_TASK,
                            train_dataset=_dataset(rows[0]), cache=False)


@pytest.mark.slow
def test_the_example_script_runs(tmp_path, teacher, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["hf_trainer_distill.py", "--output-dir", str(tmp_path / "ex"), "--teacher", str(teacher),
                                      "--rows", "32", "--max-steps", "2", "--method", "kd+alp", "--max-length", "32"])
    runpy.run_path(str(REPO / "examples" / "hf_trainer_distill.py"), run_name="__main__")
    result = json.loads((tmp_path / "ex" / "result.json").read_text())
    assert 0.0 <= result["eval"]["eval_accuracy"] <= 1.0
    steps = [h for h in result["log"] if "term/alp" in h]
    assert len(steps) == 2
    assert (tmp_path / "ex" / "student" / "model.safetensors").exists()

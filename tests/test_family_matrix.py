"""Model-family coverage (issue 21 point 1): every encoder family × every student kind and method.

Families (:mod:`families`): BERT, RoBERTa, DistilBERT, ALBERT, ELECTRA, DeBERTa-v2, DeBERTa-v3,
ModernBERT, XLM-RoBERTa — tiny random models (4 blocks, 32 wide) with tokenizers made on the spot.

How the matrix stays within CI's time (a couple of minutes on two loaded cores):

* each family's teacher is fine-tuned once (one optimiser step, ``layerkd.stages.finetune``, so the
  fine-tune stage, its save and the reload of a fine-tuned head are covered) and shared by the module;
* a method case is the real distillation *plan* (``stages.distill.plan_distill``: data, student
  built from its spec, every objective built against the pair, which is where impossible pairs are
  refused) followed by **one optimiser step of every phase of the recipe on one batch** — the
  trainer's own ``TrainModule`` and ``TeacherProvider`` (live teacher; random teacher pseudo
  classifiers for Universal-KD/DIH: fitting them is family-independent and tested elsewhere); it
  asserts a finite loss, each term present, and a changed student;
* a few full CLI runs (``layerkd distill`` in a subprocess) cover the rest of the pipeline (teacher
  cache, heads fitting, evaluation, outputs) for representative families;
* method variants that differ only in options (``pkd-last``, ``alp-no`` …) run on BERT in
  ``test_methods_e2e``; here each method family runs once per model family.

A refusal is a case too: it must be refused *before training* with a :class:`PairError` naming the
reason. ``LAYERKD_COVERAGE_OUT=<dir>`` writes every case's outcome to ``<dir>/coverage.json``
(``benchmarks/coverage.sh`` renders it as ``docs/coverage.md``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from families import FAMILIES, TOKENIZER, write_family
from family_matrix import BATCH, MAX_LENGTH, TEXTS, case, logits, make_plan, one_step_per_phase, write_report
from layerkd import toy
from layerkd.config import validate_run_config
from layerkd.errors import ModelError, PairError
from layerkd.models.load import load_model
from layerkd.models.transformer import TransformerClassifier
from layerkd.stages.finetune import finetune

#: one preset per method family (+ the Universal-KD combinations of the papers' tables)
METHODS = ("ce", "kd", "pkd", "tinybert", "ckd", "alp", "rail", "universal", "universal-ta", "internal", "dih",
           "annealing", "universal+alp", "universal+rail", "universal+pkd")
#: methods that compare token positions (all-token states, attention maps): one tokenizer needed
TOKEN_ALIGNED = {"tinybert", "internal"}
CROSS_METHODS = ("kd", "pkd", "alp", "rail", "ckd", "universal", "dih", "universal+alp", "universal+rail",
                 "universal+pkd", "kd+alp", "tinybert", "internal")
#: teacher → student pairs: each family teaches the next one (students 2 blocks, 16 wide: widths differ)
PAIRS = tuple(zip(FAMILIES, FAMILIES[1:] + FAMILIES[:1], strict=True))
CROSS_SHAPE = {"layers": 2, "hidden": 16, "heads": 4, "intermediate": 32}
STUDENTS = ("bottom:2", "layers:2,4", "config:layers=2,hidden=16,heads=2,intermediate=32")


@pytest.fixture(scope="module", autouse=True)
def _coverage_report():
    yield
    write_report({"families": list(FAMILIES), "tokenizers": TOKENIZER, "methods": list(METHODS),
                  "cross_methods": list(CROSS_METHODS), "pairs": [list(p) for p in PAIRS], "students": list(STUDENTS),
                  "cross_shape": CROSS_SHAPE})


# ---------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("family-data")
    return toy.write_sentiment_data(d, n_train=32, n_dev=16, seed=0, noise=0.0, max_extra_clauses=0)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("families")


def _finetune_cfg(model: Path, data, out: Path, **train):
    tr, dev = data
    return validate_run_config({
        "task": toy.TOY_TASK, "data": {"train_file": str(tr), "dev_file": str(dev)}, "model": str(model),
        "train": {"epochs": 1, "max_steps": 1, "lr": 1e-3, "batch_size": BATCH, "max_length": MAX_LENGTH, "seed": 0,
                  "warmup_ratio": 0.0, **train},
        "output_dir": str(out)})


@pytest.fixture(scope="module")
def teachers(root, data, toy_task):
    """``teacher(family)``: (fine-tuned directory, loaded model), made on first use (one step of fine-tuning)."""
    made: dict[str, tuple[Path, TransformerClassifier]] = {}

    def get(family: str):
        if family not in made:
            base = write_family(root / f"{family}-base", family)
            out = root / f"{family}-teacher"
            finetune(_finetune_cfg(base, data, out), progress=False)
            made[family] = (out, load_model(out, toy_task, require_head=True))
        return made[family]
    return get


@pytest.fixture(scope="module")
def cross_students(root):
    """``student(family)``: a random 2-block, 16-wide pretrained-style directory of that family."""
    made: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in made:
            made[family] = write_family(root / f"{family}-small", family, seed=1, **CROSS_SHAPE)
        return made[family]
    return get



# ---------------------------------------------------------------------------------------- per family


@pytest.mark.parametrize("family", FAMILIES)
def test_finetune(family, teachers, toy_task):
    """One step of ``layerkd finetune`` from a pretrained-style directory; the saved teacher has a
    fine-tuned head and reloads to the same logits."""
    with case("family", family, "finetune"):
        out, teacher = teachers(family)
        cfg = json.loads((out / "config.json").read_text())
        assert any(a.endswith("ForSequenceClassification") for a in cfg["architectures"]), cfg["architectures"]
        assert json.loads((out / "metrics.json").read_text())
        again = load_model(out, toy_task, require_head=True)
        assert torch.allclose(logits(teacher, TEXTS), logits(again, TEXTS), atol=1e-6)


def _ffn_width(block: nn.Module, hidden: int) -> set[int]:
    """Input widths of the block's linear maps back to the model width (the feed-forward down-projection)."""
    return {m.in_features for m in block.modules() if isinstance(m, nn.Linear) and m.out_features == hidden
            and m.in_features != hidden}


@pytest.mark.parametrize("spec", STUDENTS)
@pytest.mark.parametrize("family", FAMILIES)
def test_student_saves_and_reloads(family, spec, teachers, data, tmp_path, toy_task):
    """Cut and config students of every family: the expected shape, saved and reloaded to the same
    logits (a cut that keeps per-layer structure the family cannot rebuild would reload differently)."""
    with case("student", family, spec):
        teacher_dir, teacher = teachers(family)
        plan = make_plan(teacher_dir, teacher, data, "kd", tmp_path / "run", spec)
        student = plan.student
        assert student.info.num_layers == 2
        hidden = 16 if spec.startswith("config:") else 32
        assert student.info.hidden_size == hidden
        blocks = student.layer_list() if family != "albert" else None
        if blocks is not None:
            assert len(blocks) == 2
        if spec.startswith("config:") and blocks is not None:
            assert _ffn_width(blocks[0], hidden) == {32}, f"feed-forward width {_ffn_width(blocks[0], hidden)}"
        one_step_per_phase(plan)
        student.save_pretrained(tmp_path / "student")
        again = load_model(tmp_path / "student", toy_task)
        assert again.info.num_layers == 2 and type(again.hf) is type(student.hf)
        assert torch.allclose(logits(student, TEXTS), logits(again, TEXTS), atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_mean_pooled_student(family, teachers, data, tmp_path, toy_task):
    """``--pooling mean``: a mean-pooled bottom:2 student of every family trains a step, saves and
    reloads as mean-pooled with the same logits, which differ from the [CLS] reading."""
    with case("family", family, "pooling mean"):
        teacher_dir, teacher = teachers(family)
        plan = make_plan(teacher_dir, teacher, data, "kd", tmp_path / "run", "bottom:2", pooling="mean")
        assert plan.student.pooling == "mean"
        one_step_per_phase(plan)
        plan.student.save_pretrained(tmp_path / "student")
        again = load_model(tmp_path / "student", toy_task)
        assert again.pooling == "mean"
        mean = logits(again, TEXTS)
        assert torch.allclose(logits(plan.student, TEXTS), mean, atol=1e-5)
        again.set_pooling("cls")
        assert not torch.allclose(logits(again, TEXTS), mean, atol=1e-4)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("family", FAMILIES)
def test_method_on_family(family, method, teachers, data, tmp_path):
    """Every method with a bottom:2 student cut from the family's teacher: planned, then one step per phase."""
    with case("method", family, method):
        teacher_dir, teacher = teachers(family)
        terms = one_step_per_phase(make_plan(teacher_dir, teacher, data, method, tmp_path / "run", "bottom:2"))
        assert terms


@pytest.mark.parametrize("family", FAMILIES)
def test_student_order_and_heads(family, teachers, data, tmp_path, toy_task):
    """Two pairs that only some families (or none) allow: ``layers:2,1`` (blocks in another order:
    ModernBERT's first block has no attention norm, so it cannot be moved) and ``internal`` with a
    2-head student of a 4-head teacher (attention maps compared head by head: always refused)."""
    teacher_dir, teacher = teachers(family)
    with case("family", family, "layers:2,1") as outcome:
        if family == "modernbert":
            with pytest.raises(ModelError, match="block 1 has no attn_norm") as err:
                make_plan(teacher_dir, teacher, data, "kd", tmp_path / "a", "layers:2,1")
            outcome["refused"] = str(err.value)
        else:
            plan = make_plan(teacher_dir, teacher, data, "kd", tmp_path / "a", "layers:2,1")
            one_step_per_phase(plan)
            plan.student.save_pretrained(tmp_path / "student")
            assert torch.allclose(logits(plan.student, TEXTS), logits(load_model(tmp_path / "student", toy_task), TEXTS),
                                  atol=1e-5)
    with case("family", family, "internal, 2-head student") as outcome:
        with pytest.raises(PairError, match="head by head: teacher has 4 heads, student 2") as err:
            make_plan(teacher_dir, teacher, data, "internal", tmp_path / "b", "config:layers=2,hidden=16,heads=2")
        outcome["refused"] = str(err.value)


def expected_refusal(method: str, teacher_family: str, student_family: str) -> str | None:
    """The reason a cross-family pair must be refused (a regex of the message), or None."""
    if set(method.split("+")) & TOKEN_ALIGNED and TOKENIZER[teacher_family] != TOKENIZER[student_family]:
        return "share one tokenizer"
    return None


@pytest.mark.parametrize("method", CROSS_METHODS)
@pytest.mark.parametrize(("teacher_family", "student_family"), PAIRS, ids=[f"{t}->{s}" for t, s in PAIRS])
def test_cross_family(teacher_family, student_family, method, teachers, cross_students, data, tmp_path):
    """A teacher of one family, a pretrained student of another (its own tokenizer, half the width):
    the methods that need no token alignment train; token-aligned ones are refused at planning."""
    with case("cross", f"{teacher_family} → {student_family}", method) as outcome:
        teacher_dir, teacher = teachers(teacher_family)
        student = str(cross_students(student_family))
        refusal = expected_refusal(method, teacher_family, student_family)
        if refusal is None:
            assert one_step_per_phase(make_plan(teacher_dir, teacher, data, method, tmp_path / "run", student))
        else:
            with pytest.raises(PairError, match=refusal) as err:
                make_plan(teacher_dir, teacher, data, method, tmp_path / "run", student)
            outcome["refused"] = str(err.value)


# ---------------------------------------------------------------------------------------- CLI


CLI_CASES = {  # name: (teacher family, student spec or @family (its small pretrained-style directory), method, options)
    "deberta-v2 → modernbert, universal+alp": ("deberta-v2", "@modernbert", "universal+alp", []),
    "modernbert layers:2,4 --pooling mean, kd+rail": ("modernbert", "layers:2,4", "kd+rail", ["--pooling", "mean"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CLI_CASES))
def test_cli_distill(name, teachers, cross_students, data, tmp_path, toy_task):
    """``layerkd distill`` end to end in a subprocess (cache, teacher heads fit, evaluation, outputs),
    then the saved student reloads."""
    family, student, method, extra = CLI_CASES[name]
    with case("cli", name, "layerkd distill"):
        teacher_dir, _ = teachers(family)
        if student.startswith("@"):
            student = str(cross_students(student[1:]))
        train, dev = data
        cfg = tmp_path / "run.yaml"
        cfg.write_text(json.dumps({
            "task": toy.TOY_TASK, "data": {"train_file": str(train), "dev_file": str(dev)},
            "teacher": {"path": str(teacher_dir), "fit_heads": {"epochs": 1}},
            "train": {"epochs": 1, "max_steps": 2, "batch_size": BATCH, "max_length": MAX_LENGTH, "lr": 1e-3}}))
        out = tmp_path / "out"
        proc = subprocess.run(
            [sys.executable, "-m", "layerkd.cli", "--quiet", "distill", "--config", str(cfg), "--method", method,
             "--student", student, "--output-dir", str(out), "--cache-dir", str(tmp_path / "cache"), *extra],
            capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert proc.returncode == 0, proc.stderr[-2000:]
        metrics = json.loads((out / "metrics.json").read_text())
        assert re.search(r"accuracy", json.dumps(metrics))
        again = load_model(out, toy_task)
        assert again.info.num_layers == 2
        if "--pooling" in extra:
            assert again.pooling == "mean"

"""Shared fixtures.

* ``shared_dir`` — the offline data/models folder ``../shared`` beside the checkout (or
  ``$LAYERKD_SHARED``); tests that need it skip with a clear reason when it is absent.
* ``toy_*`` — a generated task and tiny random/fine-tuned BERTs (offline, seconds on a CPU).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from layerkd import toy
from layerkd.tasks import task_from_config

REPO = Path(__file__).resolve().parents[1]

# tiny models gain nothing from intra-op threads, and on a busy 2-core machine two threads are
# several times slower than one
torch.set_num_threads(1)

#: the teacher cache a run would use outside the tests ($LAYERKD_CACHE or ~/.cache/layerkd), read
#: before the fixture below points LAYERKD_CACHE elsewhere; the tests must never write there
USER_CACHE = Path(os.environ.get("LAYERKD_CACHE") or Path.home() / ".cache" / "layerkd")


@pytest.fixture(scope="session", autouse=True)
def _private_teacher_cache(tmp_path_factory):
    """Every test (and every CLI subprocess it starts) uses a temporary teacher cache, whatever
    HOME or LAYERKD_CACHE say: a test run never adds entries to the user's real cache."""
    old = os.environ.get("LAYERKD_CACHE")
    os.environ["LAYERKD_CACHE"] = str(tmp_path_factory.mktemp("layerkd-cache"))
    yield Path(os.environ["LAYERKD_CACHE"])
    if old is None:
        os.environ.pop("LAYERKD_CACHE", None)
    else:
        os.environ["LAYERKD_CACHE"] = old


def _shared() -> Path | None:
    env = os.environ.get("LAYERKD_SHARED")
    p = Path(env) if env else REPO.parent / "shared"
    return p if (p / "data" / "glue").is_dir() else None


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    p = _shared()
    if p is None:
        pytest.skip("../shared (GLUE data and MiniLM models) is not beside the checkout; set LAYERKD_SHARED to run this test")
    return p


@pytest.fixture(scope="session")
def glue_dir(shared_dir) -> Path:
    return shared_dir / "data" / "glue"


@pytest.fixture(scope="session")
def minilm_dir(shared_dir) -> Path:
    p = shared_dir / "models" / "all-MiniLM-L6-v2"
    if not (p / "config.json").exists():
        pytest.skip(f"{p} is missing")
    return p


@pytest.fixture(scope="session")
def toy_task():
    return task_from_config(toy.TOY_TASK)


@pytest.fixture(scope="session")
def toy_pair_task():
    return task_from_config(toy.TOY_PAIR_TASK)


@pytest.fixture(scope="session")
def toy_data(tmp_path_factory):
    """(train.tsv, dev.tsv) of the easy toy sentiment task (single clauses, no label noise): 600 / 200 rows."""
    d = tmp_path_factory.mktemp("toy-data")
    return toy.write_sentiment_data(d, n_train=600, n_dev=200, seed=0, noise=0.0, max_extra_clauses=0)


@pytest.fixture(scope="session")
def toy_pair_data(tmp_path_factory):
    d = tmp_path_factory.mktemp("toy-pair-data")
    return toy.write_pair_data(d, n_train=300, n_dev=100, seed=0)


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    """A random 4-layer, 32-wide, 4-head BERT with the toy tokenizer (not fine-tuned)."""
    return toy.write_tiny_bert(tmp_path_factory.mktemp("tiny-bert"), layers=4, hidden=32, heads=4, intermediate=64)


@pytest.fixture(scope="session")
def tiny_teacher_dir(tmp_path_factory, toy_task, toy_data, tiny_bert_dir) -> Path:
    """The tiny BERT fine-tuned on the toy task (a few epochs; good enough to distil from)."""
    from layerkd.config import validate_run_config
    from layerkd.stages.finetune import finetune

    out = tmp_path_factory.mktemp("tiny-teacher") / "teacher"
    train, dev = toy_data
    cfg = validate_run_config({
        "task": toy.TOY_TASK, "data": {"train_file": str(train), "dev_file": str(dev)}, "model": str(tiny_bert_dir),
        "train": {"epochs": 12, "lr": 2e-3, "batch_size": 16, "max_length": 32, "seed": 0, "warmup_ratio": 0.0},
        "output_dir": str(out),
    })
    finetune(cfg, progress=False)  # ≈ 0.9 dev accuracy in ~10 s
    return out


@pytest.fixture(scope="session")
def tiny_pair_teacher_dir(tmp_path_factory, toy_pair_task, toy_pair_data, tiny_bert_dir) -> Path:
    from layerkd.config import validate_run_config
    from layerkd.stages.finetune import finetune

    out = tmp_path_factory.mktemp("tiny-pair-teacher") / "teacher"
    train, dev = toy_pair_data
    cfg = validate_run_config({
        "task": toy.TOY_PAIR_TASK, "data": {"train_file": str(train), "dev_file": str(dev)}, "model": str(tiny_bert_dir),
        "train": {"epochs": 3, "lr": 3e-3, "batch_size": 32, "max_length": 32, "seed": 0}, "output_dir": str(out),
    })
    finetune(cfg, progress=False)
    return out


def distill_config(teacher_dir, data, method, out, *, student="bottom:2", epochs=2, task=None, extra=None, cache_dir=None):
    """A validated distillation RunConfig for the toy task (helper for tests)."""
    from layerkd.config import deep_merge, validate_run_config

    train, dev = data
    cfg = {
        "task": task or toy.TOY_TASK, "data": {"train_file": str(train), "dev_file": str(dev)},
        "teacher": {"path": str(teacher_dir), "fit_heads": {"epochs": 2, "lr": 5e-3}}, "student": student, "method": method,
        "train": {"epochs": epochs, "lr": 3e-3, "batch_size": 16, "max_length": 32, "seed": 0, "warmup_ratio": 0.0},
        "output_dir": str(out), "cache": {"dir": str(cache_dir or Path(out).parent / "cache")},
    }
    return validate_run_config(deep_merge(cfg, extra or {}))

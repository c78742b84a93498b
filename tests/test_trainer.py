"""The one training loop: fitting, evaluation bookkeeping, exact resume, guards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from layerkd import toy
from layerkd.config import validate_run_config
from layerkd.errors import NonFiniteLossError
from layerkd.stages.finetune import finetune
from layerkd.trainer import Trainer


def _cfg(model_dir, train, dev, out, **train_over):
    train_cfg = {"epochs": 3, "lr": 3e-3, "batch_size": 16, "max_length": 32, "seed": 0}
    train_cfg.update(train_over)
    return validate_run_config({
        # the loop's own tests select on the dev file (train == dev in some); the carved validation
        # split is tested in tests/test_validation_split.py
        "task": toy.TOY_TASK, "data": {"train_file": str(train), "dev_file": str(dev), "validation": {"source": "eval"}},
        "model": str(model_dir), "train": train_cfg, "output_dir": str(out),
    })


def _events(out: Path, kind: str) -> list[dict]:
    return [r for r in map(json.loads, (out / "log.jsonl").read_text().splitlines()) if r["event"] == kind]


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    d = tmp_path_factory.mktemp("small")
    rows = toy.sentiment_examples(64, seed=3, noise=0.0)
    p = d / "train.tsv"
    p.write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows))
    return p


def test_loop_memorises_a_tiny_dataset(tiny_bert_dir, small_data, tmp_path):
    # train == dev: a 4-layer model must (nearly) memorise 64 examples, and the loss must fall
    res = finetune(_cfg(tiny_bert_dir, small_data, small_data, tmp_path / "run", epochs=25, lr=5e-3), progress=False)
    assert res["best"]["accuracy"] >= 0.95
    losses = [e["loss"] for e in _events(tmp_path / "run", "train")]
    assert losses[-1] < 0.2 * losses[0]
    out = tmp_path / "run"
    for f in ("config.json", "model.safetensors", "metrics.json", "results.json", "config.yaml", "tokenizer_config.json"):
        assert (out / f).exists(), f
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["accuracy"] == res["best"]["accuracy"] and "last_epoch" in metrics


def test_best_epoch_is_kept_and_reported(tiny_bert_dir, toy_data, tmp_path):
    train, dev = toy_data
    res = finetune(_cfg(tiny_bert_dir, train, dev, tmp_path / "run", epochs=3, eval_every_steps=10), progress=False)
    evals = _events(tmp_path / "run", "eval")
    # evaluated every 10 steps and at each epoch end; the best is the max over all evaluations
    assert len(evals) >= 3 + (3 * 38) // 10 - 3
    best = max(e["accuracy"] for e in evals)
    assert res["best"]["accuracy"] == pytest.approx(best)
    assert res["best_step"] == max(evals, key=lambda e: e["accuracy"])["step"] or res["best"]["accuracy"] == best
    # the exported model is the best one: scoring it again gives the best score
    from layerkd.stages.evaluate import evaluate_model

    again = evaluate_model(str(tmp_path / "run"), toy_task_obj(), file=str(dev), max_length=32)
    assert again["accuracy"] == pytest.approx(best)


def toy_task_obj():
    from layerkd.tasks import task_from_config

    return task_from_config(toy.TOY_TASK)


def test_early_stopping_stops(tiny_bert_dir, toy_data, tmp_path):
    train, dev = toy_data
    cfg = _cfg(tiny_bert_dir, train, dev, tmp_path / "run", epochs=30, lr=1e-6, early_stopping_patience=2)
    res = finetune(cfg, progress=False)
    assert res["stopped_early"] and res["epochs_run"] < 30


class _Interrupt(Exception):
    pass


def _interrupt_at(monkeypatch, step: int):
    """Make the optimiser step raise once the loop reaches ``step`` (an in-process 'kill')."""
    orig = Trainer._flush_train_log

    def flush(self, *a, **k):
        orig(self, *a, **k)
        if self.state.global_step >= step:
            raise _Interrupt

    monkeypatch.setattr(Trainer, "_flush_train_log", flush)


@pytest.mark.parametrize("stop_step", [7, 19])  # mid-epoch (after a step checkpoint) and in the next epoch
def test_resume_gives_identical_final_weights(tiny_bert_dir, toy_data, tmp_path, monkeypatch, stop_step):
    train, dev = toy_data
    kw = {"epochs": 2, "checkpoint_every_steps": 5, "log_every_steps": 1, "batch_size": 32}
    ref = finetune(_cfg(tiny_bert_dir, train, dev, tmp_path / "ref", **kw), progress=False)
    with monkeypatch.context() as m:
        _interrupt_at(m, stop_step)
        with pytest.raises(_Interrupt):
            finetune(_cfg(tiny_bert_dir, train, dev, tmp_path / "cut", **kw), progress=False)
    assert not (tmp_path / "cut" / "metrics.json").exists()
    res = finetune(_cfg(tiny_bert_dir, train, dev, tmp_path / "cut", **kw), resume=True, progress=False)
    a = load_file(str(tmp_path / "ref" / "model.safetensors"))
    b = load_file(str(tmp_path / "cut" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    assert res["best"] == ref["best"] and res["last"] == ref["last"]
    # the log holds each step once (lines written after the checkpoint by the cut run are dropped)
    steps = [e["step"] for e in _events(tmp_path / "cut", "train")]
    assert steps == sorted(set(steps))


def test_resume_refuses_a_checkpoint_of_another_configuration(tiny_bert_dir, toy_data, tmp_path, monkeypatch):
    from layerkd.errors import CheckpointError

    train, dev = toy_data
    with monkeypatch.context() as m:
        _interrupt_at(m, 3)
        with pytest.raises(_Interrupt):
            finetune(_cfg(tiny_bert_dir, train, dev, tmp_path / "run", checkpoint_every_steps=2, log_every_steps=1), progress=False)
    with pytest.raises(CheckpointError, match="another configuration"):
        finetune(_cfg(tiny_bert_dir, train, dev, tmp_path / "run", lr=1e-4, checkpoint_every_steps=2), resume=True, progress=False)


def test_gradient_accumulation_matches_full_batch(tiny_bert_dir, toy_data, tmp_path):
    # without dropout, 2 micro-batches of 16 give the same update as one batch of 32
    import shutil

    src = tmp_path / "nodrop"
    shutil.copytree(tiny_bert_dir, src)
    cfgj = json.loads((src / "config.json").read_text())
    cfgj.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (src / "config.json").write_text(json.dumps(cfgj))
    train, dev = toy_data
    a = finetune(_cfg(src, train, dev, tmp_path / "a", epochs=1, batch_size=32), progress=False)
    b = finetune(_cfg(src, train, dev, tmp_path / "b", epochs=1, batch_size=32, grad_accum=2), progress=False)
    wa = load_file(str(tmp_path / "a" / "model.safetensors"))
    wb = load_file(str(tmp_path / "b" / "model.safetensors"))
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-4, atol=1e-5, msg=k)
    assert a["best"]["accuracy"] == pytest.approx(b["best"]["accuracy"])


def test_nonfinite_loss_stops_naming_the_objective(tiny_bert_dir, toy_data, tmp_path, monkeypatch):
    from layerkd.objectives.ce import CrossEntropy

    orig = CrossEntropy.forward
    monkeypatch.setattr(CrossEntropy, "forward", lambda self, s, t, b: orig(self, s, t, b) * float("nan"))
    train, dev = toy_data
    with pytest.raises(NonFiniteLossError, match=r"step 1 .*objective ce"):
        finetune(_cfg(tiny_bert_dir, train, dev, tmp_path / "run"), progress=False)
    assert not (tmp_path / "run").exists()  # nothing half-written: no checkpoint had been made


def test_nonfinite_loss_can_skip_steps(tiny_bert_dir, toy_data, tmp_path, monkeypatch):
    from layerkd.objectives.ce import CrossEntropy

    orig = CrossEntropy.forward
    calls = {"n": 0}

    def sometimes_nan(self, s, t, b):
        calls["n"] += 1
        out = orig(self, s, t, b)
        return out * float("nan") if calls["n"] % 4 == 0 and self.training else out

    monkeypatch.setattr(CrossEntropy, "forward", sometimes_nan)
    train, dev = toy_data
    res = finetune(_cfg(tiny_bert_dir, train, dev, tmp_path / "run", epochs=1, nonfinite="skip"), progress=False)
    skipped = _events(tmp_path / "run", "skipped_step")
    assert len(skipped) >= 5
    assert res["steps"] == 38 - len(skipped)


def test_bf16_autocast_trains_on_cpu(tiny_bert_dir, small_data, tmp_path):
    res = finetune(_cfg(tiny_bert_dir, small_data, small_data, tmp_path / "run", epochs=20, lr=5e-3, precision="bf16"),
                   progress=False)
    losses = [e["loss"] for e in _events(tmp_path / "run", "train")]
    assert all(x == x for x in losses) and losses[-1] < 0.5 * losses[0]
    assert res["precision"] == "bf16" and res["best"]["accuracy"] >= 0.9

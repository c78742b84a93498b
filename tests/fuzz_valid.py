"""The valid inputs of the fuzz corpus (``tests/test_fuzz_corpus.py``): inputs a careless user
may well give that are actually fine — they must work, and give the right result, not merely
exit 0. Issue 19's: a teacher whose label order is the reverse of the task's (mapped by name: the
same accuracy), ``evaluate --file`` beside a GLUE-split evaluation (each kept under its own name),
``LAYERKD_VERBOSE=1`` on ``bench`` (the same cell keys), ``cache clear``/``ls`` on a directory with
folders that are not entries (left alone), a bench whose cell fails (exit 1), the demo's JSON
(strict: ``null``, never a bare ``NaN``)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from clihelp import run_cli
from fuzz_cases import Case, _cache_with_strangers, _copy, _demo, _evaluate, _toy
from layerkd import toy
from output_cases import _suite
from test_errors_catalogue import GOOD, Ctx, _glue
from test_label_order import REVERSED


def _reversed_teacher(c: Ctx) -> Path:
    """The teacher with its output rows swapped and id2label {0: '1', 1: '0'}: the same model."""
    from safetensors.torch import load_file, save_file

    d = _copy(c.teacher, c.tmp / "reversed")
    sd = load_file(str(d / "model.safetensors"))
    sd = {k: v.flip(0).contiguous() if k.startswith("classifier") else v for k, v in sd.items()}
    save_file(sd, str(d / "model.safetensors"), metadata={"format": "pt"})
    cfg = json.loads((d / "config.json").read_text())
    cfg["id2label"], cfg["label2id"] = {"0": "1", "1": "0"}, {"1": 0, "0": 1}
    (d / "config.json").write_text(json.dumps(cfg))
    return d


def _evaluate_reversed(c: Ctx) -> list:
    dev = _toy(c)["dev_file"]
    code, _, err = run_cli(*_evaluate(c, "--file", dev, "--output", c.tmp / "ref.json"))
    assert code == 0, err
    return ["evaluate", _reversed_teacher(c), "--task", "sst-2", "--max-length", "32", "--file", dev, "--output", c.out / "eval.json"]


def _same_accuracy(c: Ctx, out: str, err: str) -> None:
    ref, got = (json.loads(p.read_text()) for p in (c.tmp / "ref.json", c.out / "eval.json"))
    assert ref["accuracy"] > 0.8 and got["accuracy"] == ref["accuracy"], (ref["accuracy"], got["accuracy"])


def _distill_reversed(c: Ctx) -> list:
    recipe = {"objectives": [{"name": "kd", "weight": 1.0, "temperature": 2.0}]}
    return c.distill(task=REVERSED, method=None, recipe=recipe, data=_toy(c),
                     train={"epochs": 2, "batch_size": 16, "lr": 3e-3, "warmup_ratio": 0.0})


def _learned_by_name(c: Ctx, out: str, err: str) -> None:
    res = json.loads((c.out / "results.json").read_text())
    assert res["best"]["accuracy"] > 0.75, res["best"]  # compared by position it would be about 0.1
    assert json.loads((c.out / "config.json").read_text())["id2label"] == {"0": "1", "1": "0"}


def _evaluate_twice(c: Ctx) -> list:
    code, _, err = run_cli(*_evaluate(c, "--data-dir", _glue(c, GOOD)))  # MODEL_DIR/eval-split-dev.json
    assert code == 0, err
    return _evaluate(c, "--file", c.write("other/dev.tsv", GOOD.replace("\t1\n", "\t0\n", 1)))


def _both_evaluations_kept(c: Ctx, out: str, err: str) -> None:
    split = json.loads((c.teacher / "eval-split-dev.json").read_text())
    (by_file,) = [json.loads(p.read_text()) for p in c.teacher.glob("eval-file-dev-*.json")]
    assert split["evaluated"]["split"] == "dev" and by_file["evaluated"]["file"].endswith("other/dev.tsv")
    assert split["accuracy"] != by_file["accuracy"]


def _cleared_one(c: Ctx, out: str, err: str) -> None:
    assert "removed 1 entry" in out, out  # (the warning naming the strangers goes to the log)
    assert not (c.tmp / "cache" / "teacher" / "0123456789abcdef01234567").exists()


def _listed_one(c: Ctx, out: str, err: str) -> None:
    assert [ln.split()[0] for ln in out.splitlines()] == ["0123456789abcdef01234567"], out


def _dry_run_keys(out: str) -> list[str]:
    return [ln.split()[0] for ln in out.splitlines() if len(ln.split()) > 4 and len(ln.split()[0]) == 16]


def _bench_verbose(c: Ctx) -> list:
    c.monkeypatch.delenv("LAYERKD_VERBOSE", raising=False)
    _glue(c, GOOD)
    args = ["bench", _suite(c), "--results", c.out, "--dry-run"]
    code, out, err = run_cli(*args, capsys=c.capsys)
    assert code == 0, err
    c.monkeypatch.setattr(c, "keys", _dry_run_keys(out), raising=False)
    c.monkeypatch.setenv("LAYERKD_VERBOSE", "1")
    return args


def _same_keys(c: Ctx, out: str, err: str) -> None:
    assert c.keys and _dry_run_keys(out) == c.keys, (c.keys, out)


def _bench_failing_cell(c: Ctx) -> list:
    suite = {"name": "s", "base": {"data": _toy(c, 32, 16), "train": {"epochs": 1, "batch_size": 16, "max_length": 32}},
             "tasks": {"toy": {"teacher": str(c.teacher), "overrides": {"task": toy.TOY_TASK}}},
             "students": {"deep": "layers:1,2,3,4,5,6,7,8,9"}, "methods": ["ce"], "seeds": [1]}  # deeper than the teacher
    return ["bench", c.write("s.yaml", yaml.safe_dump(suite)), "--results", c.out]


def _one_failed(c: Ctx, out: str, err: str) -> None:
    assert "failed 1" in out and list(c.out.glob("*.failed.json")), out


def _demo_json_strict(c: Ctx, out: str, err: str) -> None:
    def refuse(name):
        raise AssertionError(f"demo.json holds a bare {name}")

    text = (c.out / "demo.json").read_text()
    json.loads(text, parse_constant=refuse)
    assert "null" in text  # the teacher row has no last epoch


# id -> Case
CASES: dict[str, Case] = {
    "distill-reversed-labels": Case("distill", _distill_reversed, None, check=_learned_by_name, writes=("out", "cache")),
    "evaluate-reversed-labels": Case("evaluate", _evaluate_reversed, None, check=_same_accuracy),
    "evaluate-file-and-split-named-apart": Case("evaluate", _evaluate_twice, None, check=_both_evaluations_kept,
                                                writes=("teacher/eval-file-dev-*.json",)),
    "bench-verbose-env-same-keys": Case("bench", _bench_verbose, None, check=_same_keys, writes=()),
    "bench-failed-cell-exits-1": Case("bench", _bench_failing_cell, None, exit=1, check=_one_failed),
    "cache-clear-with-strangers": Case("cache", lambda c: ["cache", "clear", "--cache-dir", _cache_with_strangers(c)], None,
                                       exit=0, check=_cleared_one, writes=("cache/teacher/0123456789abcdef01234567",)),
    "cache-ls-with-strangers": Case("cache", lambda c: ["cache", "ls", "--cache-dir", _cache_with_strangers(c)], None,
                                    check=_listed_one, writes=()),
    "demo-json-null-not-nan": Case("demo", lambda c: _demo(c), None, exit=0, check=_demo_json_strict),
}

"""Catalogue cases (``docs/errors.md``) for output paths and the checks made before a run writes
anything (:mod:`layerkd.outputs`, :mod:`layerkd.stages.preflight`). Merged into
``tests/test_errors_catalogue.py``'s ``CASES``; each builder takes its ``Ctx`` and returns the
command line."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import yaml

from layerkd.outputs import LOCK, MARKER

GOOD = "sentence\tlabel\nthe movie was good\t1\nthe plot was bad\t0\nthe cast was not dull\t1\n"


def _with_output(args: list, out) -> list:
    args = list(args)
    args[args.index("--output-dir") + 1] = out
    return args


def _not_layerkd(ctx) -> list:
    ctx.out.mkdir()
    (ctx.out / "keep.txt").write_text("precious")
    return [*ctx.finetune(), "--overwrite"]


def _locked(ctx) -> list:
    from filelock import FileLock

    ctx.out.mkdir()
    lock = FileLock(str(ctx.out / LOCK))
    lock.acquire(timeout=0)
    ctx.monkeypatch.setattr(ctx, "held_lock", lock, raising=False)  # held while the CLI runs
    return ctx.finetune()


def _below_file(ctx) -> list:
    return _with_output(ctx.finetune(), ctx.write("notes.txt", "mine") / "out")


def _symlink_loop(ctx) -> list:
    os.symlink(ctx.out.name, ctx.out)  # out -> out
    return ctx.finetune()


def _not_writable(ctx) -> list:
    real = os.access
    work = os.path.realpath(ctx.tmp)
    ctx.monkeypatch.setattr(os, "access", lambda p, mode, *a, **k: not (mode & os.W_OK and os.path.realpath(p) == work)
                            and real(p, mode, *a, **k))
    return ctx.finetune()


def _suite(ctx) -> Path:
    suite = {"name": "s", "base": {"data": {"data_dir": str(ctx.tmp / "glue")}, "train": {"epochs": 1, "max_length": 32}},
             "tasks": {"sst-2": {"teacher": str(ctx.teacher)}}, "students": {"L2": "bottom:2"}, "methods": ["kd"],
             "seeds": [1]}
    return ctx.write("suite.yaml", yaml.safe_dump(suite))


def _results_is_file(ctx) -> list:
    return ["bench", _suite(ctx), "--results", ctx.write("results.txt", "mine")]


def _report_is_file(ctx) -> list:
    ctx.write("results/.keep", "")
    return ["report", ctx.tmp / "results", "--out", ctx.write("report.txt", "mine"), "--no-figures"]


def _big_teacher(ctx) -> Path:
    """The toy teacher with its classifier scaled up: logits far beyond fp16's ±65504."""
    from safetensors.torch import load_file, save_file

    d = ctx.tmp / "loud-teacher"
    shutil.copytree(ctx.teacher, d, ignore=shutil.ignore_patterns("checkpoints", ".layerkd*"))
    sd = load_file(str(d / "model.safetensors"))
    sd = {k: v * 1e7 if k.startswith("classifier") else v for k, v in sd.items()}
    save_file(sd, str(d / "model.safetensors"), metadata={"format": "pt"})
    return d


def _fp16_overflow(ctx) -> list:
    # the cache lives beside the work dir: building an entry takes lock files, which are not outputs
    return ctx.distill(teacher={"path": str(_big_teacher(ctx))}, cache={"dir": str(ctx.tmp.parent / "cache"), "dtype": "fp16"})


CASES = {
    "output-dir-not-layerkd": (_not_layerkd, r"output directory .*out exists, is not empty and was not created by layerkd "
                                             rf"\(no \{MARKER} marker\), so it is never written into or replaced"),
    "output-dir-overlaps-input": (lambda c: _with_output(c.distill("--overwrite"), c.teacher),
                                  r"output directory .*teacher is the teacher .*; outputs never go into, over or around an input"),
    "output-dir-protected": (lambda c: _with_output(c.finetune(), "."), r"output directory \. is the working directory"),
    "output-dir-locked": (_locked, r"output directory .*out is in use by another layerkd command \(it holds .*\.layerkd\.lock\)"),
    "output-path-below-file": (_below_file, r"cannot write output directory .*notes\.txt/out: .*notes\.txt is a file, not a directory"),
    "output-path-broken-symlink": (_symlink_loop, r"cannot write output directory .*out: .*out is a symlink loop"),
    "output-path-not-writable": (_not_writable, r"cannot write output directory .*out: no write permission in .*work"),
    "results-dir-is-file": (_results_is_file, r"results directory .*results\.txt exists and is a file"),
    "report-dir-is-file": (_report_is_file, r"report directory .*report\.txt exists and is a file"),
    "max-length-beyond-model": (lambda c: c.finetune(train={"max_length": 200}),
                                r"train\.max_length 200 is beyond the model .*tiny-bert.*'s 128 positions; set it to 128 or less"),
    "evaluate-max-length-invalid": (lambda c: ["evaluate", c.teacher, "--task", "sst-2", "--file", c.write("dev.tsv", GOOD),
                                               "--max-length", "0", "--output", c.tmp / "eval.json"],
                                    r"--max-length 0: expected 8 to 4096 tokens"),
    "recipe-all-weights-zero": (lambda c: c.distill(method=None, recipe={"objectives": [{"name": "kd", "weight": 0},
                                                                                        {"name": "ce", "weight": 0}]}),
                                r"every objective has weight 0 \(kd, ce\), so nothing would be trained"),
    "cache-fp16-overflow": (_fp16_overflow, r"teacher cache: the teacher's logits on .*train\.tsv exceed fp16's range "
                                            r"\(±65504\); set cache\.dtype: fp32 or pass --no-cache"),
}

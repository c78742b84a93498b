"""The hostile cases of the fuzz corpus (``tests/test_fuzz_corpus.py``) that are not catalogue
entries: issue 19's inputs as a careless user types them (the valid ones are in
``tests/fuzz_valid.py``), each expected to stop with exit 2 and one ``error:`` line.

Each builder takes the catalogue's ``Ctx`` (``tests/test_errors_catalogue.py``; its ``teacher``
and ``tiny_bert`` are copies inside the work directory, so every input lies in the tree the
corpus hashes) and returns the command line. Builders reuse the other test files' helpers."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from clihelp import run_cli
from layerkd import toy
from output_cases import _suite, _with_output
from test_cache_entries import _entry, _strangers
from test_errors_catalogue import GOOD, Ctx, _alias_bomb, _export_run, _glue
from test_model_files_hostile import _corrupt


@dataclass(frozen=True)
class Case:
    """``expect``: the pattern of the one ``error:`` line (exit 2); None for a valid input, which
    must exit with ``exit`` and pass ``check(ctx, stdout, stderr)``. ``writes``: where a valid case
    may write (glob patterns relative to the work directory); nothing else may change."""

    area: str | None
    make: Callable[[Ctx], list]
    expect: str | None
    exit: int | None = None  # default: 2 for a hostile input, 0 for a valid one
    check: Callable[[Ctx, str, str], None] | None = None
    writes: tuple[str, ...] = field(default=("out",))

    @property
    def code(self) -> int:
        return self.exit if self.exit is not None else 2 if self.expect is not None else 0


def _copy(src: Path, dst: Path) -> Path:
    return Path(shutil.copytree(src, dst, ignore=shutil.ignore_patterns("checkpoints")))


def _toy(c: Ctx, n_train: int = 64, n_dev: int = 32) -> dict:
    """Toy sentiment rows the tiny teacher knows (about 0.9 accuracy)."""
    out = {}
    for split, n, seed in (("train", n_train, 11), ("dev", n_dev, 12)):
        rows = toy.sentiment_examples(n, seed=seed, noise=0.0, max_extra_clauses=0)
        out[f"{split}_file"] = str(c.write(f"toy/{split}.tsv", "sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows)))
    return out


def _bad_model(c: Ctx, how: str, src: Path | None = None, name: str = "bad") -> Path:
    d = _copy(src or c.teacher, c.tmp / name)
    _corrupt(d / "model.safetensors", how)
    return d


def _finetune_glue(c: Ctx, train: str = GOOD, *extra) -> list:
    return ["finetune", "--model", c.tiny_bert, "--task", "sst-2", "--data-dir", _glue(c, train), "--output-dir", c.out, *extra]


def _fit_heads(c: Ctx, *extra, teacher=None) -> list:
    return ["fit-heads", "--teacher", teacher or c.teacher, "--task", "sst-2", "--data-dir", _glue(c, GOOD), "--epochs", "1",
            "--max-length", "32", "--output-dir", c.out, *extra]


def _demo(c: Ctx, *extra, out=None) -> list:
    return ["demo", "--task", "sst-2", "--data-dir", _glue(c, GOOD), "--teacher", c.teacher, "--methods", "kd", "--epochs", "1",
            "--output-dir", out or c.out, *extra]


def _evaluate(c: Ctx, *extra) -> list:
    return ["evaluate", c.teacher, "--task", "sst-2", "--max-length", "32", *extra]


def _report(c: Ctx, *extra, results: str = "results") -> list:
    c.write(f"{results}/.keep", "")
    return ["report", c.tmp / results, "--out", c.out, "--no-figures", *extra]


def _bench(c: Ctx, text: str, *extra) -> list:
    return ["bench", c.write("suite.yaml", text), "--results", c.out, *extra]


SUITE = "name: s\ntasks:\n  sst-2:\n    teacher: teacher\nstudents:\n  L2: bottom:2\nmethods: [kd]\nseeds: [1]\n"


# ------------------------------------------------------------------------------------------ outputs over inputs
def _overwrite_home(c: Ctx) -> list:
    home = c.tmp / "home"
    c.write("home/notes.txt", "mine")
    c.monkeypatch.setenv("HOME", str(home))
    return [*_with_output(c.finetune(), home), "--overwrite"]


def _out_symlink_to_data(c: Ctx) -> list:
    args = _finetune_glue(c, GOOD, "--overwrite")
    (c.tmp / "link").symlink_to("glue")
    return _with_output(args, c.tmp / "link")


def _out_contains_data_files(c: Ctx) -> list:
    data = {"train_file": str(c.write("data/train.tsv", GOOD)), "dev_file": str(c.write("data/dev.tsv", GOOD))}
    return [*_with_output(c.finetune(data=data), c.tmp / "data"), "--overwrite"]


def _out_inside_teacher(c: Ctx) -> list:
    return _with_output(c.distill("--overwrite"), c.teacher / "student")


def _resume_flipped(c: Ctx) -> list:
    keep = {"checkpoint_every_steps": 1, "keep_final_checkpoints": True}
    code, _, err = run_cli(*c.finetune(train=keep))
    assert code == 0, err
    args = [*c.finetune(train=keep), "--resume"]
    c.write("train.tsv", GOOD.replace("\t1\n", "\tX\n").replace("\t0\n", "\t1\n").replace("\tX\n", "\t0\n"))
    return args


def _resume_not_a_run(c: Ctx) -> list:
    c.write("out/notes.txt", "not a run")
    return [*c.finetune(), "--resume"]


def _second_writer_report(c: Ctx) -> list:
    from filelock import FileLock

    from layerkd.outputs import LOCK

    c.write("out/.layerkd-run", '{"kind": "report"}')
    lock = FileLock(str(c.out / LOCK))
    lock.acquire(timeout=0)
    c.monkeypatch.setattr(c, "held_lock", lock, raising=False)
    return _report(c)


def _cache_with_strangers(c: Ctx) -> Path:
    from layerkd.teacher_cache import TeacherCache

    root = c.tmp / "cache"
    _entry(TeacherCache(root), "0123456789abcdef01234567")
    _strangers(root)
    return root


# ------------------------------------------------------------------------------------------ models
def _heads_truncated(c: Ctx) -> list:
    from layerkd.models.heads import LayerHeads

    LayerHeads([1, 2, 3], 32, 2).save(c.tmp / "heads")
    _corrupt(c.tmp / "heads" / "heads.safetensors", "truncated")
    return c.distill("--teacher-heads", c.tmp / "heads", method="universal")


# id -> Case
CASES: dict[str, Case] = {
    # finetune: outputs over inputs (point 1), lock (3), unwritable (11), resume (6)
    "finetune-overwrite-cwd": Case("finetune", lambda c: [*_with_output(c.finetune(), "."), "--overwrite"],
                                   r"output directory \. is the working directory"),
    "finetune-overwrite-data-dir": Case("finetune", lambda c: _with_output(_finetune_glue(c, GOOD, "--overwrite"), c.tmp / "glue"),
                                        r"output directory .*glue is the data directory .*glue; outputs never go"),
    "finetune-overwrite-data-file": Case("finetune", lambda c: [*_with_output(c.finetune(), c.tmp / "train.tsv"), "--overwrite"],
                                         r"output directory .*train\.tsv is the training file .*train\.tsv; outputs never go"),
    "finetune-overwrite-around-data-files": Case("finetune", _out_contains_data_files,
                                                 r"output directory .*data contains the training file .*data/train\.tsv"),
    "finetune-overwrite-model": Case("finetune", lambda c: [*_with_output(c.finetune(), c.tiny_bert), "--overwrite"],
                                     r"output directory .*tiny-bert is the model .*; outputs never go"),
    "finetune-overwrite-home": Case("finetune", _overwrite_home, r"output directory .*home is your home directory"),
    "finetune-overwrite-symlink-to-data": Case("finetune", _out_symlink_to_data, r"output directory .*link is the data directory"),
    "finetune-output-dangling-symlink": Case("finetune", lambda c: (c.out.symlink_to("gone/away"), c.finetune())[1],
                                             r"cannot write output directory .*out: .*out is a symlink to gone/away, which does not exist"),
    "finetune-resume-labels-flipped": Case("finetune", _resume_flipped, r"--resume: inputs changed since checkpoint .*: training "
                                                                        r"data .*train\.tsv \(same row count, other content\)"),
    "finetune-resume-not-a-run": Case("finetune", _resume_not_a_run, r"out exists, is not empty and was not created by layerkd"),
    # finetune: data files (points 2, 14)
    "finetune-csv-duplicate-column": Case("finetune", lambda c: c.finetune(data=c.files(
        train="sentence,label,sentence\ngood,1,bad\n", dev="sentence,label\ngood,1\nbad,0\n", suffix="csv")),
        r"train\.csv line 1: column 'sentence' appears twice"),
    "finetune-jsonl-duplicate-key": Case("finetune", lambda c: c.finetune(data=c.files(
        train='{"sentence": "good", "label": "1"}\n{"sentence": "bad", "label": "0", "label": "1"}\n',
        dev='{"sentence": "good", "label": "1"}\n', suffix="jsonl")), r"train\.jsonl line 2: column 'label' appears twice"),
    "finetune-glue-duplicate-column": Case("finetune", lambda c: _finetune_glue(c, "sentence\tlabel\tlabel\ngood\t1\t0\n"),
                                           r"SST-2/train\.tsv line 1: column 'label' appears twice"),
    "finetune-zero-width-dev-text": Case("finetune", lambda c: c.finetune(data=c.files(dev=GOOD + "\ufeff\u2060\t0\n")),
                                         r"dev\.tsv line 5: empty text in column 'sentence'"),
    # finetune: command-line values (points 8, 10, 14)
    "finetune-seed-huge": Case("finetune", lambda c: [*c.finetune(), "--seed", "1" + "0" * 30],
                               r"train\.seed: Input should be less than or equal to 4294967295"),
    "finetune-seed-negative": Case("finetune", lambda c: [*c.finetune(), "--seed", "-1"], r"train\.seed: .*greater than or equal to 0"),
    "finetune-lr-nan": Case("finetune", lambda c: [*c.finetune(), "--lr", "nan"], r"train\.lr: Input should be a finite number"),
    "finetune-lr-inf": Case("finetune", lambda c: [*c.finetune(), "--lr", "inf"], r"train\.lr: Input should be a finite number"),
    "finetune-max-length-huge": Case("finetune", lambda c: [*c.finetune(), "--max-length", "100000"],
                                     r"train\.max_length: Input should be less than or equal to 4096 \(got 100000\)"),
    "finetune-unknown-command": Case("finetune", lambda c: ["fine-tune", "--model", c.tiny_bert], r"No such command 'fine-tune'"),
    # --config (points 7, 8)
    "config-flow-duplicate-key": Case("--config", lambda c: ["finetune", "--config", c.write(
        "dup.yaml", c.config().read_text() + "seeds: {a: 1, b: 2, a: 3}\n"), "--output-dir", c.out], r"dup\.yaml line \d+: duplicate key 'a'"),
    "config-recursive-alias": Case("--config", lambda c: ["finetune", "--config", c.write("rec.yaml", "task: &a [1, *a]\n"),
                                                          "--output-dir", c.out], r"rec\.yaml line 1: a recursive alias"),
    "config-alias-bomb-in-data": Case("--config", lambda c: ["distill", "--config", c.write("bomb.yaml", _alias_bomb().replace(
        "task: *l8", "student: *l8")), "--output-dir", c.out], r"bomb\.yaml line \d+: aliases expand this document beyond"),
    "config-adam-eps-inf-literal": Case("--config", lambda c: ["finetune", "--config", c.write(
        "inf.yaml", c.config().read_text().replace("train:\n", "train:\n  adam_eps: .inf\n")), "--output-dir", c.out],
        r"inf\.yaml: train\.adam_eps: Input should be a finite number \(got inf\)"),
    "config-lr-nan": Case("--config", lambda c: c.finetune(train={"lr": float("nan")}), r"train\.lr: Input should be a finite number"),
    "config-epochs-float": Case("--config", lambda c: c.finetune(train={"epochs": 3.0}), r"train\.epochs: Input should be a valid integer"),
    "config-batch-size-string": Case("--config", lambda c: c.finetune(train={"batch_size": "32"}),
                                     r"train\.batch_size: Input should be a valid integer \(got '32'\)"),
    "config-weight-inf": Case("--config", lambda c: c.distill(method=None, recipe={"objectives": [{"name": "kd", "weight": float("inf")}]}),
                              r"recipe\.objectives\.0\.weight: Input should be a finite number \(got inf\)"),
    "config-top-level-list": Case("--config", lambda c: ["finetune", "--config", c.write("list.yaml", "- task\n- sst-2\n"),
                                                         "--output-dir", c.out], r"list\.yaml: expected a mapping at the top level, got list"),
    "config-empty": Case("--config", lambda c: ["finetune", "--config", c.write("empty.yaml", ""), "--output-dir", c.out],
                         r"empty\.yaml: task: missing"),
    "config-section-scalar": Case("--config", lambda c: c.finetune(train=5), r"run\.yaml: train: Input should be a valid dictionary"),
    "config-not-utf8": Case("--config", lambda c: ["finetune", "--config", c.write("latin.yaml", b"task: caf\xe9\n"),
                                                   "--output-dir", c.out], r"latin\.yaml: not valid UTF-8"),
    "config-output-dir-is-data": Case("--config", lambda c: ["finetune", "--config", c.config(output_dir=str(c.tmp / "train.tsv")),
                                                             "--overwrite"], r"output directory .*train\.tsv is the training file"),
    # distill: outputs, models (points 1, 5, 12, 14)
    "distill-overwrite-cache-dir": Case("distill", lambda c: (c.write("cache/notes.txt", "mine"),
                                                              _with_output(c.distill("--overwrite"), c.tmp / "cache"))[1],
                                        r"output directory .*cache is the teacher cache"),
    "distill-output-inside-teacher": Case("distill", _out_inside_teacher, r"output directory .*teacher/student lies inside the teacher"),
    "distill-teacher-truncated": Case("distill", lambda c: c.distill(teacher={"path": str(_bad_model(c, "truncated"))}),
                                      r"bad/model\.safetensors: not a valid safetensors file"),
    "distill-teacher-huge-header": Case("distill", lambda c: c.distill(teacher={"path": str(_bad_model(c, "huge-header"))}),
                                        r"bad/model\.safetensors: not a valid safetensors file"),
    "distill-student-truncated": Case("distill", lambda c: c.distill(student=str(_bad_model(c, "one-byte-short"))),
                                      r"bad/model\.safetensors: not a valid safetensors file"),
    "distill-heads-truncated": Case("distill", _heads_truncated, r"heads\.safetensors: not a valid safetensors file"),
    "distill-bilstm-repeated-key": Case("distill", lambda c: c.distill(student="bilstm:hidden=8,hidden=16"),
                                        r"student 'bilstm:hidden=8,hidden=16': hidden is given twice"),
    "distill-student-bottom-too-deep": Case("distill", lambda c: c.distill(student="bottom:9"),
                                            r"student 'bottom:9': the teacher has only 4 layers"),
    # evaluate (points 2, 5, 11, 13, 16, 17)
    "evaluate-output-is-directory": Case("evaluate", lambda c: _evaluate(c, "--file", c.write("dev.tsv", GOOD), "--output",
                                                                         c.write("res/x", "").parent),
                                         r"evaluate --output .*res: is a directory; give a file name"),
    "evaluate-output-is-data-file": Case("evaluate", lambda c: _evaluate(c, "--file", c.write("dev.tsv", GOOD), "--output", c.tmp / "dev.tsv"),
                                         r"evaluate --output .*dev\.tsv is the data file"),
    "evaluate-output-is-model-file": Case("evaluate", lambda c: _evaluate(c, "--file", c.write("dev.tsv", GOOD), "--output",
                                                                          c.teacher / "config.json"), r"is a file of the model"),
    "evaluate-max-length-huge": Case("evaluate", lambda c: _evaluate(c, "--file", c.write("dev.tsv", GOOD), "--max-length", "100000"),
                                     r"--max-length 100000: expected 8 to 4096 tokens"),
    "evaluate-max-length-negative": Case("evaluate", lambda c: _evaluate(c, "--file", c.write("dev.tsv", GOOD), "--max-length", "-5"),
                                         r"--max-length -5: expected 8 to 4096 tokens"),
    "evaluate-columns-repeated": Case("evaluate", lambda c: _evaluate(c, "--file", c.write("dev.tsv", GOOD), "--columns",
                                                                      "text_a=sentence,label=label,label=label"), r"label is given twice"),
    "evaluate-tsv-duplicate-column": Case("evaluate", lambda c: _evaluate(c, "--file", c.write("d.tsv", "sentence\tlabel\tlabel\ngood\t1\t0\n")),
                                          r"d\.tsv line 1: column 'label' appears twice"),
    "evaluate-model-missing": Case("evaluate", lambda c: ["evaluate", c.tmp / "nope", "--task", "sst-2", "--file", c.write("dev.tsv", GOOD)],
                                   r"cannot load a model config from .*nope"),
    "evaluate-model-huge-header": Case("evaluate", lambda c: ["evaluate", _bad_model(c, "huge-header"), "--task", "sst-2", "--file",
                                                              c.write("dev.tsv", GOOD)], r"bad/model\.safetensors: not a valid safetensors"),
    "evaluate-split-unknown": Case("evaluate", lambda c: _evaluate(c, "--data-dir", _glue(c, GOOD), "--split", "nope"), r"SST-2 has no split 'nope'; expected one of: train, dev"),
    # bench (points 7, 8, 9, 11, 15)
    "bench-suite-duplicate-key": Case("bench", lambda c: _bench(c, SUITE + "seeds: [2]\n"), r"suite\.yaml line \d+: duplicate key 'seeds'"),
    "bench-suite-alias-bomb": Case("bench", lambda c: _bench(c, _alias_bomb().replace("task: *l8", "name: *l8")),
                                   r"suite\.yaml line \d+: aliases expand this document beyond"),
    "bench-suite-seed-float": Case("bench", lambda c: _bench(c, SUITE.replace("[1]", "[1.0]")), r"seeds\.0: Input should be a valid integer"),
    "bench-placeholder-unset": Case("bench", lambda c: _bench(c, SUITE.replace("teacher: teacher", "teacher: ${nope}/t")),
                                    r"placeholder \$\{nope\} is not set"),
    "bench-var-malformed": Case("bench", lambda c: _bench(c, SUITE, "--var", "novalue"), r"--var 'novalue': expected NAME=VALUE"),
    "bench-results-around-suite": Case("bench", lambda c: ["bench", _suite(c), "--results", c.tmp],
                                       r"results directory .* (is the working directory|contains the suite file)"),
    "bench-workers-zero": Case("bench", lambda c: _bench(c, SUITE, "--workers", "0"), r"Invalid value for '--workers'"),
    "bench-suite-missing": Case("bench", lambda c: ["bench", c.tmp / "nope.yaml", "--results", c.out], r"config file not found: .*nope\.yaml"),
    # report
    "report-out-is-results": Case("report", lambda c: [*_report(c)[:3], c.tmp / "results", "--no-figures"],
                                  r"report directory .*results is the results directory"),
    "report-out-cwd": Case("report", lambda c: _with_out(_report(c), "."), r"report directory \. is the working directory"),
    "report-results-missing": Case("report", lambda c: ["report", c.tmp / "nope", "--out", c.out, "--no-figures"],
                                   r"results directory not found: .*nope"),
    "report-only-unknown": Case("report", lambda c: _report(c, "--only", "nope"), r"--only nope: not one of the --suite files"),
    "report-compare-invalid": Case("report", lambda c: _report(c, "--compare", "alp"), r"--compare 'alp': expected METHOD:BASELINE"),
    "report-result-not-json": Case("report", lambda c: (c.write("results/0123456789abcdef.json", "{not json"), _report(c))[1],
                                   r"results .* holds no layerkd\.bench\.result/1 result files \(skipped 1 unreadable or foreign file"),
    "report-n-boot-zero": Case("report", lambda c: _report(c, "--n-boot", "0"), r"n_boot: expected at least 1 bootstrap resample, got 0"),
    "report-second-writer": Case("report", _second_writer_report, r"is in use by another layerkd command"),
    # cache (point 4)
    "cache-clear-path-key": Case("cache", lambda c: ["cache", "clear", "../notes", "--cache-dir", _cache_with_strangers(c)],
                                 r"cache clear: no entry \.\./notes"),
    "cache-unknown-option": Case("cache", lambda c: ["cache", "ls", "--dir", c.tmp], r"No such option: --dir"),
    # export
    "export-format-unknown": Case("export", lambda c: ["export", _export_run(c), "--format", "tflite", "--output", c.out], r"--format 'tflite': expected one of onnx"),
    "export-quantize-unknown": Case("export", lambda c: ["export", _export_run(c), "--quantize", "int4", "--output", c.out], r"--quantize 'int4': expected one of int8"),
    "export-output-cwd": Case("export", lambda c: ["export", _export_run(c), "--output", "."], r"export --output \. contains the run directory .*run; give a new directory"),
    "export-output-over-data": Case("export", lambda c: ["export", _export_run(c), "--file", c.write("verify/dev.tsv", GOOD),
                                                         "--output", c.tmp / "verify"],
                                    r"export --output .*verify contains the data file .*verify/dev\.tsv; outputs never go"),
    "export-model-truncated": Case("export", lambda c: (_corrupt(_export_run(c) / "model.safetensors", "truncated"),
                                                        ["export", c.tmp / "run", "--output", c.out])[1],
                                   r"run/model\.safetensors: not a valid safetensors file"),
    # fit-heads
    "fit-heads-output-teacher": Case("fit-heads", lambda c: _with_output(_fit_heads(c, "--overwrite"), c.teacher),
                                     r"output directory .*teacher is the teacher"),
    "fit-heads-output-cwd": Case("fit-heads", lambda c: _with_output(_fit_heads(c, "--overwrite"), "."), r"is the working directory"),
    "fit-heads-epochs-zero": Case("fit-heads", lambda c: _fit_heads(c, "--epochs", "0"),
                                  r"fit-heads: epochs: Input should be greater than or equal to 1 \(got 0\)"),
    "fit-heads-layers-out-of-range": Case("fit-heads", lambda c: _fit_heads(c, "--layers", "99"),
                                          r"teacher\.fit_heads\.layers: layer 99 is out of the teacher's range 1\.\.4"),
    "fit-heads-max-length-beyond": Case("fit-heads", lambda c: [*_fit_heads(c)[:-2], "--max-length", "200", "--output-dir", c.out],
                                        r"max.length 200 is beyond"),
    "fit-heads-seed-huge": Case("fit-heads", lambda c: _fit_heads(c, "--seed", str(2**40)), r"Invalid value for '--seed'"),
    "fit-heads-teacher-truncated": Case("fit-heads", lambda c: _fit_heads(c, teacher=_bad_model(c, "truncated")),
                                        r"bad/model\.safetensors: not a valid safetensors file"),
    # demo (point 19)
    "demo-output-teacher": Case("demo", lambda c: _demo(c, out=c.teacher), r"demo directory .*teacher is the teacher"),
    "demo-output-cwd": Case("demo", lambda c: _demo(c, out="."), r"demo directory \. is the working directory"),
    "demo-output-is-file": Case("demo", lambda c: _demo(c, out=c.write("demo.txt", "mine")), r"demo directory .*demo\.txt exists and is a file"),
    "demo-method-unknown": Case("demo", lambda c: _demo(c, "--methods", "nope"), r"unknown method 'nope'"),
    "demo-real-without-teacher": Case("demo", lambda c: ["demo", "--task", "sst-2", "--data-dir", _glue(c, GOOD), "--output-dir", c.out],
                                      r"demo on real data needs --task, --data-dir and --teacher"),
}


def _with_out(args: list, out) -> list:
    args = list(args)
    args[args.index("--out") + 1] = out
    return args



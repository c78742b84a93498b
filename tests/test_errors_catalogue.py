"""The bad-input catalogue (``docs/errors.md``), one test per entry: the CLI meets the mistake,
prints exactly one line ``error: …`` naming the file or field, exits with code 2, shows no
traceback and leaves nothing behind — no output directory, no half-written file, no change to
any file that existed before.

Every ``id`` in the catalogue's table must have a case here, and every case an entry there.
"""

from __future__ import annotations

import errno
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from clihelp import assert_user_error, run_cli
from family_cases import CASES as FAMILY_CASES
from fuzz_catalogue_cases import CASES as FUZZ_CASES
from layerkd import toy
from llm_hf_cases import CASES as LLM_HF_CASES
from output_cases import CASES as OUTPUT_CASES

REPO = Path(__file__).resolve().parents[1]
GOOD = "sentence\tlabel\nthe movie was good\t1\nthe plot was bad\t0\nthe cast was not dull\t1\n"


@dataclass
class Ctx:
    tmp: Path
    tiny_bert: Path
    teacher: Path
    monkeypatch: pytest.MonkeyPatch

    @property
    def out(self) -> Path:
        return self.tmp / "out"

    def write(self, name: str, text: str | bytes) -> Path:
        p = self.tmp / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(text) if isinstance(text, bytes) else p.write_text(text, encoding="utf-8")
        return p

    def files(self, train: str | bytes = GOOD, dev: str | bytes = GOOD, suffix: str = "tsv") -> dict:
        return {"train_file": str(self.write(f"train.{suffix}", train)), "dev_file": str(self.write(f"dev.{suffix}", dev))}

    def config(self, *, distill: bool = False, data: dict | None = None, **over) -> Path:
        cfg: dict = {"task": toy.TOY_TASK, "data": self.files() if data is None else data,
                     "train": {"epochs": 1, "batch_size": 2, "max_length": 32, "seed": 0},
                     "cache": {"dir": str(self.tmp / "cache")}}
        if distill:
            cfg.update(teacher={"path": str(self.teacher)}, student="bottom:2", method="kd")
        else:
            cfg["model"] = str(self.tiny_bert)
        for k, v in over.items():
            if isinstance(v, dict) and isinstance(cfg.get(k), dict):
                cfg[k] = {**cfg[k], **v}
            elif v is None:
                cfg.pop(k, None)
            else:
                cfg[k] = v
        p = self.tmp / "run.yaml"
        p.write_text(yaml.safe_dump(cfg))
        return p

    def finetune(self, **over) -> list:
        return ["finetune", "--config", self.config(**over), "--output-dir", self.out]

    def distill(self, *extra, **over) -> list:
        return ["distill", "--config", self.config(distill=True, **over), "--output-dir", self.out, *extra]


def _glue(ctx: Ctx, train: str | None) -> Path:
    d = ctx.tmp / "glue" / "SST-2"
    d.mkdir(parents=True)
    (d / "dev.tsv").write_text(GOOD)
    if train is not None:
        (d / "train.tsv").write_text(train)
    return d.parent


def _model_with(ctx: Ctx, name: str, **kw) -> Path:
    """A tiny BERT with the toy tokenizer; ``kw`` changes its config (labels, vocabulary size)."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    d = ctx.tmp / name
    shutil.copytree(ctx.tiny_bert, d)
    cfg = BertConfig.from_pretrained(str(d))
    for k, v in kw.items():
        setattr(cfg, k, v)
    torch.manual_seed(0)
    model = BertForSequenceClassification(cfg)
    model.config.architectures = ["BertForSequenceClassification"]
    model.save_pretrained(str(d), safe_serialization=True)
    return d


def _unreadable(ctx: Ctx) -> list:
    args = ctx.finetune()
    train = Path(yaml.safe_load(Path(args[2]).read_text())["data"]["train_file"])
    real = Path.read_bytes

    def read_bytes(self):
        if self == train:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real(self)

    ctx.monkeypatch.setattr(Path, "read_bytes", read_bytes)
    return args


def _existing_output(ctx: Ctx) -> list:
    ctx.out.mkdir()
    (ctx.out / ".layerkd-run").write_text("{}")  # made by layerkd (the run marker): --overwrite would replace it
    (ctx.out / "keep.txt").write_text("precious")
    return ctx.finetune()


def _output_is_file(ctx: Ctx) -> list:
    ctx.out.write_text("a file")
    return ctx.finetune()


KEEP = {"checkpoint_every_steps": 1, "keep_final_checkpoints": True}  # a run that still has its checkpoints


def _resume_other_config(ctx: Ctx) -> list:
    code, _, err = run_cli(*ctx.finetune(train=KEEP))
    assert code == 0, err
    return [*ctx.finetune(train={**KEEP, "lr": 1e-4}), "--resume"]


def _resume_finished_other_config(ctx: Ctx) -> list:
    code, _, err = run_cli(*ctx.finetune())  # finished: its checkpoints were removed
    assert code == 0, err
    return [*ctx.finetune(train={"lr": 1e-4}), "--resume"]


def _resume_inputs_changed(ctx: Ctx) -> list:
    code, _, err = run_cli(*ctx.finetune(train=KEEP))
    assert code == 0, err
    args = [*ctx.finetune(train=KEEP), "--resume"]
    ctx.write("train.tsv", GOOD.rsplit("\n", 2)[0] + "\n")  # the train file lost its last row
    return args


def _renamed_labels(ctx: Ctx, labels: list[str]) -> Path:
    """The fine-tuned toy teacher, its labels renamed (weights unchanged)."""
    import json

    d = ctx.tmp / "renamed-teacher"
    shutil.copytree(ctx.teacher, d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["id2label"], cfg["label2id"] = dict(enumerate(labels)), {n: i for i, n in enumerate(labels)}
    (d / "config.json").write_text(json.dumps(cfg))
    return d


def _evaluate_wrong_task(ctx: Ctx) -> list:
    rte = ctx.write("rte.tsv", "sentence1\tsentence2\tlabel\nthe movie was good\tit was good\tentailment\n")
    return ["evaluate", ctx.teacher, "--task", "rte", "--file", rte, "--output", ctx.tmp / "eval.json"]


def _suite_bad_comparison(ctx: Ctx) -> list:
    suite = {"name": "s", "tasks": {"mrpc": {"teacher": "teachers/mrpc"}}, "students": {"L2": "bottom:2"},
             "methods": ["ce", "kd", "alp"], "seeds": [1], "comparisons": [{"name": "main", "pairs": [["alp", "pkd"]]}]}
    ctx.write("results/.keep", "")
    return ["report", ctx.tmp / "results", "--out", ctx.out, "--no-figures", "--suite",
            ctx.write("s.yaml", yaml.safe_dump(suite))]


def _nonfinite(ctx: Ctx) -> list:
    from layerkd.objectives.ce import CrossEntropy

    orig = CrossEntropy.forward
    ctx.monkeypatch.setattr(CrossEntropy, "forward", lambda self, s, t, b: orig(self, s, t, b) * float("nan"))
    return ctx.finetune()


def _disk_full(ctx: Ctx) -> list:
    from layerkd import checkpoint

    def full(*_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device")

    ctx.monkeypatch.setattr(checkpoint, "save_module", full)
    return ctx.finetune(train={"checkpoint_every_steps": 1})


def _label_count(ctx: Ctx) -> list:
    return ctx.distill(student=str(_model_with(ctx, "three-labels", num_labels=3)))


def _tokenizer_mismatch(ctx: Ctx) -> list:
    return ctx.finetune(model=str(_model_with(ctx, "small-vocab", vocab_size=10)))


def _not_fine_tuned(ctx: Ctx) -> list:
    return ctx.distill(teacher={"path": str(ctx.tiny_bert)})


def _not_a_model(ctx: Ctx) -> list:
    d = ctx.tmp / "not-a-model"
    d.mkdir()
    (d / "weights.bin").write_text("x")
    return ctx.finetune(model=str(d))


def _evaluate_output_taken(ctx: Ctx) -> list:
    """--output names the result of another evaluation (of a GLUE split)."""
    other = '{"accuracy": 0.5, "evaluated": {"model": "runs/x", "split": "dev", "data_dir": "glue"}}'
    return ["evaluate", ctx.teacher, "--task", "sst-2", "--file", ctx.write("dev.tsv", GOOD), "--output",
            ctx.write("eval.json", other)]


def _cache_key_unknown(ctx: Ctx) -> list:
    (ctx.tmp / "cache" / "teacher" / "checkpoints").mkdir(parents=True)
    return ["cache", "clear", "checkpoints", "--cache-dir", ctx.tmp / "cache"]


def _tracker_missing(ctx: Ctx) -> list:
    import sys

    ctx.monkeypatch.setitem(sys.modules, "wandb", None)  # as if the 'track' extra were not installed
    return [*ctx.finetune(), "--report-to", "wandb"]


def _tracker_fails(ctx: Ctx) -> list:
    ctx.monkeypatch.setenv("MLFLOW_TRACKING_URI", "nope://tracking")  # a store MLflow cannot open
    return [*ctx.finetune(), "--report-to", "mlflow"]


def _alias_bomb() -> str:
    text = 'l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    for i in range(1, 9):
        text += f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]\n"
    return text + "task: *l8\n"


def _corrupt_weights(ctx: Ctx) -> list:
    d = ctx.tmp / "broken"
    shutil.copytree(ctx.teacher, d)
    data = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(data[: len(data) // 2])
    return ["evaluate", d, "--task", "sst-2", "--file", ctx.write("x.tsv", GOOD)]


def _export_run(ctx: Ctx, *, config: bool = True) -> Path:
    """A copy of the tiny teacher run inside the work directory (export writes beside it by default)."""
    pytest.importorskip("onnxruntime")
    run = ctx.tmp / "run"
    shutil.copytree(ctx.teacher, run, ignore=shutil.ignore_patterns("checkpoints", *(() if config else ("config.yaml",))))
    return run


def _export_drifts(ctx: Ctx) -> list:
    from layerkd.deploy import runtime

    real = runtime.predict
    ctx.monkeypatch.setattr(runtime, "predict", lambda *a, **k: real(*a, **k) + 1e-3)  # a graph that is off by 1e-3
    return ["export", _export_run(ctx), "--output", ctx.out]


def _export_output_taken(ctx: Ctx) -> list:
    run = _export_run(ctx)
    ctx.write("out/.layerkd-run", "{}")
    ctx.write("out/export.json", "{}")
    return ["export", run, "--output", ctx.out]


STSB_ROWS = "sentence1\tsentence2\tlabel\nthe movie was good\tthe film was fine\tabc\n"


def _run_folder(ctx: Ctx) -> Path:
    """A folder that looks like a finished run (what `layerkd report` tells run folders by)."""
    ctx.write("runs/kd/results.json", "{}")
    ctx.write("runs/kd/config.yaml", "task: sst-2\n")
    return ctx.tmp / "runs"


def _submitit_missing(ctx: Ctx) -> list:
    ctx.monkeypatch.setitem(__import__("sys").modules, "submitit", None)  # import submitit -> ImportError
    return ["bench", ctx.write("s.yaml", "name: s\n"), "--results", ctx.out, "--launcher", "submitit"]

# id -> (make the command line, pattern the error line must match)
CASES: dict[str, tuple[Callable[[Ctx], list], str]] = {
    # files
    "file-missing": (lambda c: c.finetune(data={"train_file": str(c.tmp / "nope.tsv"), "dev_file": str(c.write("dev.tsv", GOOD))}),
                     r"data file not found: .*nope\.tsv"),
    "file-unreadable": (_unreadable, r"cannot read data file .*train\.tsv: Permission denied"),
    "file-is-directory": (lambda c: c.finetune(data={"train_file": str(c.tmp), "dev_file": str(c.write("dev.tsv", GOOD))}),
                          r"data file is a directory, expected a file: "),
    "file-format-unknown": (lambda c: c.finetune(data=c.files(suffix="xlsx")), r"train\.xlsx: cannot tell the format"),
    "config-missing": (lambda c: ["finetune", "--config", c.tmp / "nope.yaml", "--output-dir", c.out],
                       r"config file not found: .*nope\.yaml"),
    "config-not-yaml": (lambda c: ["finetune", "--config", c.write("bad.yaml", "task: sst-2\ntrain: [1,\n"), "--output-dir", c.out],
                        r"config .*bad\.yaml line \d+: "),
    "config-executes-code": (lambda c: ["finetune", "--config", c.write("evil.yaml", 'task: !!python/object/apply:os.system ["touch pwned"]\n'),
                                        "--output-dir", c.out],
                             r"evil\.yaml line 1: could not determine a constructor for the tag .*python/object/apply"),
    "glue-dir-missing": (lambda c: ["finetune", "--model", c.tiny_bert, "--task", "sst-2", "--data-dir", c.tmp / "nowhere",
                                    "--output-dir", c.out], r"GLUE data directory not found: .*nowhere"),
    "glue-split-missing": (lambda c: ["finetune", "--model", c.tiny_bert, "--task", "sst-2", "--data-dir", _glue(c, None),
                                      "--output-dir", c.out], r"SST-2 train split not found: .*SST-2/train\.tsv"),
    # malformed rows
    "row-field-count": (lambda c: c.finetune(data=c.files(train=GOOD + "the plot\twas\t1\n")),
                        r"train\.tsv line 5: expected 2 fields \(as in the header\), found 3"),
    "row-glue-field-count": (lambda c: ["finetune", "--model", c.tiny_bert, "--task", "sst-2",
                                        "--data-dir", _glue(c, GOOD + "bad\tfilm\t0\n"), "--output-dir", c.out],
                             r"SST-2/train\.tsv line 5: expected 2 tab-separated fields, found 3"),
    "row-bad-quoting": (lambda c: c.finetune(data=c.files(train='sentence,label\n"the movie was good,1\n', suffix="csv")),
                        r"train\.csv line 2: malformed row, bad quoting"),
    "row-not-utf8": (lambda c: c.finetune(data=c.files(train=GOOD.encode() + b"the plot was \xff bad\t0\n")),
                     r"train\.tsv line 5: not valid UTF-8 \(byte 0xff\)"),
    "row-empty-text": (lambda c: c.finetune(data=c.files(train=GOOD + "  \t1\n")),
                       r"train\.tsv line 5: empty text in column 'sentence'"),
    "row-bad-json": (lambda c: c.finetune(data=c.files(train='{"sentence": "good", "label": "1"}\n{"sentence": \n', suffix="jsonl")),
                     r"train\.jsonl line 2: not valid JSON"),
    "column-missing": (lambda c: c.finetune(data=c.files(train="text\tlabel\ngood\t1\n")),
                       r"train\.tsv: no column 'sentence' \(found: text, label\)"),
    "columns-spec-invalid": (lambda c: ["evaluate", c.tiny_bert, "--task", "sst-2", "--file", c.write("x.tsv", GOOD), "--columns", "text_a"],
                             r"--columns: expected key=column pairs"),
    # labels and splits
    "label-unknown": (lambda c: c.finetune(data=c.files(train=GOOD + "the plot was bad\t7\n")),
                      r"train\.tsv line 5: label '7' is not one of the task's labels"),
    "label-missing": (lambda c: c.finetune(data=c.files(dev=GOOD + "the plot was bad\t\n")),
                      r"dev\.tsv line 5: missing label in column 'label'"),
    "target-not-numeric": (lambda c: c.finetune(task="sts-b", data=c.files(train=STSB_ROWS, dev=STSB_ROWS)),
                           r"train\.tsv line 2: label 'abc' is not a number \(STS-B is a regression task\)"),
    "split-empty": (lambda c: c.finetune(data=c.files(dev="sentence\tlabel\n")), r"dev\.tsv: no data rows"),
    # issue 19: columns named twice, --columns that would be ignored, invisible text and labels
    "column-duplicate": (lambda c: c.finetune(data=c.files(train="sentence\tlabel\tlabel\nthe movie was good\t0\t1\nthe plot was bad\t1\t0\n")),
                         r"train\.tsv line 1: column 'label' appears twice; rename or remove one of them"),
    "column-duplicate-jsonl": (lambda c: ["evaluate", c.tiny_bert, "--task", "sst-2", "--file",
                                          c.write("x.jsonl", '{"sentence": "good", "label": "1", "label": "0"}\n')],
                               r"x\.jsonl line 1: column 'label' appears twice"),
    "columns-with-data-dir": (lambda c: ["evaluate", c.tiny_bert, "--task", "sst-2", "--data-dir", _glue(c, GOOD),
                                         "--columns", "text_a=sentence,label=label"],
                              r"--columns / data\.columns applies to files and Hugging Face datasets, not to a GLUE --data-dir"),
    "row-zero-width-text": (lambda c: c.finetune(data=c.files(train=GOOD + "\u200b\u200d\t1\n")),
                            r"train\.tsv line 5: empty text in column 'sentence'"),
    "label-stray-characters": (lambda c: c.finetune(data=c.files(train=GOOD + "the plot was bad\t1\u200b\n")),
                               r"train\.tsv line 5: label '1\\u200b' is not one of the task's labels .*; it has stray "
                               r"whitespace or invisible characters: remove them to get '1'"),
    # config
    "task-unknown": (lambda c: c.finetune(task="nope"), r"unknown task 'nope'; expected one of: "),
    "method-unknown": (lambda c: c.distill(method="nope"), r"unknown method 'nope'; expected one of: "),
    "objective-unknown": (lambda c: c.distill(method=None, recipe={"objectives": [{"name": "nope"}]}),
                          r"unknown objective 'nope'; expected one of: "),
    "objective-option-invalid": (lambda c: c.distill(method=None, recipe={"objectives": [{"name": "kd", "temperature": 0}]}),
                                 r"objectives\[0\] \(kd\): option 'temperature': Input should be greater than 0 \(got 0\)"),
    "config-key-unknown": (lambda c: c.finetune(train={"lrate": 0.1}), r"run\.yaml: train\.lrate: unknown key \(expected one of: .*lr"),
    "config-value-out-of-range": (lambda c: c.finetune(train={"batch_size": 0}), r"run\.yaml: train\.batch_size: .*greater than or equal to 1"),
    "config-values-inconsistent": (lambda c: c.finetune(train={"batch_size": 4, "grad_accum": 3}),
                                   r"batch_size 4 must be divisible by grad_accum 3"),
    "data-source-missing": (lambda c: c.finetune(data={}), r"data: no data source"),
    # issue 19: duplicate YAML keys, alias bombs, strict and finite numbers
    "config-duplicate-key": (lambda c: ["finetune", "--config", c.write("dup.yaml", c.config().read_text() + "train: {lr: 0.1}\n"),
                                        "--output-dir", c.out], r"dup\.yaml line \d+: duplicate key 'train' \(first at line \d+\)"),
    "config-alias-bomb": (lambda c: ["finetune", "--config", c.write("bomb.yaml", _alias_bomb()), "--output-dir", c.out],
                          r"bomb\.yaml line \d+: aliases expand this document beyond 100000 nodes"),
    "config-value-wrong-type": (lambda c: c.finetune(train={"epochs": True}), r"run\.yaml: train\.epochs: Input should be a valid integer \(got True\)"),
    "config-value-not-finite": (lambda c: c.finetune(train={"adam_eps": float("inf")}),
                                r"run\.yaml: train\.adam_eps: Input should be a finite number \(got inf\)"),
    "seed-out-of-range": (lambda c: [*c.finetune(), "--seed", str(2**32)],
                          r"^error: --seed: train\.seed: Input should be less than or equal to 4294967295"),
    "output-dir-missing": (lambda c: ["finetune", "--config", c.config()], r"output_dir: missing; give --output-dir"),
    "option-missing": (lambda c: ["distill", "--task", "sst-2", "--data-dir", _glue(c, GOOD), "--student", "bottom:2",
                                  "--output-dir", c.out],
                       r"^error: missing --teacher: the fine-tuned teacher to distil from \(a model directory or hub id\)$"),
    # experiment trackers (--report-to, layerkd.tracking)
    "report-to-unknown": (lambda c: [*c.finetune(), "--report-to", "tensorbord"],
                          r"^error: --report-to: train\.report_to\.0: Input should be 'tensorboard', 'wandb' or 'mlflow' \(got 'tensorbord'\)"),
    "report-to-not-installed": (_tracker_missing, r"train\.report_to: wandb is not installed; it comes with the 'track' extra: "
                                                  r"pip install 'layerkd\[track\]'"),
    "report-to-start-failed": (_tracker_fails, r"train\.report_to: a tracker could not start \(mlflow\): .*nope"),
    # models and pairs
    "model-not-a-model": (_not_a_model, r"not-a-model is not a model directory: no config\.json"),
    "teacher-not-fine-tuned": (_not_fine_tuned, r"has no fine-tuned classification head; fine-tune it first"),
    "label-count-mismatch": (_label_count, r"three-labels has a 3-label classifier but the task needs 2 labels"),
    "student-layers-out-of-range": (lambda c: c.distill(student="layers:2,9"), r"student layers: layer 9 is out of the teacher's range 1\.\.4"),
    "student-spec-invalid": (lambda c: c.distill(student="config:layers=x"), r"student 'config:layers=x': layers must be an integer"),
    "method-needs-unmet": (lambda c: c.distill(method="tinybert", student="cnn:"),
                           r"tinybert compares token-aligned states/attention maps, which a cnn student"),
    "method-pair-shape": (lambda c: c.distill(method="tinybert", student="config:layers=2,hidden=16,heads=2"),
                          r"tinybert compares attention maps head by head: teacher has 4 heads, student 2"),
    "label-names-mismatch": (lambda c: c.distill(teacher={"path": str(_renamed_labels(c, ["neg", "pos"]))}),
                             r"renamed-teacher: the model's labels \['neg', 'pos'\] do not match task toy-sentiment's labels \['0', '1'\]"),
    "evaluate-wrong-task": (_evaluate_wrong_task, r"teacher: the model's labels \['0', '1'\] do not match task RTE's labels "
                                                  r"\['entailment', 'not_entailment'\] \(matched by name, in any order\)"),
    # issue 19: corrupt weights, repeated spec keys, students too large to allocate
    "model-weights-corrupt": (_corrupt_weights, r"broken/model\.safetensors: not a valid safetensors file \(.*\); the file is truncated or corrupt"),
    "student-spec-repeated-key": (lambda c: c.distill(student="config:layers=2,layers=3"),
                                  r"student 'config:layers=2,layers=3': layers is given twice \(layers=2 and layers=3\)"),
    "student-too-large": (lambda c: c.distill(student="config:layers=100000,hidden=4096"),
                          r"student 'config:layers=100000,hidden=4096': about [\d,]+ parameters .* do not fit in the .* of memory available"),
    "tokenizer-mismatch": (_tokenizer_mismatch, r"small-vocab: tokenizer has \d+ tokens but the model's embedding table has 10 rows"),
    # outputs, resume, training
    "output-dir-exists": (_existing_output, r"output directory .*out exists and is not empty; pass --overwrite"),
    "output-dir-is-file": (_output_is_file, r"output directory .*out exists and is a file"),
    "resume-other-config": (_resume_other_config, r"--resume: checkpoint .*step-\d+ was written by a run with another configuration"),
    "resume-finished-other-config": (_resume_finished_other_config, r"--resume: .*out holds a finished run trained with another "
                                                                    r"configuration \(resolved config hash differs\); nothing to resume"),
    "resume-inputs-changed": (_resume_inputs_changed, r"--resume: inputs changed since checkpoint .*step-\d+: training data .*train\.tsv "
                                                      r"\(\d+ rows, was \d+\); pass --allow-changed-inputs to continue anyway"),
    "nonfinite-loss": (_nonfinite, r"non-finite loss at step 1 \(epoch 0\) from objective ce; lower the learning rate or set train\.nonfinite: skip"),
    "disk-full": (_disk_full, r"no space left on device while writing .*step-0000001; nothing half-written was kept and earlier checkpoints are intact"),
    "evaluate-no-source": (lambda c: ["evaluate", c.tiny_bert, "--task", "sst-2"], r"give either --data-dir \(with --split\) or --file"),
    "evaluate-output-taken": (_evaluate_output_taken, r"evaluate: .*eval\.json holds another evaluation \(split dev of glue on runs/x\)"),
    "cache-key-unknown": (_cache_key_unknown, r"cache clear: no entry checkpoints in .*cache/teacher"),
    # layerkd export (docs/export.md)
    "export-parity-failure": (_export_drifts, r"export of .*run: the ONNX logits differ from PyTorch's by up to 0\.001 on \d+ "
                                              r"rows of .*, beyond the tolerance 0\.0001 \(--tolerance\); nothing was written"),
    "export-extra-missing": (lambda c: (c.monkeypatch.setitem(__import__("sys").modules, "onnxruntime", None),
                                        ["export", c.teacher, "--output", c.out])[1],
                             r"layerkd export needs the onnx extra: onnxruntime is not installed \(pip install 'layerkd\[onnx\]'\)"),
    "export-output-taken": (_export_output_taken, r"export --output .*out already holds an export; pass --overwrite to replace it"),
    "export-output-is-run": (lambda c: ["export", _export_run(c), "--output", c.tmp / "run"],
                             r"export --output .*run is the run directory .*run; give a new directory"),
    "export-no-task": (lambda c: ["export", _export_run(c, config=False), "--output", c.out],
                       r"export: .*run has no config\.yaml naming its task; give --task"),
    # command-line usage (typer's click): one error line after the usage hint
    "usage-bad-value": (lambda c: [*c.finetune(), "--epochs", "abc"], r"Invalid value for '--epochs': .*valid integer"),
    "usage-unknown-option": (lambda c: [*c.finetune(), "--bogus"], r"No such option: --bogus"),
    "usage-missing": (lambda c: ["evaluate", c.teacher, "--file", c.write("dev.tsv", GOOD)], r"Missing option '--task'"),
    # bench report
    "suite-comparison-invalid": (_suite_bad_comparison, r"s\.yaml: comparisons\[0\] \(main\): pair \[alp, pkd\]: 'pkd' is not a "
                                                        r"method label of the suite \(expected one of: ce, kd, alp\)"),
    "report-bootstrap-unknown": (lambda c: ["report", c.write("results/.keep", "").parent, "--out", c.out, "--no-figures",
                                            "--bootstrap", "seeds"], r"--bootstrap 'seeds': expected one of two-level, examples"),
    "report-run-folders-suite": (lambda c: ["report", _run_folder(c), "--out", c.out, "--suite", c.write("s.yaml", "name: s\n")],
                                 r"report: --suite applies to bench results \(a layerkd bench --results directory\), not to run folders"),
    "report-no-run-folders": (lambda c: ["report", c.write("a/.keep", "").parent, c.write("b/.keep", "").parent, "--out", c.out],
                              r"report: .*a, .*b holds no run folders \(results\.json and config\.yaml"),
    "report-run-folder-missing": (lambda c: ["report", _run_folder(c), c.tmp / "nope", "--out", c.out],
                                  r"report: .*nope is not a directory \(give run folders, a folder of them, or bench results\)"),
    "bench-launcher-option-ignored": (lambda c: ["bench", c.write("s.yaml", "name: s\n"), "--results", c.out,
                                                 "--slurm-partition", "gpu"],
                                      r"bench: --slurm-partition only apply to --launcher submitit"),
    "bench-submitit-missing": (_submitit_missing, r"bench: --launcher submitit needs the cluster extra: submitit is not "
                                                  r"installed \(pip install 'layerkd\[cluster\]'\)"),
}

CASES.update(OUTPUT_CASES)  # output paths and the checks before a run writes anything (tests/output_cases.py)
CASES.update(LLM_HF_CASES)  # cache-only mode, cache build, --hf-dataset (tests/llm_hf_cases.py)
CASES.update(FAMILY_CASES)  # student cuts a model family cannot make (tests/family_cases.py)
CASES.update(FUZZ_CASES)  # user errors the fuzz corpus found (tests/fuzz_catalogue_cases.py)


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("case", list(CASES))
def test_catalogue_entry(case, tmp_path, tiny_bert_dir, tiny_teacher_dir, monkeypatch, capsys):
    ctx = Ctx(tmp_path / "work", tiny_bert_dir, tiny_teacher_dir, monkeypatch)
    ctx.tmp.mkdir()
    make, pattern = CASES[case]
    args = make(ctx)
    capsys.readouterr()
    before = _snapshot(ctx.tmp)
    out_existed = ctx.out.exists()
    monkeypatch.chdir(ctx.tmp)  # a code-executing config would drop its marker file here
    code, _, err = run_cli(*args, capsys=capsys)
    line = assert_user_error(code, err, pattern)
    assert "Traceback" not in err and len(line) < 600
    # nothing left behind: no new output directory, no new or changed file anywhere under the work dir
    if not out_existed:
        assert not ctx.out.exists(), f"{case}: the failed run left {ctx.out}"
    assert _snapshot(ctx.tmp) == before, f"{case}: files were written or changed"


def _doc_ids() -> list[str]:
    text = (REPO / "docs" / "errors.md").read_text(encoding="utf-8")
    return re.findall(r"^\|\s*`([a-z0-9-]+)`\s*\|", text, flags=re.M)


def test_the_catalogue_and_its_tests_agree():
    ids = _doc_ids()
    assert len(ids) == len(set(ids)), "duplicate ids in docs/errors.md"
    assert set(ids) == set(CASES), {"documented, untested": sorted(set(ids) - set(CASES)),
                                    "tested, undocumented": sorted(set(CASES) - set(ids))}


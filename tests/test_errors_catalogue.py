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
from layerkd import toy

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
    (ctx.out / "keep.txt").write_text("precious")
    return ctx.finetune()


def _output_is_file(ctx: Ctx) -> list:
    ctx.out.write_text("a file")
    return ctx.finetune()


def _resume_other_config(ctx: Ctx) -> list:
    code, _, err = run_cli(*ctx.finetune(train={"checkpoint_every_steps": 1}))
    assert code == 0, err
    return [*ctx.finetune(train={"checkpoint_every_steps": 1, "lr": 1e-4}), "--resume"]


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


STSB_ROWS = "sentence1\tsentence2\tlabel\nthe movie was good\tthe film was fine\tabc\n"

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
    "output-dir-missing": (lambda c: ["finetune", "--config", c.config()], r"output_dir: missing; give --output-dir"),
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
    "tokenizer-mismatch": (_tokenizer_mismatch, r"small-vocab: tokenizer has \d+ tokens but the model's embedding table has 10 rows"),
    # outputs, resume, training
    "output-dir-exists": (_existing_output, r"output directory .*out exists and is not empty; pass --overwrite"),
    "output-dir-is-file": (_output_is_file, r"output directory .*out exists and is a file"),
    "resume-other-config": (_resume_other_config, r"--resume: checkpoint .*step-\d+ was written by a run with another configuration"),
    "nonfinite-loss": (_nonfinite, r"non-finite loss at step 1 \(epoch 0\) from objective ce; lower the learning rate or set train\.nonfinite: skip"),
    "disk-full": (_disk_full, r"no space left on device while writing .*step-0000001; nothing half-written was kept and earlier checkpoints are intact"),
    "evaluate-no-source": (lambda c: ["evaluate", c.tiny_bert, "--task", "sst-2"], r"give either --data-dir \(with --split\) or --file"),
}


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


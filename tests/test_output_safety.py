"""Output paths never cost an input (issue 19, points 1, 3, 11 and 13; ``layerkd.outputs``).

Every command that writes (finetune, distill, fit-heads, evaluate --output, bench --results,
report --out, demo) is pointed at each of its inputs — the data directory, a data file, the
teacher, the teacher cache, the config file's directory — and at ``.``, with and without
``--overwrite`` where the command has it. Each must exit 2 with exactly one ``error:`` line and
no traceback, and leave every file of the input tree byte-for-byte as it was (hashed before and
after). Then: the output-directory lock, paths that cannot be written, checks made before a
directory is created, and a failed run removing only what it created.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
from pathlib import Path

import pytest
import yaml

from clihelp import assert_user_error, run_cli
from layerkd.errors import ConfigError
from layerkd.outputs import LOCK, MARKER, Input, check_location, run_directory

ROWS = "sentence\tlabel\n" + "".join(f"the movie was {'good' if i % 2 else 'bad'} indeed\t{i % 2}\n" for i in range(12))
TRAIN = {"epochs": 1, "batch_size": 4, "max_length": 32, "seed": 0, "lr": 1e-3}
# every refusal of layerkd.outputs (and eval_output's for a directory) reads like one of these
GUARDED = (r"outputs never go into, over or around an input|results never go into|is the working directory|"
           r"was not created by layerkd|holds another layerkd output|: is a directory|exists and is a file|is a file of the model")


def tree_hash(root: Path) -> dict[str, str]:
    """Every directory, file and symlink under ``root`` with its content hash (or link target)."""
    out = {}
    for d, dirs, files in os.walk(root):
        rel = os.path.relpath(d, root)
        out[rel + "/"] = "dir"
        for name in dirs + files:
            p = Path(d) / name
            if p.is_symlink():
                out[os.path.join(rel, name)] = "-> " + os.readlink(p)
            elif p.is_file():
                out[os.path.join(rel, name)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture
def work(tmp_path, tiny_teacher_dir, monkeypatch) -> Path:
    """A working directory holding every input: glue/SST-2 (data), teacher/ (a fine-tuned model, the
    model finetune starts from too), cache/ (LAYERKD_CACHE and distill's cache.dir, with a file of
    the user's), cfg/ (run configs, the suite), results/ (a bench results directory for report)."""
    w = tmp_path / "work"
    glue = w / "glue" / "SST-2"
    glue.mkdir(parents=True)
    for split in ("train", "dev"):
        (glue / f"{split}.tsv").write_text(ROWS)
    shutil.copytree(tiny_teacher_dir, w / "teacher", ignore=shutil.ignore_patterns("checkpoints"))
    (w / "cache" / "teacher").mkdir(parents=True)
    (w / "cache" / "notes.txt").write_text("the user's notes")
    (w / "cfg").mkdir()
    (w / "cfg" / "finetune.yaml").write_text(yaml.safe_dump({"task": "sst-2", "model": "teacher", "data": {"data_dir": "glue"},
                                                             "train": TRAIN}))
    (w / "cfg" / "distill.yaml").write_text(yaml.safe_dump({
        "task": "sst-2", "data": {"data_dir": "glue"}, "teacher": {"path": "teacher"}, "student": "bottom:2", "method": "kd",
        "cache": {"dir": "cache"}, "train": TRAIN}))
    (w / "cfg" / "suite.yaml").write_text(yaml.safe_dump({
        "name": "s", "base": {"data": {"data_dir": "glue"}, "train": TRAIN}, "tasks": {"sst-2": {"teacher": "teacher"}},
        "students": {"L2": "bottom:2"}, "methods": ["kd"], "seeds": [1]}))
    (w / "results").mkdir()
    (w / "results" / "0123456789abcdef.json").write_text('{"schema": "layerkd.bench.result/1"}')
    monkeypatch.setenv("LAYERKD_CACHE", str(w / "cache"))
    monkeypatch.chdir(w)
    return w


COMMANDS = {
    "finetune": lambda out: ["finetune", "--config", "cfg/finetune.yaml", "--output-dir", out],
    "distill": lambda out: ["distill", "--config", "cfg/distill.yaml", "--output-dir", out],
    "fit-heads": lambda out: ["fit-heads", "--teacher", "teacher", "--task", "sst-2", "--data-dir", "glue", "--epochs", "1",
                              "--max-length", "32", "--output-dir", out],
    "evaluate": lambda out: ["evaluate", "teacher", "--task", "sst-2", "--data-dir", "glue", "--max-length", "32", "--output", out],
    "bench": lambda out: ["bench", "cfg/suite.yaml", "--results", out],
    "report": lambda out: ["report", "results", "--out", out, "--no-figures"],
    "demo": lambda out: ["demo", "--task", "sst-2", "--data-dir", "glue", "--teacher", "teacher", "--methods", "kd",
                         "--epochs", "1", "--output-dir", out],
}
TARGETS = {"data dir": "glue", "data file": "glue/SST-2/train.tsv", "teacher": "teacher", "cache dir": "cache",
           "config dir": "cfg", "cwd": "."}
EXTRA_TARGETS = {"evaluate": {"model file": "teacher/config.json"}, "report": {"results dir": "results"}}
WITH_OVERWRITE = ("finetune", "distill", "fit-heads")

CASES = [(cmd, name, path, ow) for cmd in COMMANDS for name, path in {**TARGETS, **EXTRA_TARGETS.get(cmd, {})}.items()
         for ow in ((False, True) if cmd in WITH_OVERWRITE else (False,))]


@pytest.mark.parametrize(("cmd", "target", "path", "overwrite"), CASES,
                         ids=[f"{c}-{t}{'-overwrite' if o else ''}" for c, t, _, o in CASES])
def test_an_output_pointed_at_an_input_touches_nothing(work, capsys, cmd, target, path, overwrite):
    args = COMMANDS[cmd](path) + (["--overwrite"] if overwrite else [])
    before = tree_hash(work)
    capsys.readouterr()
    code, _, err = run_cli(*args, capsys=capsys)
    assert_user_error(code, err, GUARDED)
    assert "Traceback" not in err
    assert tree_hash(work) == before, f"{cmd} with its output at the {target} changed the input tree"


def test_the_messages_name_the_input(work, capsys):
    """The refusal says which input and how the paths overlap."""
    cases = [(COMMANDS["distill"]("teacher"), r"output directory teacher is the teacher teacher; outputs never go"),
             (COMMANDS["distill"]("cache/sub"), r"output directory cache/sub lies inside the teacher cache cache"),
             (COMMANDS["finetune"]("cfg"), r"output directory cfg contains the config file cfg/finetune\.yaml"),
             (COMMANDS["finetune"]("glue/SST-2"), r"output directory glue/SST-2 lies inside the data directory glue"),
             (COMMANDS["bench"]("cfg"), r"results directory cfg contains the suite file cfg/suite\.yaml"),
             (COMMANDS["report"]("results/report"), r"report directory results/report lies inside the results directory"),
             (COMMANDS["evaluate"]("glue/eval.json"), r"--output glue/eval\.json lies inside the data directory glue"),
             (COMMANDS["demo"]("teacher/demo"), r"demo directory teacher/demo lies inside the teacher teacher"),
             ([*COMMANDS["finetune"]("/"), "--overwrite"], r"output directory / contains the working directory")]
    for args, pattern in cases:
        code, _, err = run_cli(*args, capsys=capsys)
        assert_user_error(code, err, pattern)


def test_home_and_unmarked_resume_are_refused(work, capsys, monkeypatch):
    monkeypatch.setenv("HOME", str(work / "cache"))  # Path.home()
    code, _, err = run_cli(*COMMANDS["finetune"](work / "cache"), "--overwrite", capsys=capsys)
    assert_user_error(code, err, r"is your home directory")
    mine = work / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("not a run")
    before = tree_hash(work)
    code, _, err = run_cli(*COMMANDS["finetune"]("mine"), "--resume", capsys=capsys)
    assert_user_error(code, err, r"output directory mine exists, is not empty and was not created by layerkd")
    assert tree_hash(work) == before


# ------------------------------------------------------------------------------------------ the lock
def test_a_second_writer_is_refused_while_the_first_holds_the_lock(work, capsys):
    from filelock import FileLock

    out = work / "runs" / "x"
    out.mkdir(parents=True)
    (out / MARKER).write_text("{}")
    (out / "model.safetensors").write_text("the first run's weights")
    lock = FileLock(str(out / LOCK))
    lock.acquire(timeout=0)
    try:
        before = tree_hash(work)
        for extra in (("--overwrite",), ("--resume",)):  # (without either, a non-empty directory is refused anyway)
            code, _, err = run_cli(*COMMANDS["finetune"]("runs/x"), *extra, capsys=capsys)
            assert_user_error(code, err, r"output directory runs/x is in use by another layerkd command \(it holds "
                                         r"runs/x/\.layerkd\.lock\); wait for it to finish")
            assert "Traceback" not in err
        assert tree_hash(work) == before
    finally:
        lock.release()
    # free again: --overwrite replaces the marked directory, and the command lets go of the lock
    code, _, err = run_cli(*COMMANDS["finetune"]("runs/x"), "--overwrite", capsys=capsys)
    assert code == 0, err
    assert (out / MARKER).is_file() and (out / "metrics.json").is_file()
    assert (out / "model.safetensors").read_bytes() != b"the first run's weights"
    again = FileLock(str(out / LOCK))
    again.acquire(timeout=0)
    again.release()


# ------------------------------------------------------------------------------------------ paths that cannot be written
def _broken(work: Path, kind: str) -> str:
    if kind == "below a file":
        (work / "notes.txt").write_text("mine")
        return "notes.txt/out"
    if kind == "symlink loop":
        os.symlink("loop", work / "loop")
        return "loop"
    if kind == "dangling symlink":
        os.symlink("gone/away", work / "dangling")
        return "dangling"
    raise AssertionError(kind)


@pytest.mark.parametrize(("kind", "pattern"), [
    ("below a file", r"notes\.txt is a file, not a directory"),
    ("symlink loop", r"loop is a symlink loop"),
    ("dangling symlink", r"dangling is a symlink to gone/away, which does not exist"),
])
@pytest.mark.parametrize("cmd", ["distill", "evaluate", "bench", "report", "demo"])
def test_an_output_path_that_cannot_be_written_is_one_line(work, capsys, cmd, kind, pattern):
    path = _broken(work, kind) + ("/eval.json" if cmd == "evaluate" else "")
    before = tree_hash(work)
    code, _, err = run_cli(*COMMANDS[cmd](path), capsys=capsys)
    assert_user_error(code, err, r"cannot write .*" + pattern)
    assert "Traceback" not in err and tree_hash(work) == before


def test_existing_files_and_directories_where_the_other_is_needed(work, capsys):
    (work / "results.txt").write_text("mine")
    for args, pattern in [(COMMANDS["bench"]("results.txt"), r"results directory results\.txt exists and is a file"),
                          (COMMANDS["report"]("results.txt"), r"report directory results\.txt exists and is a file"),
                          (COMMANDS["finetune"]("results.txt"), r"output directory results\.txt exists and is a file"),
                          (COMMANDS["evaluate"]("results"), r"evaluate --output results: is a directory; give a file name")]:
        before = tree_hash(work)
        code, _, err = run_cli(*args, capsys=capsys)
        assert_user_error(code, err, pattern)
        assert tree_hash(work) == before


def test_no_write_permission_and_a_read_only_file_system(work, capsys, monkeypatch):
    """Root ignores permission bits, so access() is made to answer as for a read-only directory."""
    real_access, real_statvfs = os.access, os.statvfs
    locked = {os.path.realpath(work / "ro")}
    (work / "ro").mkdir()
    monkeypatch.setattr(os, "access", lambda p, m, *a, **k: not (m & os.W_OK and os.path.realpath(p) in locked)
                        and real_access(p, m, *a, **k))
    code, _, err = run_cli(*COMMANDS["distill"]("ro/out"), capsys=capsys)
    assert_user_error(code, err, r"cannot write output directory ro/out: no write permission in ro$")

    class ReadOnly:
        f_flag = os.ST_RDONLY

    monkeypatch.setattr(os, "statvfs", lambda p: ReadOnly() if os.path.realpath(p) in locked else real_statvfs(p))
    for args in (COMMANDS["distill"]("ro/out"), COMMANDS["report"]("ro"), COMMANDS["evaluate"]("ro/eval.json")):
        code, _, err = run_cli(*args, capsys=capsys)
        assert_user_error(code, err, r"cannot write .*: ro is on a read-only file system")
    assert not any((work / "ro").iterdir())


def test_an_oserror_while_creating_the_directory_is_one_line(work, capsys, monkeypatch):
    real_mkdir = Path.mkdir

    def mkdir(self, *a, **k):
        if self.name == "out":
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real_mkdir(self, *a, **k)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    code, _, err = run_cli(*COMMANDS["finetune"]("new/out"), capsys=capsys)
    assert_user_error(code, err, r"cannot create output directory new/out: Read-only file system")
    assert not (work / "new").exists()


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores permission bits")
def test_a_real_read_only_directory(work, capsys):
    ro = work / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        code, _, err = run_cli(*COMMANDS["finetune"]("ro/out"), capsys=capsys)
        assert_user_error(code, err, r"no write permission in ro")
    finally:
        ro.chmod(0o755)


# ------------------------------------------------------------------------------------------ checked before the directory exists
def test_max_length_beyond_the_models_positions_leaves_nothing(work, capsys):
    before = tree_hash(work)
    for cmd in ("finetune", "distill", "fit-heads"):
        args = COMMANDS[cmd]("runs/x")
        if cmd == "fit-heads":
            args[args.index("--max-length") + 1] = "200"
        else:
            args += ["--max-length", "200"]
        code, _, err = run_cli(*args, capsys=capsys)
        assert_user_error(code, err, r"max.length 200 is beyond the (model|teacher) teacher's 128 positions; set it to 128 or less")
    assert tree_hash(work) == before


@pytest.mark.parametrize("value", ["0", "1", "-5", "100000", "200"])
def test_evaluate_max_length_is_validated(work, capsys, value):
    args = COMMANDS["evaluate"]("eval.json")
    args[args.index("--max-length") + 1] = value
    before = tree_hash(work)
    code, _, err = run_cli(*args, capsys=capsys)
    expected = r"beyond the model teacher's 128 positions" if value == "200" else rf"--max-length {value}: expected 8 to 4096 tokens"
    assert_user_error(code, err, expected)
    assert "Traceback" not in err and tree_hash(work) == before


def test_fp16_overflow_leaves_no_output_and_no_cache_entry(work, capsys):
    from safetensors.torch import load_file, save_file

    sd = load_file(str(work / "teacher" / "model.safetensors"))
    save_file({k: v * 1e7 if k.startswith("classifier") else v for k, v in sd.items()}, str(work / "teacher" / "model.safetensors"),
              metadata={"format": "pt"})
    code, _, err = run_cli(*COMMANDS["distill"]("runs/x"), capsys=capsys)
    assert_user_error(code, err, r"teacher cache: the teacher's logits on .*train\.tsv exceed fp16's range")
    assert not (work / "runs").exists()
    assert not list((work / "cache").rglob("*.npy"))
    code, _, err = run_cli(*COMMANDS["distill"]("runs/x"), "--no-cache", capsys=capsys)  # the rerun is not blocked
    assert code == 0, err


# ------------------------------------------------------------------------------------------ a failure removes only what it made
def _failing_loss(monkeypatch):
    from layerkd.objectives.ce import CrossEntropy

    orig = CrossEntropy.forward
    monkeypatch.setattr(CrossEntropy, "forward", lambda self, s, t, b: orig(self, s, t, b) * float("nan"))


def test_a_failed_run_removes_only_what_it_created(work, capsys, monkeypatch):
    _failing_loss(monkeypatch)
    (work / "empty").mkdir()
    before = tree_hash(work)
    for out in ("new/a/b", "empty"):
        code, _, err = run_cli(*COMMANDS["finetune"](out), capsys=capsys)
        assert_user_error(code, err, r"non-finite loss at step 1")
    assert not (work / "new").exists(), "the parents the run made go too"
    assert tree_hash(work) == before, "the empty directory the user made stays, empty"


def test_a_failed_overwrite_leaves_a_directory_the_rerun_accepts(work, capsys, monkeypatch):
    out = work / "runs" / "x"
    out.mkdir(parents=True)
    (out / MARKER).write_text("{}")
    (out / "old.txt").write_text("an earlier run")
    with monkeypatch.context() as m:
        _failing_loss(m)
        code, _, err = run_cli(*COMMANDS["finetune"]("runs/x"), "--overwrite", capsys=capsys)
        assert_user_error(code, err, r"non-finite loss")
    assert {p.name for p in out.iterdir()} <= {MARKER, LOCK}
    code, _, err = run_cli(*COMMANDS["finetune"]("runs/x"), capsys=capsys)  # no --overwrite needed: it is empty
    assert code == 0, err


# ------------------------------------------------------------------------------------------ run_directory itself
def test_run_directory_reuse_and_marker(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    d = tmp_path / "report"
    with run_directory(d, reuse=lambda p: (p / "report.md").is_file()) as out:
        (out / "report.md").write_text("one")
    assert (d / MARKER).is_file()
    (d / MARKER).unlink()
    with run_directory(d, reuse=lambda p: (p / "report.md").is_file()):  # a report written before the marker
        pass
    (d / "report.md").rename(d / "notes.md")
    (d / MARKER).unlink()
    with pytest.raises(ConfigError, match="was not created by layerkd"), run_directory(d, reuse=lambda p: False):
        pass
    assert (d / "notes.md").read_text() == "one"
    with pytest.raises(ConfigError, match=r"x/y lies inside the data .*/x; outputs never go"):
        check_location(tmp_path / "x" / "y", [Input("the data", tmp_path / "x")])

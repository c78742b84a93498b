"""The fuzz corpus (issue 19): every hostile input we know of, as a careless user would type it,
across finetune, distill, evaluate, bench, report, cache, --config, export, fit-heads and demo —
the whole bad-input catalogue (``tests/test_errors_catalogue.py``, its builders reused as they
are) plus the cases of ``tests/fuzz_cases.py`` (issue 19's hostile inputs) and
``tests/fuzz_valid.py`` (inputs that are actually valid).

Each case runs the CLI in-process in a fresh work directory that holds every input (data, the
tiny BERT, a fine-tuned teacher, configs, caches) and asserts:

* a hostile input: exit code 2, exactly one ``error:`` line matching the case's pattern, no
  traceback, and the work directory byte-for-byte as it was (every file, directory and symlink
  hashed before and after: nothing created, changed or deleted — no output directory either);
* a valid input: its exit code (0; 1 for a bench whose cell failed), no traceback, no ``error:``
  line, a result checked to be right (e.g. a reversed label order maps by name and gives the same
  accuracy), and nothing changed outside the places the case may write.

Each outcome is one of: ``exit 2 clean``, ``valid``, ``traceback``, ``silently wrong`` (exit 0
where an error belongs, or a valid input's result wrong), ``deleted or changed an input``, ``left
files behind``, ``other`` (wrong exit code or message). With ``LAYERKD_RELIABILITY_OUT=<dir>`` each
case appends its outcome to ``<dir>/fuzz_corpus.jsonl`` (``benchmarks/reliability.sh`` counts them).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import shutil
import time
import traceback
from pathlib import Path

import pytest

import fuzz_cases
import fuzz_valid
from clihelp import run_cli
from fuzz_cases import Case
from test_errors_catalogue import CASES as CATALOGUE
from test_errors_catalogue import Ctx

AREAS = ("finetune", "distill", "evaluate", "bench", "report", "cache", "--config", "export", "fit-heads", "demo")
CONFIG_IDS = ("config-", "objective-", "method-unknown", "task-unknown", "data-source-missing", "recipe-", "report-to-unknown")


def _catalogue_case(name: str, make, pattern: str) -> Case:
    area = "--config" if name.startswith(CONFIG_IDS) else None  # else: the command it runs
    return Case(area, make, pattern)


CASES: dict[str, Case] = {**{k: _catalogue_case(k, *v) for k, v in CATALOGUE.items()}, **fuzz_cases.CASES, **fuzz_valid.CASES}
assert len(CASES) == len(CATALOGUE) + len(fuzz_cases.CASES) + len(fuzz_valid.CASES), "a case id is used twice"


def _tree(root: Path) -> dict[str, str]:
    """Every directory (``d/``), file (its SHA-256) and symlink (its target) under ``root``. Files
    are read with ``open``: some cases patch ``Path.read_bytes`` to make an input unreadable."""
    out = {}
    for d, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(d) / name
            rel = p.relative_to(root).as_posix()
            if p.is_symlink():
                out[rel] = "-> " + os.readlink(p)
            elif p.is_dir():
                out[rel + "/"] = "dir"
            else:
                with open(p, "rb") as fh:
                    out[rel] = hashlib.sha256(fh.read()).hexdigest()
    return out


def _may_write(rel: str, patterns: tuple[str, ...]) -> bool:
    rel = rel.rstrip("/")
    return any(fnmatch.fnmatch(rel, p) or rel.startswith(p + "/") for p in patterns)


def _diff(before: dict[str, str], after: dict[str, str], writes: tuple[str, ...]) -> dict[str, list[str]]:
    keep = [k for k in set(before) | set(after) if not _may_write(k, writes)]
    return {"removed": sorted(k for k in keep if k in before and k not in after),
            "changed": sorted(k for k in keep if k in before and k in after and before[k] != after[k]),
            "created": sorted(k for k in keep if k not in before)}


def _run(args: list, capsys) -> tuple[int, str, str]:
    """The CLI in-process; an exception escaping ``cli.main`` is what a user sees as a traceback."""
    try:
        return run_cli(*args, capsys=capsys)
    except Exception:
        out, err = capsys.readouterr()
        return 1, out, err + "\nTraceback (escaped cli.main):\n" + traceback.format_exc()


def _outcome(case: Case, code: int, err: str, diff: dict, wrong: str | None) -> str:
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    if "Traceback" in err:
        return "traceback"
    if diff["removed"] or diff["changed"]:
        return "deleted or changed an input"
    if case.expect is None:
        if code == case.code and wrong is None and not errors:
            return "left files behind" if diff["created"] else "valid"
        return "silently wrong" if code == case.code else "other"
    if code == 0:
        return "silently wrong"
    if code == 2 and len(errors) == 1 and re.search(case.expect, errors[0]):
        return "left files behind" if diff["created"] else "exit 2 clean"
    return "other"


def _record(name: str, area: str, outcome: str, code: int, err: str, seconds: float) -> None:
    dest = os.environ.get("LAYERKD_RELIABILITY_OUT")
    if dest:
        Path(dest).mkdir(parents=True, exist_ok=True)
        error = next((ln for ln in err.splitlines() if ln.startswith("error:")), None)
        with open(Path(dest) / "fuzz_corpus.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"case": name, "area": area, "outcome": outcome, "exit": code, "error": error,
                                 "seconds": round(seconds, 2)}) + "\n")


@pytest.fixture
def ctx(tmp_path, tiny_bert_dir, tiny_teacher_dir, monkeypatch, capsys) -> Ctx:
    """A fresh work directory (the current directory while the case runs) with private copies of
    the tiny BERT and the fine-tuned teacher, so that every input lies in the hashed tree."""
    work = tmp_path / "work"
    work.mkdir()
    ignore = shutil.ignore_patterns("checkpoints")
    c = Ctx(work, Path(shutil.copytree(tiny_bert_dir, work / "tiny-bert", ignore=ignore)),
            Path(shutil.copytree(tiny_teacher_dir, work / "teacher", ignore=ignore)), monkeypatch)
    c.capsys = capsys
    monkeypatch.chdir(work)
    return c


@pytest.mark.parametrize("name", list(CASES))
def test_fuzz_case(name, ctx, capsys):
    case = CASES[name]
    args = case.make(ctx)
    area = case.area or str(args[0])  # a catalogue case: the command it runs
    capsys.readouterr()
    before = _tree(ctx.tmp)
    t0 = time.perf_counter()
    code, out, err = _run(args, capsys)
    seconds = time.perf_counter() - t0
    diff = _diff(before, _tree(ctx.tmp), case.writes if case.expect is None else ())
    wrong = None
    if case.expect is None and code == case.code and "Traceback" not in err:
        try:
            case.check(ctx, out, err)
        except AssertionError as exc:
            wrong = f"wrong result: {exc}"
    outcome = _outcome(case, code, err, diff, wrong)
    _record(name, area, outcome, code, err, seconds)
    assert outcome in ("exit 2 clean", "valid"), (
        f"{name} ({area}): {outcome}; exit {code}; {wrong or ''}\nfiles: {diff}\nstdout: {out[-1500:]}\nstderr: {err[-3000:]}")


def test_the_corpus_covers_every_command():
    areas = {c.area for c in fuzz_cases.CASES.values()}
    assert set(AREAS) <= areas, set(AREAS) - areas
    assert len(CASES) >= 60 and all(c.expect is None for c in fuzz_valid.CASES.values())
    assert all(c.expect is not None for c in fuzz_cases.CASES.values())

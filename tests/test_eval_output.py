"""`layerkd evaluate` names each result by what was evaluated and never replaces another
evaluation (issue 19, point 16; :mod:`layerkd.eval_output`)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from clihelp import assert_user_error, run_cli
from layerkd import toy


@pytest.fixture
def model(tiny_teacher_dir, tmp_path) -> Path:
    """A private copy of the tiny fine-tuned teacher (its labels are 0/1, as SST-2's)."""
    return Path(shutil.copytree(tiny_teacher_dir, tmp_path / "model"))


@pytest.fixture
def glue(tmp_path) -> Path:
    d = tmp_path / "glue" / "SST-2"
    d.mkdir(parents=True)
    (d / "dev.tsv").write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in toy.sentiment_examples(20, seed=3)))
    return d.parent


def _tsv(path: Path, n: int, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in toy.sentiment_examples(n, seed=seed)))
    return path


def _evaluate(model, *args, capsys):
    return run_cli("evaluate", model, "--task", "sst-2", "--max-length", "32", *args, capsys=capsys)


def _evals(model: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted(model.glob("eval-*.json"))}


def test_split_and_files_get_their_own_results(model, glue, tmp_path, capsys):
    code, _, err = _evaluate(model, "--data-dir", glue, "--split", "dev", capsys=capsys)
    assert code == 0, err
    # a file named like the split, and two files with the same name in different folders
    a, b = _tsv(tmp_path / "a" / "dev.tsv", 12, 5), _tsv(tmp_path / "b" / "dev.tsv", 16, 6)
    for f in (a, b):
        code, _, err = _evaluate(model, "--file", f, capsys=capsys)
        assert code == 0, err
    # the same file read with another column mapping is another evaluation too
    code, _, err = _evaluate(model, "--file", a, "--columns", "text_a=sentence,label=label", capsys=capsys)
    assert code == 0, err
    evals = _evals(model)
    assert len(evals) == 4, sorted(evals)
    assert evals["eval-split-dev.json"]["rows"] == 20
    assert evals["eval-split-dev.json"]["evaluated"]["split"] == "dev"
    by_file = sorted((r["evaluated"]["file"], r["evaluated"]["columns"] or "", r["rows"]) for n, r in evals.items()
                     if n.startswith("eval-file-dev-"))
    assert by_file == [(str(a), "", 12), (str(a), "text_a=sentence,label=label", 12), (str(b), "", 16)]


def test_the_same_evaluation_is_replaced(model, glue, capsys):
    for max_length in ("32", "16"):  # a rerun of the same evaluation with another setting replaces it
        code, _, err = run_cli("evaluate", model, "--task", "sst-2", "--data-dir", glue, "--max-length", max_length,
                               capsys=capsys)
        assert code == 0, err
    assert list(_evals(model)) == ["eval-split-dev.json"]


def test_another_evaluation_is_never_overwritten(model, glue, tmp_path, capsys):
    target = tmp_path / "result.json"
    code, _, err = _evaluate(model, "--data-dir", glue, "--output", target, capsys=capsys)
    assert code == 0, err
    before = target.read_bytes()
    code, _, err = _evaluate(model, "--file", _tsv(tmp_path / "other.tsv", 8, 1), "--output", target, capsys=capsys)
    assert_user_error(code, err, r"result\.json holds another evaluation \(split dev of .*glue on .*model\)")
    assert target.read_bytes() == before
    # a file that is not an evaluation result is not replaced either
    notes = tmp_path / "notes.json"
    notes.write_text('{"mine": 1}')
    code, _, err = _evaluate(model, "--data-dir", glue, "--output", notes, capsys=capsys)
    assert_user_error(code, err, r"notes\.json exists and is not a layerkd evaluation result")
    assert notes.read_text() == '{"mine": 1}'

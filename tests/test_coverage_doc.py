"""docs/coverage.md: rendered from the matrix's recorded outcomes (benchmarks/coverage.py), and the
committed file covers the matrix as it is defined now (regenerate with benchmarks/coverage.sh)."""

from __future__ import annotations

from pathlib import Path

from families import FAMILIES
from scripts import load_script

REPO = Path(__file__).resolve().parents[1]


def _renderer():
    return load_script("benchmarks/coverage.py", "coverage_render")


def _case(section, row, column, status, reason=""):
    return {"section": section, "row": row, "column": column, "status": status, "reason": reason, "seconds": 0.1}


def test_cells_come_from_the_recorded_cases():
    report = {
        "families": ["bert", "roberta"], "tokenizers": {"bert": "wordpiece", "roberta": "bpe"}, "methods": ["kd", "alp"],
        "cross_methods": ["kd", "tinybert"], "pairs": [["bert", "roberta"]], "students": ["bottom:2"],
        "cross_shape": {"layers": 2, "hidden": 16},
        "cases": [_case("method", "bert", "kd", "pass"), _case("method", "bert", "alp", "fail", "RuntimeError: boom"),
                  _case("method", "roberta", "kd", "pass"),
                  _case("cross", "bert → roberta", "kd", "pass"),
                  _case("cross", "bert → roberta", "tinybert", "refused", "tinybert needs one tokenizer"),
                  _case("family", "roberta", "internal, 2-head student", "refused", "tinybert needs one tokenizer")],
    }
    text = _renderer().render(report)
    assert "| BERT | ✓ | **FAIL** |" in text
    assert "| RoBERTa | ✓ | — |" in text  # alp was not run for RoBERTa
    assert "| BERT → RoBERTa | ✓ | refused (1) |" in text
    assert text.count("1. `tinybert needs one tokenizer`") == 1  # one note for both refusals
    assert "**3 cases pass, 2 are refused as they must be, 1 fail**" in text
    assert "bert / alp: `RuntimeError: boom`" in text


def test_the_committed_table_covers_the_matrix():
    import test_family_matrix as matrix

    text = (REPO / "docs" / "coverage.md").read_text()
    assert ", 0 fail**" in text and "pytest exit code 0" in text
    names = _renderer().FAMILY_NAMES
    for family in FAMILIES:
        assert f"\n| {names[family]} | " in text, family
    for method in {*matrix.METHODS, *matrix.CROSS_METHODS}:
        assert f"`{method}`" in text, method
    assert "—" not in text.split("## How the matrix runs")[0].split("not run.", 1)[1]  # every cell was run

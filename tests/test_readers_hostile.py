"""Hostile data files (issue 19, points 2 and 14): a column named twice, a repeated JSON key, a
repeated --columns key, --columns with a GLUE directory, zero-width text, labels with invisible
characters. Each is a one-line DataError naming the file (and line and column)."""

from __future__ import annotations

import pytest

from layerkd.data.readers import parse_columns, read_file, read_glue, read_split
from layerkd.errors import DataError
from layerkd.tasks import get_task, task_from_config

SINGLE = task_from_config({"name": "rdh-single", "text_columns": ["sentence"], "label_column": "label", "labels": ["0", "1"]})
ROWS = "the movie was good\t1\tx\nthe plot was bad\t0\ty\n"


def _write(tmp_path, name: str, text: str):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


@pytest.mark.parametrize("name, text, pattern", [
    # the second 'label' column used to win silently: a run trained on the wrong labels
    ("dup.tsv", "sentence\tlabel\tlabel\n" + ROWS, r"dup\.tsv line 1: column 'label' appears twice"),
    ("dup.csv", "sentence,label,sentence\ngood,1,bad\n", r"dup\.csv line 1: column 'sentence' appears twice"),
    ("dup.jsonl", '{"sentence": "good", "label": "1"}\n{"sentence": "bad", "label": "0", "label": "1"}\n',
     r"dup\.jsonl line 2: column 'label' appears twice"),
])
def test_a_column_named_twice_is_an_error(tmp_path, name, text, pattern):
    with pytest.raises(DataError, match=pattern):
        read_file(SINGLE, _write(tmp_path, name, text))


def test_a_duplicate_unused_column_is_an_error_too(tmp_path):
    # ambiguous headers are refused whichever column is read: the rule is simple to state
    with pytest.raises(DataError, match=r"column 'note' appears twice"):
        read_file(SINGLE, _write(tmp_path, "x.tsv", "sentence\tlabel\tnote\tnote\ngood\t1\ta\tb\n"))


def test_a_glue_header_with_a_column_named_twice(tmp_path):
    d = tmp_path / "glue" / "SST-2"
    d.mkdir(parents=True)
    (d / "dev.tsv").write_text("sentence\tlabel\tlabel\ngood\t1\t0\n")
    with pytest.raises(DataError, match=r"SST-2/dev\.tsv line 1: column 'label' appears twice"):
        read_glue(get_task("sst-2"), tmp_path / "glue", "dev")


def test_columns_given_twice():
    with pytest.raises(DataError, match=r"--columns: label is given twice \('y' and 'z'\)"):
        parse_columns("text_a=x,label=y,label=z")


def test_columns_with_a_glue_directory_is_an_error(tmp_path):
    with pytest.raises(DataError, match=r"--columns / data\.columns applies to files .* not to a GLUE --data-dir"):
        read_split(get_task("sst-2"), "dev", data_dir=tmp_path, columns="text_a=sentence,label=label")


@pytest.mark.parametrize("text", ["\u200b", "\u200b \u200d", "\ufeff\u2060", " \u00ad "])
def test_text_of_only_zero_width_characters_is_empty(tmp_path, text):
    with pytest.raises(DataError, match=r"x\.tsv line 3: empty text in column 'sentence'"):
        read_file(SINGLE, _write(tmp_path, "x.tsv", f"sentence\tlabel\ngood\t1\n{text}\t0\n"))


def test_text_with_zero_width_characters_and_letters_is_kept(tmp_path):
    s = read_file(SINGLE, _write(tmp_path, "x.tsv", "sentence\tlabel\ngo\u200bod\t1\n"))
    assert s.examples[0].text_a == "go\u200bod"


def test_a_label_with_an_invisible_character_says_so(tmp_path):
    with pytest.raises(DataError) as info:
        read_file(SINGLE, _write(tmp_path, "x.tsv", "sentence\tlabel\ngood\t1\u200b\n"))
    msg = str(info.value)
    assert msg.startswith(f"{tmp_path / 'x.tsv'} line 2: label '1\\u200b' is not one of the task's labels")
    assert msg.endswith("it has stray whitespace or invisible characters: remove them to get '1'")


def test_an_unknown_label_gets_no_whitespace_hint(tmp_path):
    with pytest.raises(DataError) as info:
        read_file(SINGLE, _write(tmp_path, "x.tsv", "sentence\tlabel\ngood\t7\u200b\n"))
    assert "stray whitespace" not in str(info.value)


def test_ordinary_whitespace_around_a_label_is_still_accepted(tmp_path):
    s = read_file(SINGLE, _write(tmp_path, "x.tsv", "sentence\tlabel\ngood\t 1 \n"))
    assert s.examples[0].label == 1

"""Readers: the real GLUE files, tiny hand-written GLUE layouts, user TSV/CSV/JSONL files and
every malformed-input error (a one-line DataError naming the file and the problem)."""

from __future__ import annotations

import hashlib
import json
import re
import sys
import types
from collections import Counter
from functools import cache
from pathlib import Path

import pytest

from layerkd.data.readers import Example, parse_columns, read_file, read_glue, read_hf, read_split
from layerkd.errors import DataError
from layerkd.tasks import get_task, task_from_config

SINGLE = {"name": "rd-single", "text_columns": ["sentence"], "label_column": "label", "labels": ["neg", "pos"]}
PAIR = {"name": "rd-pair", "text_columns": ["s1", "s2"], "label_column": "label", "labels": ["0", "1"]}


@pytest.fixture(scope="module")
def single():
    return task_from_config(SINGLE)


@pytest.fixture(scope="module")
def pair():
    return task_from_config(PAIR)


def data_error(pattern: str, fn, *args, **kwargs) -> str:
    """Call ``fn`` expecting a DataError matching ``pattern``; return its (one-line) message."""
    with pytest.raises(DataError, match=pattern) as info:
        fn(*args, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def glue_layout(tmp_path: Path, task_dir: str, files: dict[str, str | bytes]) -> Path:
    """A GLUE directory in the classic layout holding ``files`` for one task; returns its root."""
    root = tmp_path / "glue"
    for name, content in files.items():
        write(root / task_dir / name, content)
    return root


# ============================================================================= the real GLUE files


@cache
def _glue(glue_dir: Path, task: str, split: str):
    return read_glue(get_task(task), glue_dir, split)


def _raw_rows(path: Path, header: bool = True) -> tuple[list[str], list[list[str]]]:
    """An independent parse: lines split on tabs (GLUE files have no embedded newlines)."""
    lines = path.read_text(encoding="utf-8-sig").split("\n")
    if lines[-1] == "":
        lines.pop()
    rows = [line.split("\t") for line in lines]
    return (rows[0], rows[1:]) if header else ([], rows)


@pytest.mark.parametrize(
    ("task", "split", "rows"),
    [
        ("SST-2", "train", 67_349), ("SST-2", "dev", 872),
        ("CoLA", "train", 8_551), ("CoLA", "dev", 1_043),
        ("MRPC", "train", 3_668), ("MRPC", "dev", 408),
        ("STS-B", "train", 5_749), ("STS-B", "dev", 1_500),
        ("RTE", "train", 2_490), ("RTE", "dev", 277),
        ("WNLI", "train", 635), ("WNLI", "dev", 71),
        ("QNLI", "dev", 5_463),
        ("MNLI", "dev", 9_815), ("MNLI", "dev_matched", 9_815),
    ],
)
def test_glue_row_counts(glue_dir, task, split, rows):
    s = _glue(glue_dir, task, split)
    assert len(s) == rows
    assert s.has_labels
    assert s.name == split
    assert all((e.text_b is not None) == s.task.is_pair for e in s.examples)


@pytest.mark.parametrize(
    ("task", "counts"),
    [
        ("MNLI", {"entailment": 3_479, "neutral": 3_123, "contradiction": 3_213}),
        ("SST-2", {"0": 428, "1": 444}),
        ("CoLA", {"0": 322, "1": 721}),
        ("MRPC", {"0": 129, "1": 279}),
        ("RTE", {"entailment": 146, "not_entailment": 131}),
    ],
)
def test_glue_dev_label_distribution(glue_dir, task, counts):
    s = _glue(glue_dir, task, "dev")
    names = s.task.labels
    assert Counter(names[y] for y in s.labels()) == counts


@pytest.mark.parametrize(
    ("task", "file", "a", "b", "label"),
    [
        ("MRPC", "dev.tsv", "#1 String", "#2 String", "Quality"),
        ("STS-B", "dev.tsv", "sentence1", "sentence2", "score"),
        ("RTE", "dev.tsv", "sentence1", "sentence2", "label"),
        ("QNLI", "dev.tsv", "question", "sentence", "label"),
        ("MNLI", "dev_matched.tsv", "sentence1", "sentence2", "gold_label"),
        ("SST-2", "dev.tsv", "sentence", None, "label"),
    ],
)
def test_glue_examples_match_an_independent_parse(glue_dir, task, file, a, b, label):
    """Columns picked by header name, text verbatim (quotes, trailing spaces), labels mapped."""
    s = _glue(glue_dir, task, "dev")
    header, rows = _raw_rows(glue_dir / task / file)
    col = {name: i for i, name in enumerate(header)}
    t = s.task
    expected = [
        Example(r[col[a]], None if b is None else r[col[b]],
                float(r[col[label]]) if t.is_regression else t.labels.index(r[col[label]]))
        for r in rows
    ]
    assert s.examples == expected


def test_glue_text_keeps_double_quotes_of_real_files(glue_dir):
    s = _glue(glue_dir, "MRPC", "dev")
    with_quote = [e for e in s.examples if '"' in e.text_a or '"' in e.text_b]
    raw = (glue_dir / "MRPC" / "dev.tsv").read_text(encoding="utf-8-sig").splitlines()[1:]
    assert len(with_quote) == sum('"' in line for line in raw) > 0


def test_cola_train_is_read_without_a_header(glue_dir):
    s = _glue(glue_dir, "CoLA", "train")
    spec = s.task.glue_splits["train"]
    assert (spec.header, spec.text_a, spec.label) == (False, 3, 1)
    _, rows = _raw_rows(glue_dir / "CoLA" / "train.tsv", header=False)
    assert s.examples[0] == Example("Our friends won't buy this analysis, let alone the next one we propose.", None, 1)
    assert [e.text_a for e in s.examples] == [r[3] for r in rows]
    assert [e.label for e in s.examples] == [int(r[1]) for r in rows]


def test_stsb_labels_are_floats_in_0_5(glue_dir):
    for split in ("train", "dev"):
        labels = _glue(glue_dir, "STS-B", split).labels()
        assert all(isinstance(y, float) for y in labels)
        assert min(labels) == 0.0 and max(labels) == 5.0
        assert any(y != int(y) for y in labels)  # real-valued (e.g. 2.615), not class ids


def test_glue_fingerprint_is_the_sha256_of_the_file(glue_dir):
    s = _glue(glue_dir, "RTE", "dev")
    assert s.fingerprint == hashlib.sha256((glue_dir / "RTE" / "dev.tsv").read_bytes()).hexdigest()
    assert s.source == str(glue_dir / "RTE" / "dev.tsv")


@pytest.mark.parametrize(("task", "rows"), [("SST-2", 1_821), ("CoLA", 1_063), ("RTE", 3_000), ("STS-B", 1_379)])
def test_glue_test_split_has_no_labels(glue_dir, task, rows):
    s = read_glue(get_task(task), glue_dir, "test")
    assert len(s) == rows
    assert not s.has_labels
    assert all(e.label is None for e in s.examples)
    data_error(r"split 'test' has no labels$", s.labels)
    assert len(read_split(get_task(task), "test", data_dir=glue_dir, require_labels=False)) == rows
    data_error(r"test\.tsv: split 'test' has no labels, so it cannot be scored$",
               read_split, get_task(task), "test", data_dir=glue_dir, require_labels=True)


def test_absent_glue_task_dir_names_the_missing_path(glue_dir):
    msg = data_error(r"^GLUE task directory not found: ", read_glue, get_task("QQP"), glue_dir, "dev")
    assert msg.endswith(str(glue_dir / "QQP"))


def test_missing_mnli_dev_mismatched_names_the_file(glue_dir):
    msg = data_error(r"^MNLI dev_mismatched split not found: ", read_glue, get_task("MNLI"), glue_dir, "dev_mismatched")
    assert msg.endswith(str(glue_dir / "MNLI" / "dev_mismatched.tsv"))


def test_unknown_split_name(glue_dir):
    data_error(r"^RTE has no split 'validation'; expected one of: train, dev, test$",
               read_glue, get_task("RTE"), glue_dir, "validation")


# ============================================================================= tiny GLUE layouts


def test_glue_tsv_is_read_without_quote_processing(tmp_path):
    root = glue_layout(tmp_path, "SST-2", {"train.tsv": (
        "sentence\tlabel\n"
        'he said "great\t1\n'
        "the next row is intact\t0\n"
        '"fully quoted"\t1\n'
        'a "" b\t0\n'
    )})
    s = read_glue(get_task("SST-2"), root, "train")
    assert [(e.text_a, e.label) for e in s.examples] == [
        ('he said "great', 1), ("the next row is intact", 0), ('"fully quoted"', 1), ('a "" b', 0),
    ]


def test_glue_bom_and_crlf(tmp_path):
    root = glue_layout(tmp_path, "SST-2", {"dev.tsv": "\ufeffsentence\tlabel\r\nfine\t1\r\nbad\t0\r\n".encode()})
    s = read_glue(get_task("SST-2"), root, "dev")
    assert [(e.text_a, e.label) for e in s.examples] == [("fine", 1), ("bad", 0)]


SST2 = "sentence\tlabel\n"


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        (SST2 + "ok\t1\nthree\tfields\t1\n", r"train\.tsv line 3: expected 2 tab-separated fields, found 3$"),
        (SST2 + "ok\t1\nok\t0\nonly one field\n", r"train\.tsv line 4: expected 2 tab-separated fields, found 1$"),
        (SST2 + "ok\t1\n\nok\t0\n", r"train\.tsv line 3: empty line, expected 2 fields$"),
        ((SST2 + "ok\t1\ncaf\xe9\t0\n").encode("latin-1"), r"train\.tsv line 3: not valid UTF-8 \(byte 0xe9\)"),
        (SST2 + "ok\t1\n   \t0\n", r"train\.tsv line 3: empty text in column 'sentence'$"),
        (SST2 + "ok\t1\nok\tpositive\n", r"train\.tsv line 3: label 'positive' is not one of the task's labels \['0', '1'\]$"),
        (SST2, r"train\.tsv: no data rows \(empty train split\)$"),
        ("", r"train\.tsv: empty file, expected a header row and data rows$"),
        ("text\tlabel\nok\t1\n", r"train\.tsv: header has no column 'sentence' \(found: text, label\)$"),
        (SST2 + "x" * 200_000 + "\t1\n", r"train\.tsv line 2: malformed row \(field larger than field limit"),
    ],
    ids=["field-count", "field-count-later", "empty-line", "not-utf8", "empty-text", "unknown-label",
         "header-only", "empty-file", "missing-column", "huge-field"],
)
def test_malformed_glue_file(tmp_path, content, pattern):
    root = glue_layout(tmp_path, "SST-2", {"train.tsv": content})
    msg = data_error(pattern, read_glue, get_task("SST-2"), root, "train")
    assert str(root / "SST-2" / "train.tsv") in msg


def test_stsb_non_numeric_target(tmp_path):
    header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
    row = "0\tg\tf\t2012\t1\ts\ts\tA man.\tA person.\t{}\n"
    root = glue_layout(tmp_path, "STS-B", {"dev.tsv": header + row.format("4.5") + row.format("high")})
    msg = data_error(r"dev\.tsv line 3: label 'high' is not a number \(STS-B is a regression task\)$",
                     read_glue, get_task("STS-B"), root, "dev")
    assert msg.startswith(str(root / "STS-B" / "dev.tsv"))


def test_cola_headerless_layout_in_a_tiny_dir(tmp_path):
    root = glue_layout(tmp_path, "CoLA", {"dev.tsv": "src\t1\t\tGood sentence .\nsrc\t0\t*\tBad sentence the .\n"})
    s = read_glue(get_task("CoLA"), root, "dev")
    assert [(e.text_a, e.label) for e in s.examples] == [("Good sentence .", 1), ("Bad sentence the .", 0)]
    root2 = glue_layout(tmp_path / "b", "CoLA", {"dev.tsv": "src\t1\t\tGood .\nsrc\t0\tBad .\n"})
    data_error(r"dev\.tsv line 2: expected 4 tab-separated fields, found 3$", read_glue, get_task("CoLA"), root2, "dev")
    root3 = glue_layout(tmp_path / "c", "CoLA", {"dev.tsv": "src\t1\t\t \n"})
    data_error(r"dev\.tsv line 1: empty text in column '#3'$", read_glue, get_task("CoLA"), root3, "dev")


def test_missing_glue_data_dir(tmp_path):
    missing = tmp_path / "nowhere"
    msg = data_error(r"^GLUE data directory not found: ", read_glue, get_task("RTE"), missing, "train")
    assert str(missing) in msg


def test_missing_glue_task_dir(tmp_path):
    root = glue_layout(tmp_path, "SST-2", {"train.tsv": SST2 + "ok\t1\n"})
    data_error(rf"^GLUE task directory not found: {re.escape(str(root / 'RTE'))}$", read_glue, get_task("RTE"), root, "dev")


def test_missing_glue_split_file(tmp_path):
    root = glue_layout(tmp_path, "SST-2", {"train.tsv": SST2 + "ok\t1\n"})
    data_error(rf"^SST-2 dev split not found: {re.escape(str(root / 'SST-2' / 'dev.tsv'))}$",
               read_glue, get_task("SST-2"), root, "dev")


def test_read_glue_on_a_custom_task(tmp_path, single):
    data_error(r"^task 'rd-single' is not a GLUE task", read_glue, single, tmp_path, "train")


# ============================================================================= user files


def test_read_tsv_with_default_columns(tmp_path, single):
    p = write(tmp_path / "t.tsv", 'sentence\tlabel\nnice "film\tpos\nawful\tneg\n')
    s = read_file(single, p)
    assert s.examples == [Example('nice "film', None, 1), Example("awful", None, 0)]  # TSV: no quoting
    assert s.name == "file" and s.source == str(p)


def test_read_tsv_with_quoting_enabled(tmp_path, single):
    p = write(tmp_path / "t.tsv", 'sentence\tlabel\n"a\tb"\tpos\n')
    assert read_file(single, p, quoting=True).examples == [Example("a\tb", None, 1)]


def test_read_csv_with_quoted_commas_and_quotes(tmp_path, pair):
    p = write(tmp_path / "pairs.csv", (
        "id,first,second,y\n"
        '1,"Hello, world","She said ""hi"", then left",1\n'
        '2,plain,"two\nlines",0\n'
        "3,last,row,1\n"
    ))
    s = read_file(pair, p, "text_a=first, text_b=second, label=y")
    assert s.examples == [
        Example("Hello, world", 'She said "hi", then left', 1),
        Example("plain", "two\nlines", 0),
        Example("last", "row", 1),
    ]


@pytest.mark.parametrize(
    ("labels", "expected"),
    [([0, 1, 1], [0, 1, 1]), (["neg", "pos", "pos"], [0, 1, 1]), (["pos", 0, "neg"], [1, 0, 0])],
    ids=["ints", "strings", "mixed"],
)
def test_read_jsonl_labels_as_ints_and_strings(tmp_path, single, labels, expected):
    lines = [json.dumps({"text": f"row {i}", "y": y}) for i, y in enumerate(labels)]
    p = write(tmp_path / "d.jsonl", "\n".join(lines[:2]) + "\n\n" + lines[2] + "\n")  # blank lines are skipped
    s = read_file(single, p, {"text_a": "text", "label": "y"})
    assert [e.label for e in s.examples] == expected
    assert [e.text_a for e in s.examples] == ["row 0", "row 1", "row 2"]


def test_read_jsonl_keeps_unicode_line_separators_inside_strings(tmp_path, single):
    texts = ["para\u2028graph", "next\u0085line", "plain"]
    body = "\n".join(json.dumps({"sentence": t, "label": "pos"}, ensure_ascii=False) for t in texts) + "\n"
    s = read_file(single, write(tmp_path / "u.jsonl", body))
    assert [e.text_a for e in s.examples] == texts


def test_read_file_without_labels(tmp_path, single):
    p = write(tmp_path / "u.tsv", "sentence\nonly text\n")
    s = read_split(single, "test", file=p, require_labels=False)
    assert s.examples == [Example("only text", None, None)] and not s.has_labels
    data_error(r"u\.tsv: no column 'label' \(found: sentence\)", read_split, single, "test", file=p)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("text_a=sentence1,text_b=sentence2,label=gold", {"text_a": "sentence1", "text_b": "sentence2", "label": "gold"}),
        (" text_a = s , label = y ,", {"text_a": "s", "label": "y"}),
        ("text_a=a=b", {"text_a": "a=b"}),
        ({"text_a": "x"}, {"text_a": "x"}),
        (None, None),
    ],
)
def test_parse_columns(spec, expected):
    assert parse_columns(spec) == expected


@pytest.mark.parametrize(
    ("spec", "pattern"),
    [
        ("text_a=s,labl=y", r"^--columns: unknown key 'labl'; expected text_a, text_b and label$"),
        ({"text_c": "x"}, r"^--columns: unknown key 'text_c'"),
        ("text_a", r"^--columns: expected key=column pairs like text_a=sentence1, got 'text_a'$"),
    ],
)
def test_parse_columns_errors(spec, pattern):
    data_error(pattern, parse_columns, spec)


# ----------------------------------------------------------------------------- malformed user files


@pytest.mark.parametrize(
    ("name", "content", "pattern"),
    [
        ("a.tsv", "sentence\tlabel\nok\tpos\nbad\n", r"a\.tsv line 3: expected 2 fields \(as in the header\), found 1$"),
        ("a.csv", 'sentence,label\nok,pos\n"unclosed,neg\nlater,pos\n', r"a\.csv line 3: malformed row, bad quoting \(unexpected end of data\)$"),
        ("a.csv", 'sentence,label\n"ab"c,pos\n', r"a\.csv line 2: malformed row, bad quoting"),
        ("a.csv", "sentence,label\nok,pos\n,neg\n", r"a\.csv line 3: empty text in column 'sentence'$"),
        ("a.csv", "sentence,label\nok,maybe\n", r"a\.csv line 2: label 'maybe' is not one of the task's labels \['neg', 'pos'\]$"),
        ("a.csv", "sentence,label\nok,\n", r"a\.csv line 2: missing label in column 'label'$"),
        ("a.csv", "text,stars\nok,pos\n", r"a\.csv: no column 'sentence' \(found: text, stars\); map columns with --columns$"),
        ("a.csv", "sentence,label\n", r"a\.csv: no data rows$"),
        ("a.csv", "", r"a\.csv: empty file, expected a header row and data rows$"),
        ("a.jsonl", '{"sentence": "ok", "label": "pos"}\n{"sentence": "x", "label": \n', r"a\.jsonl line 2: not valid JSON \("),
        ("a.jsonl", '{"sentence": "ok", "label": "pos"}\n["a", "pos"]\n', r"a\.jsonl line 2: expected a JSON object per line$"),
        ("a.jsonl", '{"sentence": 5, "label": "pos"}\n', r"a\.jsonl line 1: column 'sentence' must be text$"),
        ("a.jsonl", '{"sentence": "ok", "label": "pos"}\n{"label": "neg"}\n', r"a\.jsonl line 2: column 'sentence' must be text$"),
        ("a.xlsx", "whatever", r"a\.xlsx: cannot tell the format from the extension; expected \.tsv, \.csv or \.jsonl"),
    ],
    ids=["field-count", "unclosed-quote", "quote-then-text", "empty-text", "unknown-label", "missing-label",
         "missing-column", "header-only", "empty-file", "not-json", "not-object", "text-not-string",
         "column-missing-later", "unknown-extension"],
)
def test_malformed_user_file(tmp_path, single, name, content, pattern):
    p = write(tmp_path / name, content)
    msg = data_error(pattern, read_file, single, p)
    assert msg.startswith(str(p))


def test_user_file_not_utf8(tmp_path, single):
    p = write(tmp_path / "a.tsv", b"sentence\tlabel\nok\tpos\n\xff\xfe\tneg\n")
    data_error(rf"^{re.escape(str(p))} line 3: not valid UTF-8 \(byte 0xff\); save the file as UTF-8$", read_file, single, p)


def test_missing_user_file(tmp_path, single):
    p = tmp_path / "missing.tsv"
    data_error(rf"^data file not found: {re.escape(str(p))}$", read_file, single, p)
    data_error(r"^data file is a directory, expected a file: ", read_file, single, tmp_path)


def test_regression_user_file_non_numeric_target(tmp_path):
    task = get_task("STS-B")
    p = write(tmp_path / "s.tsv", "sentence1\tsentence2\tlabel\na\tb\t3.5\nc\td\tn/a\n")
    data_error(r"s\.tsv line 3: label 'n/a' is not a number", read_file, task, p)


def test_column_mapping_must_fit_the_task(tmp_path, single, pair):
    p = write(tmp_path / "p.tsv", "s1\ts2\tlabel\na\tb\t1\n")
    data_error(r"^--columns: task rd-pair takes sentence pairs; give text_b=<column>$", read_file, pair, p, "text_a=s1,label=label")
    data_error(r"^--columns: task rd-single takes single sentences; remove text_b$", read_file, single, p, "text_a=s1,text_b=s2")
    data_error(r"^--columns: text_a is required$", read_file, single, p, "label=label")
    data_error(r"^--columns: unknown key 'txt_a'", read_file, single, p, "txt_a=s1")


def test_unknown_format(tmp_path, single):
    p = write(tmp_path / "a.tsv", "sentence\tlabel\nok\tpos\n")
    data_error(r"^data format 'xml' unknown; expected tsv, csv or jsonl$", read_file, single, p, fmt="xml")
    assert len(read_file(single, write(tmp_path / "a.data", "sentence,label\nok,pos\n"), fmt="csv")) == 1


def test_read_split_needs_exactly_one_source(tmp_path, single):
    pattern = r"^give exactly one data source"
    data_error(pattern, read_split, single, "train")
    data_error(pattern, read_split, single, "train", data_dir=tmp_path, file=tmp_path / "x.tsv")


# ----------------------------------------------------------------------------- subsample and fingerprints


@pytest.fixture()
def hundred(tmp_path, single) -> tuple[Path, object]:
    p = write(tmp_path / "h.tsv", "sentence\tlabel\n" + "".join(f"row {i}\t{['neg', 'pos'][i % 2]}\n" for i in range(100)))
    return p, read_file(single, p)


def test_subsample_is_fixed_size_deterministic_and_ordered(hundred):
    _, full = hundred
    a, b, c = full.subsample(10, seed=1), full.subsample(10, seed=1), full.subsample(10, seed=2)
    assert len(a) == 10 and len(c) == 10
    assert a.examples == b.examples and a.fingerprint == b.fingerprint
    assert a.examples != c.examples
    assert len({full.fingerprint, a.fingerprint, c.fingerprint, full.subsample(11, seed=1).fingerprint}) == 4
    pos = [full.examples.index(e) for e in a.examples]
    assert pos == sorted(pos)  # file order kept
    assert set(a.examples) <= set(full.examples)
    assert a.meta["subsample"] == {"n": 10, "seed": 1, "of": 100}
    assert len(full) == 100  # the original is untouched


def test_subsample_no_op_and_invalid(hundred):
    _, full = hundred
    assert full.subsample(None) is full
    assert full.subsample(100) is full and full.subsample(500) is full
    data_error(r"h\.tsv: subsample size must be positive, got 0$", full.subsample, 0)


def test_fingerprint_follows_file_content_and_mapping(tmp_path, single, hundred):
    p, full = hundred
    assert full.fingerprint.startswith(hashlib.sha256(p.read_bytes()).hexdigest())
    assert read_file(single, p).fingerprint == full.fingerprint
    p.write_text(p.read_text().replace("row 99", "row 99!"))
    assert read_file(single, p).fingerprint != full.fingerprint
    alt = write(tmp_path / "alt.tsv", p.read_text().replace("sentence\t", "text\t", 1))
    assert read_file(single, alt, "text_a=text,label=label").fingerprint != read_file(single, alt, "text_a=text").fingerprint


# ============================================================================= Hugging Face datasets (faked)


class _ClassLabel:
    def __init__(self, names):
        self.names = names


class _Dataset:
    def __init__(self, rows, features):
        self.rows, self.features, self.column_names, self._fingerprint = rows, features, list(rows[0]), "fake-fp"

    def __iter__(self):
        return iter(self.rows)


def _fake_datasets(monkeypatch, ds) -> None:
    mod = types.ModuleType("datasets")
    mod.DatasetDict = type("DatasetDict", (dict,), {})
    mod.load_from_disk = lambda path: ds
    mod.load_dataset = lambda name, config, split: ds
    monkeypatch.setitem(sys.modules, "datasets", mod)


def test_hf_classlabel_names_map_by_name(monkeypatch):
    # Hugging Face GLUE MNLI numbers its labels entailment 0, neutral 1, contradiction 2
    rows = [{"premise": f"p{i}", "hypothesis": f"h{i}", "label": y} for i, y in enumerate([0, 1, 2, 0])]
    _fake_datasets(monkeypatch, _Dataset(rows, {"label": _ClassLabel(["entailment", "neutral", "contradiction"])}))
    task = get_task("MNLI")
    s = read_hf(task, "no/such-local-dir", "validation_matched", config_name="mnli")
    assert [task.labels[e.label] for e in s.examples] == ["entailment", "neutral", "contradiction", "entailment"]
    assert s.examples[1].text_a == "p1" and s.examples[1].text_b == "h1"


def test_hf_other_classlabel_names_index_the_task_labels(monkeypatch):
    rows = [{"sentence": "good", "label": 1}, {"sentence": "bad", "label": 0}]
    _fake_datasets(monkeypatch, _Dataset(rows, {"label": _ClassLabel(["negative", "positive"])}))
    s = read_hf(get_task("SST-2"), "no/such-local-dir", "validation")
    assert [e.label for e in s.examples] == [1, 0]


def test_hf_unlabelled_rows_and_missing_column(monkeypatch):
    _fake_datasets(monkeypatch, _Dataset([{"sentence": "x", "label": -1}], {"label": _ClassLabel(["negative", "positive"])}))
    assert not read_hf(get_task("SST-2"), "no/such-local-dir", "test").has_labels
    data_error(r"no column 'text' \(found: sentence, label\)", read_hf, get_task("SST-2"), "no/such-local-dir", "test", "text_a=text")


def test_hf_without_datasets_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)
    data_error(r"needs the 'hub' extra", read_hf, get_task("SST-2"), "nyu-mll/glue", "train")

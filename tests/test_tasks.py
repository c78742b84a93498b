"""The task registry: GLUE tasks, lookup by name, custom tasks from a config mapping."""

from __future__ import annotations

import re

import pytest

from layerkd.errors import ConfigError
from layerkd.tasks import GLUE_TASKS, Task, get_task, list_tasks, register_task, task_from_config


def _spec(name: str, **overrides) -> dict:
    """A valid custom-task mapping (unique name per test: the registry is process-wide)."""
    spec = {"name": f"tt-{name}", "text_columns": ["review"], "label_column": "stars", "labels": ["neg", "pos"]}
    spec.update(overrides)
    return {k: v for k, v in spec.items() if v is not None}


def _config_error(spec, pattern: str) -> str:
    with pytest.raises(ConfigError, match=pattern) as info:
        task_from_config(spec)
    assert "\n" not in str(info.value)
    return str(info.value)


# ----------------------------------------------------------------------------- GLUE registry


@pytest.mark.parametrize(
    ("name", "num_labels", "pair", "main"),
    [
        ("CoLA", 2, False, "matthews_correlation"),
        ("SST-2", 2, False, "accuracy"),
        ("MRPC", 2, True, "f1"),
        ("STS-B", 1, True, "pearson"),
        ("QQP", 2, True, "accuracy"),
        ("MNLI", 3, True, "accuracy"),
        ("QNLI", 2, True, "accuracy"),
        ("RTE", 2, True, "accuracy"),
        ("WNLI", 2, True, "accuracy"),
    ],
)
def test_glue_tasks_are_registered(name, num_labels, pair, main):
    task = get_task(name)
    assert task.name == name
    assert task.num_labels == num_labels
    assert task.is_pair is pair
    assert task.is_regression is (name == "STS-B")
    assert task.main_metric == main
    assert task.main_metric in task.metrics
    assert task.glue_dir == name
    assert {"train", "dev", "test"} <= set(task.glue_splits)
    assert task.glue_splits["test"].label is None  # test files carry no labels


def test_glue_task_tuple_and_list_agree():
    assert set(GLUE_TASKS) <= {t.name for t in list_tasks()}
    assert len(GLUE_TASKS) == 9


@pytest.mark.parametrize(
    ("alias", "canonical"),
    [("sst-2", "SST-2"), ("SST2", "SST-2"), ("sst_2", "SST-2"), ("sts_b", "STS-B"), ("stsb", "STS-B"),
     ("STS-B", "STS-B"), ("cola", "CoLA"), ("Mnli", "MNLI"), ("q-n-l-i", "QNLI")],
)
def test_get_task_is_case_and_dash_insensitive(alias, canonical):
    assert get_task(alias) is get_task(canonical)
    assert get_task(alias).name == canonical


def test_unknown_task_lists_known_tasks():
    with pytest.raises(ConfigError, match=r"unknown task 'sst-3'; expected one of: ") as info:
        get_task("sst-3")
    listed = re.search(r"expected one of: (.*) \(or define", str(info.value)).group(1).split(", ")
    assert set(GLUE_TASKS) <= set(listed)


def test_task_from_config_with_a_name_returns_the_registered_task():
    assert task_from_config("rte") is get_task("RTE")
    with pytest.raises(ConfigError, match=r"unknown task 'nope'"):
        task_from_config("nope")


def test_mnli_label_order_follows_glue_processors():
    assert get_task("MNLI").labels == ("contradiction", "entailment", "neutral")
    assert get_task("MNLI").label_id("neutral") == 2


# ----------------------------------------------------------------------------- custom tasks


def test_custom_classification_task_is_registered():
    task = task_from_config(_spec("cls", description="reviews"))
    assert task.name == "tt-cls"
    assert task.text_columns == ("review",)
    assert task.label_column == "stars"
    assert task.labels == ("neg", "pos")
    assert task.metrics == ("accuracy",)  # the default for classification
    assert task.main_metric == "accuracy"
    assert (task.num_labels, task.is_pair, task.is_regression) == (2, False, False)
    assert task.description == "reviews"
    assert task.glue_dir is None
    assert get_task("TT_CLS") is task


def test_custom_task_defaults_label_column_and_accepts_a_single_column_string():
    task = task_from_config({"name": "tt-defaults", "text_columns": "text", "labels": [0, 1]})
    assert task.text_columns == ("text",)
    assert task.label_column == "label"
    assert task.labels == ("0", "1")  # label names are strings


def test_custom_pair_task_with_metrics_and_main_metric():
    task = task_from_config(_spec("pair", text_columns=["q", "a"], metrics=["accuracy", "f1"], main_metric="f1"))
    assert task.is_pair
    assert task.metrics == ("accuracy", "f1")
    assert task.main_metric == "f1"


def test_custom_regression_task():
    task = task_from_config(_spec("reg", labels=None, regression=True))
    assert task.is_regression
    assert task.labels is None
    assert task.num_labels == 1
    assert task.metrics == ("pearson", "spearmanr")
    assert task.main_metric == "pearson"
    assert task.label_id("3.25") == 3.25
    assert task.label_id(2) == 2.0


def test_reregistering_the_same_definition_is_fine_but_a_different_one_is_not():
    first = task_from_config(_spec("again"))
    assert task_from_config(_spec("again")) == first
    _config_error(_spec("again", labels=["a", "b", "c"]), r"task 'tt-again' is already registered with a different definition")


def test_register_task_overwrite():
    t1 = Task("tt-over", ("x",), "label", ("a", "b"), ("accuracy",), "accuracy")
    t2 = Task("tt-over", ("x",), "label", ("a", "b", "c"), ("accuracy",), "accuracy")
    register_task(t1)
    with pytest.raises(ConfigError, match="already registered"):
        register_task(t2)
    assert register_task(t2, overwrite=True) is t2
    assert get_task("tt-over") is t2


@pytest.mark.parametrize(
    ("spec", "pattern"),
    [
        ({"text_columns": ["x"], "labels": ["a", "b"]}, r"^task\.name: missing"),
        (_spec("nocols", text_columns=None), r"^task\.text_columns: expected a list of one or two column names"),
        (_spec("emptycols", text_columns=[]), r"^task\.text_columns: expected a list of one or two"),
        (_spec("threecols", text_columns=["a", "b", "c"]), r"^task\.text_columns: expected a list of one or two"),
        (_spec("intcols", text_columns=[1]), r"^task\.text_columns: expected a list of one or two"),
        (_spec("both", regression=True), r"^task: give either labels \(classification\) or regression: true, not both"),
        (_spec("nolabels", labels=None), r"^task\.labels: expected a list of at least two label names"),
        (_spec("onelabel", labels=["only"]), r"^task\.labels: expected a list of at least two"),
        (_spec("duplabels", labels=["a", "a"]), r"^task\.labels: label names must be distinct"),
        (_spec("badmetric", metrics=["acc"]), r"^task\.metrics: unknown metric 'acc'; expected one of: accuracy, f1, "),
        (_spec("pearsoncls", metrics=["accuracy", "pearson"]), r"^task\.metrics: 'pearson' does not apply to a classification task"),
        (_spec("accreg", labels=None, regression=True, metrics=["accuracy"]), r"^task\.metrics: 'accuracy' does not apply to a regression task"),
        (_spec("f1three", labels=["a", "b", "c"], metrics=["accuracy", "f1"]), r"^task\.metrics: 'f1' .* needs exactly two labels"),
        (_spec("main", metrics=["accuracy"], main_metric="f1"), r"^task\.main_metric: 'f1' is not one of task\.metrics \['accuracy'\]"),
        (_spec("emptymetrics", metrics=[]), r"^task\.metrics: expected a non-empty list of metric names"),
        (_spec("intmetrics", metrics=5), r"^task\.metrics: expected a non-empty list of metric names"),
        (_spec("typo", labelz=["a", "b"]), r"^task: unknown key 'labelz'; expected one of: .*labels"),
        (["not", "a", "mapping"], r"^task: expected a task name or a mapping, got list"),
    ],
)
def test_task_config_errors(spec, pattern):
    _config_error(spec, pattern)


def test_a_rejected_task_is_not_registered():
    _config_error(_spec("rejected", metrics=["nope"]), "unknown metric")
    with pytest.raises(ConfigError, match="unknown task"):
        get_task("tt-rejected")


# ----------------------------------------------------------------------------- label_id


def test_label_id_by_name_and_by_integer_index():
    task = task_from_config(_spec("labelid", labels=["neg", "neutral", "pos"]))
    assert task.label_id("pos") == 2
    assert task.label_id(" neutral \n") == 1  # surrounding whitespace is ignored
    assert task.label_id(0) == 0  # integers index the label list when they are not label names
    with pytest.raises(ValueError, match=r"label 3 is not one of the task's labels \['neg', 'neutral', 'pos'\]"):
        task.label_id(3)
    with pytest.raises(ValueError, match=r"label 'Pos' is not one of"):
        task.label_id("Pos")
    with pytest.raises(ValueError, match=r"label True is not one of"):
        task.label_id(True)


def test_numeric_label_names_map_by_name():
    task = task_from_config(_spec("numnames", labels=["1", "0"]))
    assert task.label_id("1") == 0
    assert task.label_id(1) == 0  # "1" is a label name, so the integer 1 means that name


@pytest.mark.parametrize("raw", ["abc", None, "nan", "inf", float("-inf")])
def test_regression_label_must_be_a_finite_number(raw):
    with pytest.raises(ValueError, match=r"is not a (finite )?number"):
        get_task("STS-B").label_id(raw)

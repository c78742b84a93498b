"""Hostile configs (issue 19, points 7 and 8): duplicate YAML keys, alias bombs, non-finite floats,
bools and floats where ints belong — each a one-line ConfigError naming the line or the field."""

from __future__ import annotations

import time

import pytest

from layerkd import safe_yaml
from layerkd.config import read_yaml, validate_run_config
from layerkd.errors import ConfigError
from layerkd.objectives.registry import parse_options

BASE = {"task": "sst-2", "data": {"data_dir": "glue"}, "model": "m"}
DISTILL = {"task": "sst-2", "data": {"data_dir": "glue"}, "teacher": {"path": "t"}, "student": "bottom:2"}


def _yaml(tmp_path, text: str):
    p = tmp_path / "run.yaml"
    p.write_text(text)
    return p


def test_a_duplicate_section_is_an_error_with_both_lines(tmp_path):
    # the second train: used to replace the first whole (batch_size and max_length silently dropped)
    p = _yaml(tmp_path, "task: sst-2\ntrain:\n  batch_size: 8\n  max_length: 64\ndata: {data_dir: glue}\ntrain:\n  lr: 0.001\n")
    with pytest.raises(ConfigError, match=r"run\.yaml line 6: duplicate key 'train' \(first at line 2\)"):
        read_yaml(p)


def test_a_duplicate_key_in_a_flow_mapping(tmp_path):
    with pytest.raises(ConfigError, match=r"line 1: duplicate key 'lr'"):
        read_yaml(_yaml(tmp_path, "train: {lr: 0.1, epochs: 2, lr: 0.2}\n"))


def test_merge_keys_may_still_be_overridden(tmp_path):
    data = read_yaml(_yaml(tmp_path, "base: &b {lr: 0.1, epochs: 2}\ntrain:\n  <<: *b\n  lr: 0.2\n"))
    assert data["train"] == {"lr": 0.2, "epochs": 2}


def test_distinct_keys_of_different_types_are_not_duplicates(tmp_path):
    assert read_yaml(_yaml(tmp_path, "a: {1: x, '1': y}\n"))["a"] == {1: "x", "1": "y"}


def _bomb(levels: int = 9, width: int = 9) -> str:
    text = 'l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    for i in range(1, levels):
        text += f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]\n"
    return text + f"task: *l{levels - 1}\n"


def test_a_billion_laughs_is_refused_quickly(tmp_path):
    p = _yaml(tmp_path, _bomb())  # 9**9 ≈ 387 million strings once expanded
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match=r"run\.yaml line \d+: aliases expand this document beyond 100000 nodes"):
        read_yaml(p)
    assert time.perf_counter() - t0 < 0.5


def test_one_alias_to_a_long_string_repeated_is_refused(tmp_path):
    text = "a: &a " + "x" * 10_000 + "\nb: [" + ", ".join(["*a"] * 2_000) + "]\n"  # 20 MB of text
    with pytest.raises(ConfigError, match=r"aliases expand this document beyond"):
        read_yaml(_yaml(tmp_path, text))


def test_a_recursive_alias_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"line 1: a recursive alias"):
        read_yaml(_yaml(tmp_path, "a: &a [1, *a]\n"))


def test_ordinary_anchors_are_fine():
    data = safe_yaml.load(_bomb(levels=3, width=3))
    assert len(data["task"]) == 3 and data["task"][0][0] == ["lol"] * 9


def test_exponent_floats_without_a_dot_are_numbers():
    # YAML 1.1 reads 1e-4 as a string; strict validation would refuse it, so it resolves to a float
    assert safe_yaml.load("lr: 1e-4\neps: -2E+3\nq: '1e-4'\nv: 1.0e-4\n") == {"lr": 1e-4, "eps": -2000.0, "q": "1e-4", "v": 1e-4}
    assert validate_run_config({**BASE, "train": safe_yaml.load("lr: 1e-4")}).train.lr == 1e-4


@pytest.mark.parametrize("train, pattern", [
    ({"adam_eps": float("inf")}, r"train\.adam_eps: Input should be a finite number \(got inf\)"),
    ({"lr": float("nan")}, r"train\.lr: Input should be a finite number"),
    ({"max_grad_norm": float("-inf")}, r"train\.max_grad_norm: .*finite number"),
    ({"epochs": True}, r"train\.epochs: Input should be a valid integer \(got True\)"),
    ({"epochs": 3.0}, r"train\.epochs: Input should be a valid integer \(got 3\.0\)"),
    ({"batch_size": "32"}, r"train\.batch_size: Input should be a valid integer \(got '32'\)"),
    ({"lr": True}, r"train\.lr: Input should be a valid number \(got True\)"),
    ({"group_by_length": 1}, r"train\.group_by_length: Input should be a valid boolean \(got 1\)"),
    ({"seed": 2**32}, r"train\.seed: Input should be less than or equal to 4294967295"),
])
def test_numbers_are_strict_and_finite(train, pattern):
    with pytest.raises(ConfigError, match=pattern):
        validate_run_config({**BASE, "train": train}, "config run.yaml")


def test_an_int_is_still_a_valid_float():
    assert validate_run_config({**BASE, "train": {"lr": 1, "seed": 2**32 - 1}}).train.lr == 1.0


@pytest.mark.parametrize("section, pattern", [
    ({"data": {"data_dir": "glue", "train_subsample": True}}, r"data\.train_subsample: .*valid integer"),
    ({"teacher": {"path": "t", "fit_heads": {"dropout": float("nan")}}}, r"teacher\.fit_heads\.dropout: .*finite"),
    ({"recipe": {"objectives": [{"name": "kd", "weight": float("inf")}]}}, r"recipe\.objectives\.0\.weight: .*finite"),
    ({"recipe": {"objectives": [{"name": "kd"}], "phases": [{"use": {"kd": float("nan")}}]}}, r"phases\.0\.use\.kd: .*finite"),
])
def test_every_section_is_strict(section, pattern):
    with pytest.raises(ConfigError, match=pattern):
        validate_run_config({**DISTILL, **section})


@pytest.mark.parametrize("name, options, pattern", [
    ("kd", {"temperature": float("inf")}, r"\(kd\): option 'temperature': Input should be a finite number"),
    ("kd", {"temperature": True}, r"option 'temperature': Input should be a valid number"),
    ("rail", {"proj_dim": 64.0}, r"\(rail\): option 'proj_dim': Input should be a valid integer"),
    ("rail", {"normalize": "yes"}, r"option 'normalize': Input should be a valid boolean"),
])
def test_objective_options_are_strict_and_finite(name, options, pattern):
    with pytest.raises(ConfigError, match=pattern):
        parse_options(name, options, "recipe.objectives[0]")


def test_suite_files_refuse_duplicate_keys_and_strict_types(tmp_path):
    from layerkd.bench.suite import load_suite

    p = tmp_path / "s.yaml"
    p.write_text("name: s\ntasks: {mrpc: {teacher: t}}\nstudents: {L2: 'bottom:2'}\nmethods: [kd]\nseeds: [1]\nseeds: [2]\n")
    with pytest.raises(ConfigError, match=r"s\.yaml line 6: duplicate key 'seeds' \(first at line 5\)"):
        load_suite(p, {})
    p.write_text("name: s\ntasks: {mrpc: {teacher: t}}\nstudents: {L2: 'bottom:2'}\nmethods: [kd]\nseeds: [1.0]\n")
    with pytest.raises(ConfigError, match=r"suite .*s\.yaml: seeds\.0: Input should be a valid integer \(got 1\.0\)"):
        load_suite(p, {})

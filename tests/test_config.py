"""Run-config validation, YAML loading, deep_merge and the dump/load round trip."""

from __future__ import annotations

import re

import pytest
import yaml

from layerkd.config import RunConfig, deep_merge, dump_config, read_yaml, validate_run_config
from layerkd.errors import ConfigError


def finetune_cfg(**overrides) -> dict:
    return deep_merge({"task": "SST-2", "data": {"data_dir": "/data/glue"}, "model": "bert-base-uncased"}, overrides)


def distill_cfg(**overrides) -> dict:
    base = {
        "task": "RTE",
        "data": {"data_dir": "/data/glue"},
        "teacher": {"path": "/models/teacher", "fit_heads": {"epochs": 2, "layers": [1, 2, 3]}},
        "student": "bottom:2",
        "method": "pkd",
    }
    return deep_merge(base, overrides)


def config_error(data: dict, pattern: str, where: str = "config") -> str:
    """The ConfigError message for ``data`` (checked against ``pattern``; always one line)."""
    with pytest.raises(ConfigError, match=pattern) as info:
        validate_run_config(data, where)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def allowed_keys(msg: str) -> list[str]:
    m = re.search(r"\(expected one of: ([^)]*)\)", msg)
    assert m, f"no list of allowed keys in: {msg}"
    return m.group(1).split(", ")


# ----------------------------------------------------------------------------- valid configs


def test_minimal_finetune_config_gets_defaults():
    cfg = validate_run_config(finetune_cfg())
    assert isinstance(cfg, RunConfig)
    assert not cfg.is_distill
    assert (cfg.train.lr, cfg.train.batch_size, cfg.train.grad_accum, cfg.train.precision) == (5e-5, 32, 1, "fp32")
    assert cfg.data.train_split == "train" and cfg.data.eval_split == "dev"


def test_distill_config_is_distill():
    cfg = validate_run_config(distill_cfg())
    assert cfg.is_distill
    assert cfg.teacher.fit_heads.layers == [1, 2, 3]
    assert cfg.teacher.fit_heads.lr == 1e-3  # default kept beside the overridden keys


# ----------------------------------------------------------------------------- unknown keys


def test_unknown_top_level_key_lists_allowed_keys():
    msg = config_error(finetune_cfg(modle="x"), r"^config: modle: unknown key \(expected one of: ")
    assert allowed_keys(msg) == sorted(RunConfig.model_fields)


def test_unknown_nested_key_names_the_path_and_lists_allowed_keys():
    msg = config_error(finetune_cfg(train={"lrr": 1e-4}), r"^config: train\.lrr: unknown key \(expected one of: ")
    keys = allowed_keys(msg)
    assert {"lr", "batch_size", "epochs", "warmup_ratio"} <= set(keys)
    assert keys == sorted(keys)


@pytest.mark.parametrize(
    ("extra", "path", "some_allowed"),
    [
        ({"cache": {"dtyp": "fp16"}}, "cache.dtyp", {"dtype", "dir", "enabled"}),
        ({"teacher": {"fit_heads": {"lrr": 1}}}, "teacher.fit_heads.lrr", {"lr", "pooling"}),
        ({"data": {"extra_eval": {"ood": {"file": "f.tsv", "colums": "x"}}}}, "data.extra_eval.ood.colums", {"file", "columns"}),
    ],
)
def test_unknown_deeply_nested_keys(extra, path, some_allowed):
    msg = config_error(distill_cfg(**extra), rf"^config: {re.escape(path)}: unknown key")
    assert some_allowed <= set(allowed_keys(msg))


def test_unknown_key_inside_a_list_of_phases():
    data = distill_cfg(method=None, recipe={"objectives": [{"name": "kd"}], "phases": [{"use": {"kd": 1.0}, "epoch": 2}]})
    data.pop("method")
    msg = config_error(data, r"^config: recipe\.phases\.0\.epoch: unknown key")
    assert "epochs" in allowed_keys(msg)


def test_where_prefixes_the_message():
    config_error(finetune_cfg(foo=1), r"^config run\.yaml: foo: unknown key", where="config run.yaml")


# ----------------------------------------------------------------------------- values out of range


@pytest.mark.parametrize(
    ("train", "pattern"),
    [
        ({"lr": 0}, r"^config: train\.lr: Input should be greater than 0 \(got 0\)"),
        ({"lr": -1e-4}, r"^config: train\.lr: .*greater than 0"),
        ({"batch_size": 0}, r"^config: train\.batch_size: Input should be greater than or equal to 1 \(got 0\)"),
        ({"warmup_ratio": 1.0}, r"^config: train\.warmup_ratio: Input should be less than 1 \(got 1\.0\)"),
        ({"precision": "fp8"}, r"^config: train\.precision: Input should be 'fp32', 'bf16' or 'fp16' \(got 'fp8'\)"),
        ({"max_length": 4}, r"^config: train\.max_length: .*greater than or equal to 8"),
        ({"epochs": "three"}, r"^config: train\.epochs: .*valid integer.*\(got 'three'\)"),
        ({"batch_size": 32, "grad_accum": 3}, r"^config: train: batch_size 32 must be divisible by grad_accum 3"),
    ],
)
def test_out_of_range_train_values_name_the_field(train, pattern):
    config_error(finetune_cfg(train=train), pattern)


def test_batch_size_divisible_by_grad_accum_is_accepted():
    assert validate_run_config(finetune_cfg(train={"batch_size": 32, "grad_accum": 4})).train.grad_accum == 4


def test_several_errors_are_counted():
    config_error(finetune_cfg(train={"lr": 0, "batch_size": 0}), r"^config: train\.\w+: .* \(\+1 more\)$")


# ----------------------------------------------------------------------------- run mode and data sources


def test_model_and_teacher_together():
    config_error(distill_cfg(model="bert"), r"^config: \(top level\): give either model \(fine-tuning\) or teacher \+ student")


def test_neither_model_nor_teacher():
    data = finetune_cfg()
    del data["model"]
    config_error(data, r"^config: \(top level\): give model \(fine-tuning\) or teacher \+ student")


def test_teacher_without_student():
    data = distill_cfg()
    del data["student"]
    config_error(data, r"^config: \(top level\): student: missing")


def test_method_and_recipe_together():
    config_error(distill_cfg(recipe={"objectives": [{"name": "kd"}]}), r"give method \(a preset\) or recipe .*not both")


def test_empty_recipe():
    data = distill_cfg(recipe={"objectives": []})
    data.pop("method")
    config_error(data, r"^config: recipe\.objectives: a recipe needs at least one objective")


def test_missing_task():
    data = finetune_cfg()
    del data["task"]
    config_error(data, r"^config: task: missing$")


def test_no_data_source():
    config_error(finetune_cfg(data={"data_dir": None}), r"^config: data: no data source: give data_dir")


@pytest.mark.parametrize(
    "data",
    [{"train_file": "t.tsv"}, {"hf_dataset": "nyu-mll/glue"}],
)
def test_two_data_sources(data):
    config_error(finetune_cfg(data=data), r"^config: data: give one data source: data_dir, or train_file/dev_file, or hf_dataset")


def test_files_alone_are_one_source():
    cfg = validate_run_config(finetune_cfg(data={"data_dir": None, "train_file": "t.tsv", "dev_file": "d.tsv"}))
    assert (cfg.data.train_file, cfg.data.dev_file) == ("t.tsv", "d.tsv")


# ----------------------------------------------------------------------------- read_yaml


def write(tmp_path, text: str | bytes, name: str = "run.yaml"):
    p = tmp_path / name
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text, encoding="utf-8")
    return p


def test_read_yaml_reads_a_mapping(tmp_path):
    p = write(tmp_path, "task: SST-2\ntrain:\n  lr: 3.0e-5\n")
    assert read_yaml(p) == {"task": "SST-2", "train": {"lr": 3e-5}}


def test_read_yaml_empty_file_is_an_empty_mapping(tmp_path):
    assert read_yaml(write(tmp_path, "")) == {}


def test_read_yaml_invalid_yaml_reports_the_line(tmp_path):
    p = write(tmp_path, "task: SST-2\ndata:\n  data_dir: x\n model: m\n")
    with pytest.raises(ConfigError, match=rf"^config {re.escape(str(p))} line 4: expected <block end>"):
        read_yaml(p)


def test_read_yaml_unclosed_bracket_reports_the_line(tmp_path):
    p = write(tmp_path, "a: 1\nb: [1, 2\nc: 3\n")
    with pytest.raises(ConfigError, match=rf"^config {re.escape(str(p))} line 3: "):
        read_yaml(p)


def test_read_yaml_rejects_python_tags_without_executing_them(tmp_path):
    marker = tmp_path / "pwned"
    p = write(tmp_path, f'task: !!python/object/apply:os.system ["touch {marker}"]\n')
    with pytest.raises(ConfigError, match=r"line 1: could not determine a constructor for the tag .*python/object/apply"):
        read_yaml(p)
    assert not marker.exists()


@pytest.mark.parametrize(("text", "kind"), [("- a\n- b\n", "list"), ("just a string\n", "str"), ("42\n", "int")])
def test_read_yaml_rejects_a_non_mapping_top_level(tmp_path, text, kind):
    p = write(tmp_path, text)
    with pytest.raises(ConfigError, match=rf"^config {re.escape(str(p))}: expected a mapping at the top level, got {kind}$"):
        read_yaml(p)


def test_read_yaml_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"^config file not found: .*nope\.yaml$"):
        read_yaml(tmp_path / "nope.yaml")


def test_read_yaml_not_utf8(tmp_path):
    p = write(tmp_path, b"task: caf\xe9\n")
    with pytest.raises(ConfigError, match=rf"^config {re.escape(str(p))}: not valid UTF-8$"):
        read_yaml(p)


# ----------------------------------------------------------------------------- deep_merge


def test_deep_merge_semantics():
    base = {"a": 1, "train": {"lr": 1e-4, "epochs": 3, "opt": {"eps": 1e-8, "beta": 0.9}}, "tags": [1, 2], "d": {"x": 1}}
    override = {"train": {"lr": 5e-5, "opt": {"beta": 0.95}}, "tags": [3], "b": 2, "d": None, "a": {"now": "dict"}}
    merged = deep_merge(base, override)
    assert merged == {
        "a": {"now": "dict"},  # a mapping replaces a scalar
        "train": {"lr": 5e-5, "epochs": 3, "opt": {"eps": 1e-8, "beta": 0.95}},  # mappings merge recursively
        "tags": [3],  # lists are replaced, not concatenated
        "d": None,  # a scalar (even None) replaces a mapping
        "b": 2,
    }


def test_deep_merge_does_not_mutate_its_inputs():
    base = {"train": {"lr": 1e-4, "opt": {"eps": 1e-8}}}
    override = {"train": {"opt": {"eps": 1e-6}}}
    deep_merge(base, override)
    assert base == {"train": {"lr": 1e-4, "opt": {"eps": 1e-8}}}
    assert override == {"train": {"opt": {"eps": 1e-6}}}


# ----------------------------------------------------------------------------- dump / load round trip


@pytest.mark.parametrize(
    "data",
    [
        finetune_cfg(train={"lr": 3e-5, "precision": "bf16", "max_steps": 100}, output_dir="/runs/a"),
        distill_cfg(
            task={"name": "reviews", "text_columns": ["review"], "labels": ["neg", "pos"]},
            data={"data_dir": None, "train_file": "t.csv", "dev_file": "d.csv", "columns": "text_a=review,label=stars",
                  "extra_eval": {"ood": {"file": "o.jsonl", "columns": {"text_a": "t"}}}},
            cache={"dtype": "fp32"},
        ),
        {
            "task": "MRPC", "data": {"data_dir": "/g"}, "teacher": {"path": "/t"}, "student": "layers:2,4",
            "recipe": {"objectives": [{"name": "kd", "weight": 0.5, "temperature": 4.0}, {"name": "pkd", "key": "p"}],
                       "phases": [{"name": "warm", "epochs": 1, "use": {"p": 1.0}}, {"use": {"kd": 1.0, "p": 0.1}}]},
        },
    ],
    ids=["finetune", "distill-files", "recipe"],
)
def test_config_round_trips_through_yaml(data):
    cfg = validate_run_config(data)
    text = dump_config(cfg)
    loaded = yaml.safe_load(text)
    assert isinstance(loaded, dict)
    again = validate_run_config(loaded)
    assert again == cfg
    assert again.model_dump() == cfg.model_dump()
    assert dump_config(again) == text


def test_dumped_config_keeps_objective_options():
    data = distill_cfg(recipe={"objectives": [{"name": "kd", "temperature": 4.0}]})
    data.pop("method")
    loaded = yaml.safe_load(dump_config(validate_run_config(data)))
    assert loaded["recipe"]["objectives"][0] == {"name": "kd", "weight": 1.0, "key": None, "temperature": 4.0}
    assert validate_run_config(loaded).recipe.objectives[0].options == {"temperature": 4.0}


def test_every_added_option_names_a_real_field_and_a_valid_value():
    # a typo in ADDED_OPTIONS would silently put the option back into every hash
    import typing

    from pydantic import BaseModel

    from layerkd.config import ADDED_OPTIONS, RunConfig

    for path, default in ADDED_OPTIONS:
        model = RunConfig
        for name in path[:-1]:
            ann = model.model_fields[name].annotation  # e.g. TeacherConfig | None
            model = next(a for a in (*typing.get_args(ann), ann) if isinstance(a, type) and issubclass(a, BaseModel))
        field = model.model_fields[path[-1]]
        from layerkd.config import DataConfig

        base = {RunConfig: {"task": "rte", "data": {"data_dir": "glue"}, "model": "m"},
                DataConfig: {"data_dir": "glue"}}.get(model, {})  # the smallest valid section around the option
        value = getattr(model.model_validate({**base, path[-1]: default}), path[-1])  # the earlier value is valid
        dumped = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
        assert dumped == default, path
        if field.default_factory is None and field.default is not None:
            assert isinstance(default, type(field.default)), path  # the earlier value, of the field's type

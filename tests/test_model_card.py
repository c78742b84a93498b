"""The Hugging Face model card (README.md with YAML front matter) of every finetune/distill run."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import yaml

from conftest import distill_config
from layerkd import toy
from layerkd.config import validate_run_config
from layerkd.model_card import build_card, card_metadata, hub_id


def front_matter(text: str) -> dict:
    assert text.startswith("---\n"), text[:80]
    head, sep, body = text[4:].partition("\n---\n")
    assert sep and body.strip(), "the card has front matter and a body"
    meta = yaml.safe_load(head)
    assert isinstance(meta, dict)
    return meta


@pytest.fixture(scope="module")
def runs(tmp_path_factory, toy_data, tiny_bert_dir):
    from layerkd.stages.distill import distill
    from layerkd.stages.finetune import finetune

    root = tmp_path_factory.mktemp("card-runs")
    train, dev = toy_data
    finetune(validate_run_config({
        "task": toy.TOY_TASK, "data": {"train_file": str(train), "dev_file": str(dev), "train_subsample": 64},
        "model": str(tiny_bert_dir), "output_dir": str(root / "ft"), "pooling": "mean",
        "train": {"epochs": 1, "lr": 2e-3, "batch_size": 16, "max_length": 32, "seed": 7},
    }), progress=False)
    distill(distill_config(root / "ft", toy_data, "kd+pkd", root / "kd", student="bottom:2", epochs=1,
                           extra={"data": {"train_subsample": 64}}), progress=False)
    return root


def test_finetune_card(runs):
    meta = front_matter((runs / "ft" / "README.md").read_text(encoding="utf-8"))
    metrics = json.loads((runs / "ft" / "metrics.json").read_text())
    assert meta["library_name"] == "layerkd" and meta["pipeline_tag"] == "text-classification"
    assert {"layerkd", "finetune", "toy-sentiment", "bert"} <= set(meta["tags"]) and "knowledge-distillation" not in meta["tags"]
    assert "base_model" not in meta  # a local model path is not a hub id
    result = meta["model-index"][0]["results"][0]
    assert result["task"]["type"] == "text-classification"
    assert result["metrics"] == [{"type": "accuracy", "value": metrics["accuracy"],
                                  "name": f"accuracy (best epoch {metrics['best_epoch']}, seed 7)"}]
    lk = meta["layerkd"]
    assert lk["stage"] == "finetune" and lk["seeds"] == [7] and lk["classifier_pooling"] == "mean"
    assert lk["metrics"]["last"] == metrics["last_epoch"]


def test_distill_card(runs):
    text = (runs / "kd" / "README.md").read_text(encoding="utf-8")
    meta = front_matter(text)
    metrics = json.loads((runs / "kd" / "metrics.json").read_text())
    assert {"distill", "knowledge-distillation", "kd", "pkd"} <= set(meta["tags"])
    lk = meta["layerkd"]
    assert lk["method"] == "kd+pkd" and lk["teacher"] == str(runs / "ft") and lk["student"] == "bottom:2"
    from layerkd.methods import resolve_method

    assert lk["recipe"] == resolve_method("kd+pkd").recipe.model_dump(mode="json", exclude_none=True)
    assert {"kd", "pkd"} <= {o["name"] for o in lk["recipe"]["objectives"]}
    assert meta["model-index"][0]["results"][0]["metrics"][0]["value"] == metrics["accuracy"]
    assert f"- teacher: `{runs / 'ft'}`" in text and "layerkd distill --config config.yaml" in text
    assert "trust_remote_code=True" in text  # a mean-pooled transformer: how plain transformers loads it
    # the run directory still loads as a model with the card in it
    from layerkd.models.load import load_model

    assert load_model(runs / "kd").num_layers == 2


def _cfg(**over):
    base = {"task": "rte", "data": {"data_dir": "glue-not-here"}, "train": {"seed": 3}}
    return validate_run_config({**base, **over})


RESULT = {"best": {"accuracy": 0.7, "f1": float("nan")}, "last": {"accuracy": 0.65}, "best_epoch": 2}


def test_hub_ids_glue_and_bases(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert hub_id("bert-base-uncased") == "bert-base-uncased" and hub_id("org/model-1.5") == "org/model-1.5"
    assert hub_id("bottom:2") is None and hub_id("./model") is None and hub_id("a/b/c") is None
    (tmp_path / "local-model").mkdir()
    assert hub_id("local-model") is None  # an existing local directory is never called a hub id

    bert = SimpleNamespace(info=SimpleNamespace(kind="transformer"), config=SimpleNamespace(model_type="bert"), pooling="cls")
    ft = card_metadata(bert, _cfg(model="bert-base-uncased"), RESULT)
    assert ft["base_model"] == "bert-base-uncased" and ft["datasets"] == ["nyu-mll/glue"]
    ds = ft["model-index"][0]["results"][0]["dataset"]
    assert ds == {"name": "GLUE RTE", "type": "nyu-mll/glue", "config": "rte", "split": "validation"}
    assert [m["type"] for m in ft["model-index"][0]["results"][0]["metrics"]] == ["accuracy"]  # NaN left out

    cut = card_metadata(bert, _cfg(teacher={"path": "org/teacher"}, student="bottom:2", method="alp"), RESULT | {"method": "alp"})
    assert cut["base_model"] == "org/teacher" and "alp" in cut["tags"]
    cnn = SimpleNamespace(info=SimpleNamespace(kind="cnn"), pooling="max")
    fresh = card_metadata(cnn, _cfg(teacher={"path": "org/teacher"}, student="cnn:layers=2", method="kd"), RESULT)
    assert "base_model" not in fresh and "cnn" in fresh["tags"]
    card = build_card(cnn, _cfg(teacher={"path": "org/teacher"}, student="cnn:layers=2", method="kd"), RESULT)
    assert "kd" in {o["name"] for o in front_matter(card)["layerkd"]["recipe"]["objectives"]}
    assert "load_model(MODEL_DIR)" in card  # not a transformers architecture: says how to load it

"""Safety: configs are data (never code), weights come from safetensors (legacy ``.bin`` only via
``torch.load(weights_only=True)``, with a warning), ``trust_remote_code`` is off unless asked for."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest
import torch

from clihelp import assert_user_error, run_cli
from layerkd import toy
from layerkd.config import read_yaml, validate_run_config
from layerkd.errors import ConfigError, LayerKDError, ModelError
from layerkd.models.load import load_model
from layerkd.tasks import task_from_config


@pytest.mark.parametrize("tag", [
    '!!python/object/apply:os.system ["touch {marker}"]',
    '!!python/object/new:subprocess.Popen [["touch", "{marker}"]]',
    '!!python/name:os.system',
    '!!python/module:os',
])
def test_yaml_tags_cannot_run_code(tmp_path, tag):
    marker = tmp_path / "pwned"
    p = tmp_path / "evil.yaml"
    p.write_text("task: " + tag.format(marker=marker) + "\n")
    with pytest.raises(ConfigError, match=r"evil\.yaml line 1: could not determine a constructor for the tag"):
        read_yaml(p)
    assert not marker.exists()


def test_config_values_are_plain_data():
    # a key that names a callable or a class is just an unknown key; strings stay strings
    with pytest.raises(ConfigError, match=r"__class__: unknown key"):
        validate_run_config({"task": "sst-2", "data": {"data_dir": "x"}, "model": "m", "__class__": "os.system"})
    cfg = validate_run_config({"task": "sst-2", "data": {"data_dir": "x"}, "model": "__import__('os').system('x')"})
    assert cfg.model == "__import__('os').system('x')"


@pytest.fixture()
def legacy_model(tmp_path, tiny_bert_dir) -> Path:
    """The tiny BERT re-saved as a legacy ``pytorch_model.bin`` (no safetensors)."""
    from transformers import BertForSequenceClassification

    d = tmp_path / "legacy"
    shutil.copytree(tiny_bert_dir, d)
    model = BertForSequenceClassification.from_pretrained(str(d))
    (d / "model.safetensors").unlink()
    torch.save(model.state_dict(), d / "pytorch_model.bin")  # what transformers < 4.35 wrote by default
    assert (d / "pytorch_model.bin").exists() and not list(d.glob("*.safetensors"))
    return d


def test_legacy_bin_loads_with_weights_only_and_a_warning(legacy_model, tiny_bert_dir, monkeypatch, caplog):
    calls = []
    real = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    task = task_from_config(toy.TOY_TASK)
    with caplog.at_level(logging.WARNING):
        model = load_model(legacy_model, task)
    assert calls and all(w is True for w in calls), calls
    assert "no safetensors weights; loading the legacy .bin file with torch.load(weights_only=True)" in caplog.text
    reference = load_model(tiny_bert_dir, task)
    for (k, a), (_, b) in zip(model.state_dict().items(), reference.state_dict().items(), strict=True):
        if "classifier" not in k:  # the head is newly initialised for an un-fine-tuned encoder
            torch.testing.assert_close(a, b, msg=k)


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {_Evil.marker}",))


def test_a_pickle_that_runs_code_is_refused(legacy_model, tmp_path):
    _Evil.marker = tmp_path / "pwned"
    state = torch.load(legacy_model / "pytorch_model.bin", weights_only=True)
    state["evil"] = _Evil()
    torch.save(state, legacy_model / "pytorch_model.bin")
    with pytest.raises(ModelError, match=r"cannot load a sequence-classification model from .*legacy"):
        load_model(legacy_model, task_from_config(toy.TOY_TASK))
    assert not _Evil.marker.exists()


def test_checkpoint_states_load_with_weights_only(tmp_path, monkeypatch):
    from torch import nn

    from layerkd import checkpoint as ckpt

    model = nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters())
    ckpt.save_checkpoint(tmp_path / "step-0000001", model=model, objectives=nn.Module(), optimizer_state=opt.state_dict(),
                         scheduler_state={}, state={})
    calls = []
    real = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: calls.append(k.get("weights_only")) or real(*a, **k))
    ckpt.load_checkpoint(tmp_path / "step-0000001")
    assert calls == [True, True]


def test_trust_remote_code_is_off_by_default_and_passed_only_when_enabled(tiny_bert_dir, tmp_path, monkeypatch, capsys):
    import transformers

    seen: list[tuple[str, object]] = []

    class Stop(LayerKDError):
        pass

    def recorder(name):
        def from_pretrained(*args, **kwargs):
            seen.append((name, kwargs.get("trust_remote_code", "absent")))
            raise Stop(f"stopped at {name}")
        return from_pretrained

    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", recorder("AutoConfig"))
    assert validate_run_config({"task": "sst-2", "data": {"data_dir": "x"}, "model": "m"}).trust_remote_code is False
    data = tmp_path / "glue" / "SST-2"
    data.mkdir(parents=True)
    for split in ("train", "dev"):
        (data / f"{split}.tsv").write_text("sentence\tlabel\nthe movie was good\t1\n")
    base = ["finetune", "--model", tiny_bert_dir, "--task", "sst-2", "--data-dir", data.parent]
    code, _, err = run_cli(*base, "--output-dir", tmp_path / "a", capsys=capsys)
    assert_user_error(code, err, "stopped at AutoConfig")
    assert seen == [("AutoConfig", False)]
    code, _, err = run_cli(*base, "--output-dir", tmp_path / "b", "--trust-remote-code", capsys=capsys)
    assert_user_error(code, err, "stopped at AutoConfig")
    assert seen[-1] == ("AutoConfig", True)
    # the model and tokenizer loaders get the same flag as the config loader
    seen.clear()
    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", lambda *a, **k: seen.append(("AutoConfig", k["trust_remote_code"]))
                        or transformers.BertConfig.from_pretrained(str(tiny_bert_dir)))
    monkeypatch.setattr(transformers.AutoModelForSequenceClassification, "from_pretrained", recorder("AutoModel"))
    with pytest.raises(Stop):
        load_model(tiny_bert_dir, task_from_config(toy.TOY_TASK))
    assert seen == [("AutoConfig", False), ("AutoModel", False)]

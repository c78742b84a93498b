"""How a model's classifier pooling travels with a saved directory, and comes back from it.

A mean-pooled model must reproduce its pooling wherever it is loaded, and never silently fall back
to [CLS] (issue 20). layerkd uses Hugging Face's own route for code that is not in
``transformers``, custom code:

* **Saving** (:func:`finish_save`, after ``save_pretrained``). A ``mean`` model of a hooked family
  (BERT, RoBERTa, ELECTRA, DeBERTa, ALBERT, DistilBERT …: the keys of
  :data:`~layerkd.models.hf_template.mean_pooling.STRATEGY`) gets ``model_type:
  layerkd-mean-<type>``, ``architectures: [LayerkdMean<Family>ForSequenceClassification]``, an
  ``auto_map`` for ``AutoConfig`` and ``AutoModelForSequenceClassification`` and
  ``layerkd_pooling: mean`` in config.json, and :data:`MODELING_FILE` next to it: the package's
  :mod:`~layerkd.models.hf_template.mean_pooling` (self-contained: torch and transformers only)
  plus three lines naming the family's classes. The weight names are the family's own. A ``cls``
  model is saved exactly as Hugging Face saves it; ModernBERT keeps its native
  ``classifier_pooling`` option, which plain ``transformers`` reproduces.
* **Plain transformers**: ``AutoModelForSequenceClassification.from_pretrained(d)`` fails with
  transformers' "contains custom code … trust_remote_code=True" error; with
  ``trust_remote_code=True`` it builds the file's classes and reproduces the logits exactly
  (tested). ``BertForSequenceClassification.from_pretrained(d)`` (the base class, named
  explicitly) loads the same weights into a [CLS] classifier: an explicit choice, with
  transformers' warning about the model type.
* **layerkd** never executes a directory's file: :func:`register_saved_type` (called before
  loading) registers the same classes, built from the package's copy of the template, under
  ``layerkd-mean-<type>`` with ``AutoConfig``/``AutoModelForSequenceClassification``, so
  ``trust_remote_code`` stays off. The older format (``model_type: bert`` + ``layerkd_pooling:
  mean``, which plain transformers reads as [CLS]) still loads as mean in layerkd; loading it and
  saving it again (``TransformerClassifier.from_pretrained(old).save_pretrained(new)``) converts it.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from pathlib import Path

from torch import nn

from .. import jsonio
from ..checkpoint import atomic_write_text
from .classifier_pooling import CONFIG_KEY, get_pooling, model_type
from .hf_template import mean_pooling
from .hf_template.mean_pooling import MODEL_TYPE_PREFIX, STRATEGY

MODELING_FILE = "modeling_layerkd_pooling.py"  # written next to config.json
_MODULE = MODELING_FILE.removesuffix(".py")


def class_names(base_type: str) -> tuple[str, str]:
    """The family's config and sequence-classification class names (``BertConfig``, ``BertForSequenceClassification``)."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES  # noqa: PLC0415
    from transformers.models.auto.modeling_auto import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES  # noqa: PLC0415

    return CONFIG_MAPPING_NAMES[base_type], MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES[base_type]


def modeling_source(base_type: str) -> str:
    """The text of :data:`MODELING_FILE` for a mean-pooled ``base_type`` classifier."""
    config_name, model_name = class_names(base_type)
    template = resources.files(mean_pooling.__package__).joinpath("mean_pooling.py").read_text(encoding="utf-8")
    return template.rstrip("\n") + f'''


# ---------------------------------------------------------------- written by layerkd for this model
# the classes that config.json's auto_map names: {model_name} reading the masked mean
from transformers import {config_name}, {model_name}  # noqa: E402

LayerkdMean{config_name}, LayerkdMean{model_name} = mean_pooled_classes(
    "{base_type}", {config_name}, {model_name})
'''


def finish_save(hf_model: nn.Module, out_dir: str | Path) -> None:
    """Make a directory ``hf_model.save_pretrained`` just wrote carry the model's classifier pooling."""
    out = Path(out_dir)
    path = out / "config.json"
    data = jsonio.loads(path.read_text(encoding="utf-8"))
    base = model_type(hf_model)
    code = out / MODELING_FILE
    mean = get_pooling(hf_model) == "mean" and base in STRATEGY
    if mean:
        config_name, model_name = class_names(base)
        atomic_write_text(code, modeling_source(base))  # before the config that names it
        data.update(model_type=MODEL_TYPE_PREFIX + base, architectures=[f"LayerkdMean{model_name}"],
                    auto_map={"AutoConfig": f"{_MODULE}.LayerkdMean{config_name}",
                              "AutoModelForSequenceClassification": f"{_MODULE}.LayerkdMean{model_name}"})
        data[CONFIG_KEY] = "mean"
    else:
        code.unlink(missing_ok=True)  # only ever our own file name (from an earlier save there)
        ours = str(data.get("model_type", "")).startswith(MODEL_TYPE_PREFIX)
        if not ours and CONFIG_KEY not in data:
            return  # a plain Hugging Face directory, left exactly as transformers wrote it
        data.pop(CONFIG_KEY, None)
        if ours:  # e.g. a cls student cut from a mean-pooled teacher: the family's own config again
            data["model_type"] = base
            data["architectures"] = [class_names(base)[1]]
            auto_map = {k: v for k, v in (data.get("auto_map") or {}).items() if not str(v).startswith(f"{_MODULE}.")}
            data.pop("auto_map", None)
            if auto_map:
                data["auto_map"] = auto_map
    atomic_write_text(path, jsonio.dumps(data, indent=2, sort_keys=True) + "\n")


@functools.cache
def register(base_type: str) -> tuple[type, type]:
    """Register the mean-pooled ``base_type`` classes with transformers' Auto classes (in-process, once)."""
    import transformers  # noqa: PLC0415

    config_name, model_name = class_names(base_type)
    config_cls, model_cls = mean_pooling.mean_pooled_classes(
        base_type, getattr(transformers, config_name), getattr(transformers, model_name))
    setattr(mean_pooling, config_cls.__name__, config_cls)  # importable by name (pickling)
    setattr(mean_pooling, model_cls.__name__, model_cls)
    transformers.AutoConfig.register(config_cls.model_type, config_cls, exist_ok=True)
    transformers.AutoModelForSequenceClassification.register(config_cls, model_cls, exist_ok=True)
    return config_cls, model_cls


def _config_model_type(where: str) -> str:
    local = Path(where)
    try:
        if local.is_dir():
            data = json.loads((local / "config.json").read_text(encoding="utf-8"))
        else:  # a hub id: the same lookup AutoConfig makes (cached), errors left to the loader
            from transformers import PretrainedConfig  # noqa: PLC0415

            data, _ = PretrainedConfig.get_config_dict(where)
    except Exception:  # noqa: BLE001 - an unreadable config is reported by the loader itself
        return ""
    return str(data.get("model_type", "")) if isinstance(data, dict) else ""


def register_saved_type(where: str | Path) -> None:
    """Before loading ``where``: register layerkd's classes if its config.json names a
    ``layerkd-mean-<type>`` model type (an unknown family is left to transformers' own error)."""
    kind = _config_model_type(str(where))
    base = kind[len(MODEL_TYPE_PREFIX):]
    if kind.startswith(MODEL_TYPE_PREFIX) and base in STRATEGY:
        register(base)

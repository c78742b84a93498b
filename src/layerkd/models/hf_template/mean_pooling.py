"""Mean pooling for a Hugging Face sequence classifier whose head reads the [CLS] position.

layerkd (a Python library for distilling text classifiers) trained this model with ``--pooling mean``:
its classification head (the family's own modules and weights) reads the masked mean of the final
token states instead of position 0. This file makes plain ``transformers`` reproduce that:
``AutoModelForSequenceClassification.from_pretrained(directory, trust_remote_code=True)`` builds
the classes defined at the end of this file, which are the family's own config and
``ForSequenceClassification`` classes plus the hooks below (same parameter names, so the weights
also load into the base class — which would then read [CLS], i.e. compute something else).

How the hooks work (nothing else changes; the per-layer ``hidden_states`` are untouched):

* a forward pre-hook on the whole model records the attention mask of the call (popped again by a
  forward hook that always runs), so padding is left out of the mean;
* per family, where the head takes the states: a pre-hook on the head module (RoBERTa, ELECTRA,
  DeBERTa, MPNet …) replaces position 0 of its input by the masked mean; for the families whose
  pooler runs inside the base model (BERT, ALBERT) a hook on the base model recomputes
  ``pooler_output`` from the mean; DistilBERT's base-model output gets a new ``last_hidden_state``.

Self-contained on purpose: it imports only the standard library, ``torch`` and ``transformers``.
layerkd imports this same module for its own hooks, so the pooling a model is trained with and
the pooling this file reproduces are one piece of code.
"""

from __future__ import annotations

import contextvars

import torch
from torch import nn

MODEL_TYPE_PREFIX = "layerkd-mean-"  # config.json's model_type of a saved mean-pooled model: prefix + base type

# base model type -> (strategy, module name): "head" = pre-hook on that module of the model (its
# input is the [B, T, d] final states); "pooler" = recompute the base model's pooler_output;
# "base" = replace the base model's last_hidden_state (DistilBERT: the head indexes it directly)
STRATEGY = {
    "bert": ("pooler", ""), "ernie": ("pooler", ""), "albert": ("pooler", ""),
    "roberta": ("head", "classifier"), "xlm-roberta": ("head", "classifier"), "camembert": ("head", "classifier"),
    "electra": ("head", "classifier"), "mpnet": ("head", "classifier"),
    "deberta": ("head", "pooler"), "deberta-v2": ("head", "pooler"),
    "distilbert": ("base", ""),
}

_MASKS: contextvars.ContextVar[tuple[torch.Tensor | None, ...]] = contextvars.ContextVar("layerkd_masks", default=())


def masked_mean(states: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``states[B, T, d]`` over the tokens where ``mask[B, T]`` is 1."""
    if mask is None:
        return states.mean(dim=-2)
    m = mask.to(states.dtype).unsqueeze(-1)
    return (states * m).sum(dim=-2) / m.sum(dim=-2).clamp_min(1.0)


def _record_mask(module: nn.Module, args: tuple, kwargs: dict) -> None:
    mask = kwargs.get("attention_mask")
    if mask is None and len(args) > 1 and isinstance(args[1], torch.Tensor):
        mask = args[1]
    _MASKS.set((*_MASKS.get(), mask if mask is None or mask.dim() == 2 else None))


def _forget_mask(module: nn.Module, args: tuple, kwargs: dict, output) -> None:
    _MASKS.set(_MASKS.get()[:-1])


def _mean(states: torch.Tensor) -> torch.Tensor:
    stack = _MASKS.get()
    return masked_mean(states, stack[-1] if stack else None)


def _with_mean_first(states: torch.Tensor) -> torch.Tensor:
    """A new tensor: ``states`` with position 0 replaced by the masked mean."""
    return torch.cat([_mean(states).unsqueeze(1), states[:, 1:]], dim=1)


def _head_pre_hook(module: nn.Module, args: tuple):
    return (_with_mean_first(args[0]), *args[1:])


def _pooler_hook(module: nn.Module, args: tuple, output):
    states = output[0] if isinstance(output, tuple) else output.last_hidden_state
    pooler = module.pooler
    if isinstance(pooler, nn.Linear):  # ALBERT: pooler(states[:, 0]) then its own activation
        pooled = module.pooler_activation(pooler(_mean(states)))
    else:  # BERT-style pooler module reading position 0 of the states it is given
        pooled = pooler(_with_mean_first(states))
    if isinstance(output, tuple):
        return (output[0], pooled, *output[2:])
    output.pooler_output = pooled
    return output


def _base_hook(module: nn.Module, args: tuple, output):
    if isinstance(output, tuple):
        return (_with_mean_first(output[0]), *output[1:])
    output.last_hidden_state = _with_mean_first(output.last_hidden_state)
    return output


HOOKS = (_record_mask, _forget_mask, _head_pre_hook, _pooler_hook, _base_hook)


def remove_mean_pooling(model: nn.Module) -> None:
    """Take this file's hooks off every module of ``model`` (its head reads [CLS] again)."""
    for module in model.modules():
        for hooks in (module._forward_pre_hooks, module._forward_hooks):
            for key in [k for k, fn in hooks.items() if fn in HOOKS]:
                del hooks[key]
                module._forward_pre_hooks_with_kwargs.pop(key, None)
                module._forward_hooks_with_kwargs.pop(key, None)
                module._forward_hooks_always_called.pop(key, None)


def install_mean_pooling(model: nn.Module, base_type: str) -> None:
    """Make the classifier of ``model`` (a ``<family>ForSequenceClassification`` of model type
    ``base_type``, a key of ``STRATEGY``) read the masked mean of the final token states."""
    strategy, name = STRATEGY[base_type]
    remove_mean_pooling(model)
    model.register_forward_pre_hook(_record_mask, with_kwargs=True)
    model.register_forward_hook(_forget_mask, with_kwargs=True, always_call=True)
    if strategy == "head":
        getattr(model, name).register_forward_pre_hook(_head_pre_hook)
    else:
        model.base_model.register_forward_hook(_pooler_hook if strategy == "pooler" else _base_hook)


def mean_pooled_classes(base_type: str, config_base: type, model_base: type) -> tuple[type, type]:
    """The config and model classes of a mean-pooled ``base_type`` classifier: the family's own
    classes, model type ``layerkd-mean-<base_type>``, the hooks installed when a model is built."""
    model_type = MODEL_TYPE_PREFIX + base_type

    config_cls = type("LayerkdMean" + config_base.__name__, (config_base,), {
        "model_type": model_type, "__module__": __name__,
        "__doc__": f"{config_base.__name__} of a classifier that reads the masked mean of the token states."})

    def __init__(self, config, *args, **kwargs):
        model_base.__init__(self, config, *args, **kwargs)
        install_mean_pooling(self, base_type)

    model_cls = type("LayerkdMean" + model_base.__name__, (model_base,), {
        "config_class": config_cls, "__init__": __init__, "__module__": __name__,
        "__doc__": f"{model_base.__name__} whose head reads the masked mean of the final token states."})
    return config_cls, model_cls

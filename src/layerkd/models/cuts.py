"""What cutting a Hugging Face encoder into fewer blocks means for each family.

``layers:``/``bottom:`` students keep some of the teacher's blocks; ``config:`` students are a fresh
model of the teacher's family with another depth and width. Beyond the block list itself, some
families keep per-layer facts elsewhere, and a student must carry them consistently — and must load
back from its saved directory exactly as it was trained:

* **Per-layer config lists** (:data:`PER_LAYER_FIELDS`; ModernBERT's ``layer_types``, full or
  sliding-window attention per block): a cut keeps the entries of its kept blocks, in their order; a
  ``config:`` student repeats the teacher's pattern (its shortest period) over its own depth.
* **Shared blocks** (ALBERT: ``num_hidden_groups`` groups of weights, shared by consecutive layers).
  With one group (every released ALBERT) all layers are the same block, so ``layers:2,4`` is that
  block applied twice, the same student as ``bottom:2``; with one group per layer the groups are cut
  like blocks; other groupings are refused (a cut would have to split a group).
* **Position-dependent blocks** (ModernBERT's first block has no attention pre-norm: the embedding
  norm serves): when a cut puts another block first, that block's attention norm is dropped, since
  the family's architecture has none there and the saved student would not load back with it; a cut
  that puts the first block elsewhere is refused (the norm it would need has no trained weights).

* **Fields named otherwise** (``config:`` students): DistilBERT's feed-forward width is ``hidden_dim``
  (:data:`INTERMEDIATE_ATTR`); DeBERTa's context pooler has its own width, ``pooler_hidden_size``,
  which follows the model's (:data:`WIDTH_FIELDS`).

After a cut, :func:`check_loadable` builds the family's model for the new config on the ``meta``
device (no memory) and compares parameter names and shapes, so a family with per-layer structure that
layerkd does not know about fails here with a message instead of saving a student that reloads
differently.
"""

from __future__ import annotations

import copy
import logging

import torch
from torch import nn

from ..errors import ModelError

log = logging.getLogger(__name__)

#: config fields holding one entry per block
PER_LAYER_FIELDS = ("layer_types",)

#: config attribute of the feed-forward width where a family does not call it ``intermediate_size``
INTERMEDIATE_ATTR = {"distilbert": "hidden_dim"}


def find_layer_list(model: nn.Module, num_layers: int) -> tuple[nn.Module, str, nn.ModuleList]:
    """The ModuleList holding the encoder blocks (BERT/RoBERTa ``encoder.layer``, DistilBERT
    ``transformer.layer`` …): the first ModuleList with ``num_layers`` entries."""
    for _name, module in model.named_modules():
        for child_name, child in module.named_children():
            if isinstance(child, nn.ModuleList) and len(child) == num_layers and num_layers > 0:
                return module, child_name, child
    raise ModelError(f"cannot find the {num_layers} encoder blocks in {type(model).__name__}")


def _slice_per_layer(config, layers: list[int], n: int) -> None:
    for name in PER_LAYER_FIELDS:
        values = getattr(config, name, None)
        if isinstance(values, (list, tuple)) and len(values) == n:
            setattr(config, name, [values[i - 1] for i in layers])


def _period(values: list) -> int:
    return next(p for p in range(1, len(values) + 1) if all(v == values[i % p] for i, v in enumerate(values)))


def resize_config(config, layers: int) -> None:
    """A ``config:`` student's depth: per-layer lists follow the teacher's pattern, shared groups fit."""
    n = int(config.num_hidden_layers)
    for name in PER_LAYER_FIELDS:
        values = getattr(config, name, None)
        if isinstance(values, (list, tuple)) and len(values) == n:
            p = _period(list(values))
            setattr(config, name, [values[i % p] for i in range(layers)])
    groups = getattr(config, "num_hidden_groups", None)
    if groups is not None:  # ALBERT: one group per layer stays so, otherwise at most one group per layer
        config.num_hidden_groups = layers if groups == n else min(int(groups), layers)
    config.num_hidden_layers = layers


#: config fields that default to the model's width and must follow a ``config:`` student's own
WIDTH_FIELDS = ("pooler_hidden_size",)  # DeBERTa's context pooler


def set_width(config, width: int) -> None:
    old = int(config.hidden_size)
    for name in WIDTH_FIELDS:
        if getattr(config, name, None) == old:
            setattr(config, name, width)
    config.hidden_size = width


def set_intermediate(config, width: int) -> None:
    setattr(config, INTERMEDIATE_ATTR.get(str(config.model_type).removeprefix("layerkd-mean-"), "intermediate_size"),
            width)


def _cut_albert(hf: nn.Module, layers: list[int], n: int) -> bool:
    """ALBERT's shared groups; ``False`` when the model has none (the generic cut applies)."""
    groups = getattr(hf.config, "num_hidden_groups", None)
    if groups is None or groups == n:
        return False
    if groups != 1:
        raise ModelError(f"student layers: this model shares {groups} groups of block weights over {n} layers; a cut "
                         "would split a group (supported: one group, or one group per layer); use a config: student")
    hf.config.num_hidden_layers = len(layers)  # the one shared block, applied len(layers) times
    return True


def _fit_block(fresh: nn.Module, block: nn.Module, position: int, teacher_block: int) -> None:
    """Where the family has no module at this position (``nn.Identity``), drop the cut block's."""
    ours = dict(block.named_modules())
    for name, module in fresh.named_modules():
        mine = ours.get(name)
        if mine is None or type(mine) is type(module):
            continue
        if isinstance(module, nn.Identity) and any(True for _ in mine.parameters()):
            parent, _, attr = name.rpartition(".")
            setattr(block.get_submodule(parent) if parent else block, attr, nn.Identity())
            log.info("student layers: the family's block %d has no %s; teacher block %d's is dropped", position + 1,
                     name, teacher_block)
        elif isinstance(mine, nn.Identity):
            raise ModelError(f"student layers: the teacher's block {teacher_block} has no {name} (only the family's first "
                             f"block goes without it), so it cannot be student block {position + 1}; keep it first or "
                             "leave it out")


def cut_blocks(hf: nn.Module, layers: list[int], n: int) -> None:
    """Keep ``layers`` (1-based, in that order) of ``hf``'s ``n`` blocks, in place."""
    if not _cut_albert(hf, layers, n):
        parent, attr, blocks = find_layer_list(hf, n)
        kept = nn.ModuleList([blocks[i - 1] for i in layers])
        for new_idx, block in enumerate(kept):  # keep per-layer indices consistent where models store them
            for mod in block.modules():
                if hasattr(mod, "layer_idx"):
                    mod.layer_idx = new_idx
        setattr(parent, attr, kept)
        _slice_per_layer(hf.config, layers, n)
        hf.config.num_hidden_layers = len(layers)
        if getattr(hf.config, "num_hidden_groups", None) == n:  # ALBERT with one group per layer
            hf.config.num_hidden_groups = len(layers)
        fresh_blocks = find_layer_list(_meta_model(hf), len(layers))[2]
        for new_idx, (fresh, block) in enumerate(zip(fresh_blocks, kept, strict=True)):
            _fit_block(fresh, block, new_idx, layers[new_idx])
    check_loadable(hf)


def _meta_model(hf: nn.Module) -> nn.Module:
    with torch.device("meta"):
        return type(hf)._from_config(copy.deepcopy(hf.config), attn_implementation="eager")


def check_loadable(hf: nn.Module) -> None:
    """The student's parameters are exactly those its family builds from its config (so the saved
    directory loads back into the same model)."""
    want = {k: tuple(v.shape) for k, v in _meta_model(hf).state_dict().items()}
    have = {k: tuple(v.shape) for k, v in hf.state_dict().items()}
    extra, missing = sorted(set(have) - set(want)), sorted(set(want) - set(have))
    wrong = sorted(k for k in set(have) & set(want) if have[k] != want[k])
    if extra or missing or wrong:
        what = (f"has {extra[0]} which the family does not build" if extra else
                f"lacks {missing[0]}" if missing else f"{wrong[0]} has shape {have[wrong[0]]}, not {want[wrong[0]]}")
        raise ModelError(f"student layers: the cut {type(hf).__name__} {what} for its new config; this family keeps "
                         "per-layer structure layerkd cannot cut: use a config: student")

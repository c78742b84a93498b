"""Label order: a model's output ``i`` means the label its config names ``i``; the task has its own order.

Rules (applied by :func:`align_labels` whenever :func:`layerkd.models.load.load_model` loads a
model for a task — the teacher, a student given as a path, the model ``finetune`` starts from,
a TAKD assistant, the model ``evaluate`` scores):

* **Same names, same order** (the usual case): nothing happens.
* **Same names, another order** (a teacher ``{0: neg, 1: pos}`` under a task listing
  ``[pos, neg]``): the model is reordered into the task's order, by name. Names are compared
  after stripping spaces and ignoring case (``POSITIVE`` = ``positive``).
* **Generic names** (Hugging Face's defaults ``LABEL_0``, ``LABEL_1`` … at their own index mean
  "no names"): the position is all there is, and it is trusted.
* **Anything else** (other names, a different set: an MRPC model with labels ``0``/``1`` scored
  as RTE, ``entailment``/``not_entailment``): a :class:`~layerkd.errors.ModelError`, one line,
  exit code 2. Logits are never compared by position when the names disagree.

Where the permutation is applied: **once, in the model's output layer**, at load time. The rows
of the final linear layer (weight and bias) are permuted and the model's label names
(``config.id2label``/``label2id``, or ``labels`` of a BiLSTM/CNN) are set to the task's order.
From then on the model *is* a task-ordered model, so every consumer agrees without knowing about
it: the live teacher's Trace, the teacher-output cache (built from that Trace; the teacher's
fingerprint covers the permuted weights and names, so entries of the two orders never mix),
teacher pseudo-classifier heads (fitted on gold labels, so already in the task's order),
evaluation, and a student cut from the teacher (it inherits the reordered classifier). A
student saved after training carries the task's order in its own config.

The output layer is found as the last ``nn.Linear`` with one output per label, and checked by
one tiny forward pass: its output must be exactly the model's logits. A model whose logits do
not come straight out of such a layer cannot be reordered and is refused with a message.
"""

from __future__ import annotations

import logging
import re

import torch
from torch import nn

from ..errors import ModelError

log = logging.getLogger("layerkd")

_GENERIC = re.compile(r"LABEL_(\d+)")


def _norm(name: str) -> str:
    return str(name).strip().casefold()


def is_generic(names: tuple[str, ...] | list[str]) -> bool:
    """Hugging Face's placeholder names, ``LABEL_i`` at index ``i``: no real names."""
    for i, n in enumerate(names):
        m = _GENERIC.fullmatch(str(n).strip())
        if m is None or int(m.group(1)) != i:
            return False
    return True


def model_label_names(model: nn.Module) -> tuple[str, ...] | None:
    """The label of each output of ``model`` (None: the model does not name them)."""
    cfg = getattr(model, "config", None)
    if isinstance(cfg, dict):  # BiLSTM/CNN (layerkd_model.json)
        labels = cfg.get("labels")
        return None if labels is None else tuple(str(x) for x in labels)
    id2label = getattr(cfg, "id2label", None)
    n = getattr(cfg, "num_labels", None)
    if not id2label or n is None:
        return None
    id2label = {int(k): v for k, v in id2label.items()}
    if set(id2label) != set(range(int(n))):
        return None
    return tuple(str(id2label[i]) for i in range(int(n)))


def label_permutation(model_names, task_names, *, task: str, where: str) -> list[int] | None:
    """``perm`` with ``logits[:, perm]`` in the task's order; None when nothing is to be done
    (same order, generic model names, or nothing to compare). Raises when the names disagree."""
    if model_names is None or task_names is None or len(model_names) != len(task_names):
        return None  # regression, unnamed, or a count mismatch (reported by the loaders)
    m = [_norm(x) for x in model_names]
    t = [_norm(x) for x in task_names]
    if m == t:
        return None
    if len(set(m)) == len(m) and sorted(m) == sorted(t):
        return [m.index(x) for x in t]
    if is_generic(model_names):
        return None
    raise ModelError(
        f"{where}: the model's labels {list(model_names)} do not match task {task}'s labels {list(task_names)} "
        "(matched by name, in any order); was the model trained for another task?"
    )


def _output_layer(model: nn.Module, num_labels: int, where: str) -> nn.Linear:
    """The linear layer whose output is the model's logits (checked by one tiny forward pass)."""
    candidates = [m for m in model.modules() if isinstance(m, nn.Linear) and m.out_features == num_labels]
    layer = candidates[-1] if candidates else None
    seen: list[torch.Tensor] = []
    if layer is not None:
        device = next(model.parameters()).device
        inputs = {"input_ids": torch.zeros(1, 2, dtype=torch.long, device=device),
                  "attention_mask": torch.ones(1, 2, dtype=torch.long, device=device)}
        hook = layer.register_forward_hook(lambda _m, _i, out: seen.append(out.detach()))
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                logits = model(inputs).require_logits()
        finally:
            hook.remove()
            model.train(was_training)
        if len(seen) == 1 and seen[0].shape == logits.shape and torch.equal(seen[0], logits):
            return layer
    raise ModelError(f"{where}: its labels are in another order than the task's, and its output layer cannot be "
                     "found to reorder them; re-save the model with the task's label order")


def align_labels(model: nn.Module, task, *, where: str) -> list[int] | None:
    """Reorder ``model``'s outputs into ``task``'s label order (see the module docstring).
    Returns the permutation applied (None: none was needed)."""
    if task is None or task.labels is None:
        return None
    names = model_label_names(model)
    perm = label_permutation(names, task.labels, task=task.name, where=where)
    if perm is None:
        return None
    layer = _output_layer(model, len(perm), where)
    index = torch.tensor(perm, device=layer.weight.device)
    with torch.no_grad():
        layer.weight.copy_(layer.weight.index_select(0, index))
        if layer.bias is not None:
            layer.bias.copy_(layer.bias.index_select(0, index))
    cfg = model.config
    if isinstance(cfg, dict):
        cfg["labels"] = list(task.labels)
    else:
        cfg.id2label = dict(enumerate(task.labels))
        cfg.label2id = {n: i for i, n in enumerate(task.labels)}
    log.info("%s: outputs reordered from the model's labels %s to task %s's order %s", where, list(names), task.name,
             list(task.labels))
    return perm

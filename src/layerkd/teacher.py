"""Teacher sources: where a batch's teacher Trace comes from.

* :class:`LiveTeacher` runs the frozen teacher under ``torch.inference_mode()`` and computes only
  what the active objectives need (no hidden states or attentions unless asked for; pseudo-
  classifier logits when heads are attached).
* :class:`~layerkd.teacher_cache.CachedTeacher` serves the student-independent signals (logits,
  pooled layer vectors, head logits) from a memory-mapped cache built once.

Tensors made under inference mode cannot take part in autograd, so the few outputs an objective
reads are cloned out of it (cheap next to the forward pass).
"""

from __future__ import annotations

import time
from typing import Protocol

import torch
from torch import nn

from .data.batching import Batch
from .models.heads import LayerHeads
from .models.trace import Trace
from .objectives.base import Needs


class TeacherSource(Protocol):
    def trace(self, batch: Batch, needs: Needs) -> Trace: ...


def _clone(x):
    if x is None:
        return None
    if isinstance(x, tuple):
        return tuple(t.clone() for t in x)
    return x.clone()


class LiveTeacher:
    """The teacher model run on every batch (frozen, eval mode, inference mode)."""

    def __init__(self, model: nn.Module, heads: LayerHeads | None = None, role: str = "teacher"):
        self.model = model
        self.heads = heads
        self.role = role
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        if heads is not None:
            heads.eval()
            for p in heads.parameters():
                p.requires_grad_(False)

    def to(self, device) -> LiveTeacher:
        self.model.to(device)
        if self.heads is not None:
            self.heads.to(device)
        return self

    def trace(self, batch: Batch, needs: Needs) -> Trace:
        want = needs.teacher
        hidden = bool(want & {"layer_vectors", "hidden_states", "head_logits"})
        with torch.inference_mode():
            t = self.model(batch.inputs[self.role], hidden_states=hidden, attentions="attentions" in want)
            pooled = {p: t.layer_vectors(p) for p in needs.teacher_poolings} if "layer_vectors" in want else {}
            head_logits = None
            if "head_logits" in want:
                if self.heads is None:
                    raise RuntimeError("an objective needs teacher pseudo-classifier logits but no heads are attached")
                head_logits = self.heads(t.layer_vectors(self.heads.pooling))
        return Trace(
            logits=_clone(t.logits),
            attention_mask=t.attention_mask,
            hidden_states=_clone(t.hidden_states) if "hidden_states" in want else None,
            attentions=_clone(t.attentions) if "attentions" in want else None,
            pooled={k: v.clone() for k, v in pooled.items()},
            head_logits=_clone(head_logits),
            head_layers=self.heads.layers if self.heads is not None else (),
            sentence_pooling=t.sentence_pooling,
            source="teacher (live)",
        )


class TeacherProvider:
    """Chooses, per recipe phase and per dataset, where the teacher's signals come from.

    A phase whose teacher needs are all cacheable (logits, pooled layer vectors, head logits) is
    served from the memory-mapped cache when caching is enabled; a phase needing all-token
    states or attention maps runs the teacher live. Sources are made once and reused.

    Mixed recipes run live only what they must, phase by phase: in internal KD's schedule the
    attention stages run the teacher live and the final soft-label phase reads the cache. Within
    one live phase everything comes from that live pass — the logits, pooled vectors and head
    logits it yields along the way cost next to nothing, while serving them from the cache would
    first cost a whole extra teacher pass to build it. The live pass asks the model only for
    what the phase needs (hidden states only for all-token states, layer vectors or heads;
    attention maps only when an objective compares them).
    """

    def __init__(self, model: nn.Module, heads: LayerHeads | None = None, *, cache=None):
        self.model = model
        self.heads = heads
        self.cache = cache  # a layerkd.teacher_cache.TeacherCache or None (caching off)
        self._live: LiveTeacher | None = None
        self._sources: dict[tuple, TeacherSource] = {}
        self.decisions: list[dict] = []

    def live(self, device) -> LiveTeacher:
        if self._live is None:
            self._live = LiveTeacher(self.model, self.heads).to(device)
        return self._live

    def source(self, needs: Needs, device, data) -> TeacherSource:
        cached = self.cache is not None and needs.teacher_cacheable
        key = (cached, data.fingerprint, data.max_length, len(data), needs.teacher, needs.teacher_poolings)
        if key not in self._sources:
            decision = {"split": data.split.name, "mode": "cache" if cached else "live",
                        "needs": sorted(needs.teacher), "poolings": sorted(needs.teacher_poolings)}
            if cached:
                before, t0 = len(self.cache.built), time.perf_counter()
                src = self.cache.source(self.model, self.heads, data, needs, device)
                # seconds to open (and, where entries were missing, build) this split's entries
                decision.update(built=self.cache.built[before:], seconds=round(time.perf_counter() - t0, 3))
            else:
                src = self.live(device)
            self._sources[key] = src
            self.decisions.append(decision)
        return self._sources[key]

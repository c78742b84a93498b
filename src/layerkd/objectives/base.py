"""The objective contract.

An objective is an ``nn.Module`` that owns its trainable pieces (projections, student heads),
declares what it needs from the student's and the teacher's Trace, checks the teacher/student
pair before training, and computes a loss from two Traces — never from a model.

Needs vocabulary (for ``Needs.student`` / ``Needs.teacher``):

``logits``, ``layer_vectors`` (pooled per layer; poolings in ``Needs.poolings``),
``hidden_states`` (all tokens, every layer), ``attentions`` (probabilities), ``head_logits``
(teacher pseudo classifiers), ``labels`` (gold labels in the batch).

Teacher needs other than ``hidden_states`` and ``attentions`` do not depend on the student and
can be served from the teacher cache.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from ..data.batching import Batch
from ..errors import PairError
from ..models.base import ModelInfo
from ..models.trace import Trace

LIVE_ONLY = frozenset({"hidden_states", "attentions"})


@dataclass(frozen=True)
class Needs:
    student: frozenset[str] = frozenset()
    teacher: frozenset[str] = frozenset()
    teacher_poolings: frozenset[str] = frozenset()
    token_aligned: bool = False  # teacher and student token positions must correspond
    same_heads: bool = False  # attention maps are compared head by head

    def __or__(self, other: Needs) -> Needs:
        return Needs(
            self.student | other.student,
            self.teacher | other.teacher,
            self.teacher_poolings | other.teacher_poolings,
            self.token_aligned or other.token_aligned,
            self.same_heads or other.same_heads,
        )

    @staticmethod
    def union(needs: Iterable[Needs]) -> Needs:
        """What a set of objectives needs together (one teacher pass serves them all)."""
        return functools.reduce(operator.or_, needs, Needs())

    @property
    def needs_teacher(self) -> bool:
        return bool(self.teacher)

    @property
    def teacher_cacheable(self) -> bool:
        """True when every teacher signal is independent of the student and small enough to cache."""
        return not (self.teacher & LIVE_ONLY)

    @property
    def student_hidden(self) -> bool:
        return bool(self.student & {"layer_vectors", "hidden_states"})


class Options(BaseModel):
    """Base of every objective's options: unknown keys are errors, types are strict (a bool is not
    an int, a float not an int) and every float is finite."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


@dataclass
class BuildContext:
    """What an objective may know when it is built (for projections and the pair check)."""

    student: ModelInfo
    teacher: ModelInfo | None
    num_labels: int
    regression: bool
    seed: int = 0
    teacher_head_layers: tuple[int, ...] = ()
    extras: dict[str, Any] = field(default_factory=dict)

    def require_teacher(self, who: str) -> ModelInfo:
        if self.teacher is None:
            raise PairError(f"{who} needs a teacher")
        return self.teacher


class Objective(nn.Module):
    """Base class. Subclasses set ``name``, ``summary``, ``Options`` and implement ``forward``."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    Options: ClassVar[type[Options]] = Options
    # cross-architecture: does this objective work when teacher and student token positions differ?
    requires_token_alignment: ClassVar[bool] = False

    def __init__(self, options: Options, ctx: BuildContext):
        super().__init__()
        self.options = options
        self.ctx = ctx

    # ---------------------------------------------------------------- contract
    @property
    def needs(self) -> Needs:
        raise NotImplementedError

    def forward(self, student: Trace, teacher: Trace | None, batch: Batch) -> torch.Tensor:
        raise NotImplementedError

    # ---------------------------------------------------------------- optional hooks
    def start_epoch(self, epoch: int, *, phase_epoch: int = 0, phase_epochs: int | None = None) -> dict[str, Any] | None:
        """Called at the start of every epoch (``epoch`` counts from 0 over the whole run,
        ``phase_epoch`` within the current phase of ``phase_epochs``); may return something to log
        (e.g. RAIL's draw)."""
        return None

    def start_step(self) -> None:
        """Called before every training step (e.g. RAIL's per-batch re-draw)."""
        return None

    def set_phase_options(self, **options: Any) -> None:
        """Phase-specific options (e.g. the active layers of a stacked schedule)."""
        if options:
            raise PairError(f"objective {self.name!r} takes no phase options (got {', '.join(options)})")

    def layer_weights(self, student: Trace, teacher: Trace) -> torch.Tensor | None:
        """Attention over teacher layers ``[B, m, n]`` for diagnostics (ALP, Universal-KD)."""
        return None

    def diagnostic_axes(self) -> dict[str, list[int]] | None:
        """Layer labels of :meth:`layer_weights`' axes: ``{"student": [...], "teacher": [...]}``."""
        return None

    # exact resume: objectives with state beyond parameters override these
    def extra_state_dict(self) -> dict[str, Any]:
        return {}

    def load_extra_state_dict(self, state: dict[str, Any]) -> None:
        return None

    @classmethod
    def schedule(
        cls, options: Options, key: str, weight: float, others: dict[str, float], ctx: BuildContext, total_epochs: int
    ) -> list[dict] | None:
        """Objectives that imply phases (stacked/progressive schedules, two-stage training) return
        phase specs (dicts in :class:`~layerkd.config.PhaseSpec` form) here. ``others`` maps the
        recipe's other objective keys to their weights. ``None`` means no schedule."""
        return None


def same_tokenizer(ctx: BuildContext) -> bool:
    return ctx.teacher is not None and ctx.teacher.tokenizer_fingerprint == ctx.student.tokenizer_fingerprint


def check_token_aligned(who: str, ctx: BuildContext) -> None:
    t = ctx.require_teacher(who)
    if t.kind != "transformer" or ctx.student.kind != "transformer":
        raise PairError(
            f"{who} compares token-aligned states/attention maps, which a {ctx.student.kind} student and a "
            f"{t.kind} teacher do not share; use a layer-vector or output-space method (pkd, alp, rail, ckd, universal)"
        )
    if not same_tokenizer(ctx):
        raise PairError(f"{who} needs teacher and student to share one tokenizer (token positions must align)")


def check_same_heads(who: str, ctx: BuildContext) -> None:
    t = ctx.require_teacher(who)
    if t.num_heads != ctx.student.num_heads:
        raise PairError(
            f"{who} compares attention maps head by head: teacher has {t.num_heads} heads, student {ctx.student.num_heads}"
        )


def check_layers_in_range(who: str, layers, num_layers: int, side: str, *, allow_zero: bool = False) -> None:
    lo = 0 if allow_zero else 1
    for i in layers:
        if not lo <= int(i) <= num_layers:
            raise PairError(f"{who}: {side} layer {i} is out of range {lo}..{num_layers}")

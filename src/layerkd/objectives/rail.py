"""``rail``: RAIL-KD, random intermediate layer mapping (Haidar et al., 2022).

Every epoch (or every batch, ``resample: batch``) m distinct teacher layers are drawn at random
from the pool and **sorted**; student layer i learns from the i-th drawn layer. Both sides are
mean-pooled per layer (padding masked), projected by trainable linear maps to a common width
(``proj_dim``), L2-normalised and compared by the squared Euclidean distance (summed over the
width, averaged over the batch).

* ``layerwise`` (RAIL-KD_l): one projection pair per student layer, distances summed over layers;
* ``concat`` (RAIL-KD_c): the m student vectors concatenated and projected once, likewise the m
  teacher vectors; a single distance.

The draw is seeded by (seed, epoch) — reproducible, logged every epoch (``log.jsonl``) and
saved in checkpoints. Choices (options): the pool is teacher layers 1..n (``teacher_pool:
intermediate`` drops layer n); all student layers 1..m take part (``student_layers:
intermediate`` uses 1..m−1); projections have no bias.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field
from torch import nn

from .. import layer_maps
from ..errors import PairError
from ._proj import PerLayer, linear
from .base import Needs, Objective, Options
from .functional import l2_normalize, squared_distance
from .registry import register


class RAILOptions(Options):
    variant: Literal["layerwise", "concat"] = "layerwise"
    resample: Literal["epoch", "batch"] = "epoch"
    pooling: Literal["mean", "cls"] = "mean"
    proj_dim: int = Field(128, ge=1, description="common width of the projections")
    normalize: bool = True
    student_layers: Literal["all", "intermediate"] = "all"
    teacher_pool: Literal["all", "intermediate"] = "all"
    seed: int | None = Field(None, description="draw seed (default: the run's seed)")
    center: bool = Field(False, description="subtract the batch mean of each side's pooled vectors before projecting "
                         "(removes the common component that lets the loss collapse; not in the paper)")
    teacher_projection: Literal["trainable", "fixed"] = Field(
        "trainable", description="train W_T (paper) or keep it at its random init (guards against collapse)")


@register
class RAILKD(Objective):
    name = "rail"
    summary = "m random sorted teacher layers re-drawn every epoch; mean-pooled, projected, L2-normalised; squared distance"
    Options = RAILOptions

    def __init__(self, options: RAILOptions, ctx):
        super().__init__(options, ctx)
        t = ctx.require_teacher("rail")
        m, n = ctx.student.num_layers, t.num_layers
        self.student_layers = list(range(1, m + 1)) if options.student_layers == "all" else list(range(1, m))
        self.pool = list(range(1, n + 1)) if options.teacher_pool == "all" else list(range(1, n))
        k = len(self.student_layers)
        if k == 0:
            raise PairError("rail: student_layers 'intermediate' leaves no layer for a 1-layer student")
        if k > len(self.pool):
            raise PairError(f"rail: cannot map {k} student layers to {len(self.pool)} distinct teacher layers")
        d_s, d_t, p = ctx.student.hidden_size, t.hidden_size, options.proj_dim
        if options.variant == "layerwise":
            self.proj_s: nn.Module = PerLayer(k, d_s, p)
            self.proj_t: nn.Module = PerLayer(k, d_t, p)
        else:
            self.proj_s = linear(k * d_s, p)
            self.proj_t = linear(k * d_t, p)
        if options.teacher_projection == "fixed":
            for p in self.proj_t.parameters():
                p.requires_grad_(False)
        self.seed = ctx.seed if options.seed is None else options.seed
        self.generator = torch.Generator().manual_seed(self.seed)
        self.draw: list[int] = layer_maps.random_sorted(self.pool, k, self.generator)
        self.history: dict[int, list[int]] = {}
        self.register_buffer("_s", torch.tensor(self.student_layers), persistent=False)

    @property
    def needs(self) -> Needs:
        return Needs(student=frozenset({"layer_vectors"}), teacher=frozenset({"layer_vectors"}),
                     teacher_poolings=frozenset({self.options.pooling}))

    # ------------------------------------------------------------------ the draw
    def _redraw(self) -> None:
        self.draw = layer_maps.random_sorted(self.pool, len(self.student_layers), self.generator)

    def start_epoch(self, epoch: int, **_: Any) -> dict[str, Any]:
        self.generator.manual_seed(self.seed * 1_000_003 + epoch)
        self._redraw()
        self.history[epoch] = list(self.draw)
        self._first_step = True  # the epoch's logged draw is used by its first batch
        return {"draw": list(self.draw), "resample": self.options.resample}

    _first_step = True

    def start_step(self) -> None:
        if self.options.resample == "batch" and not self._first_step:
            self._redraw()
        self._first_step = False

    def extra_state_dict(self) -> dict[str, Any]:
        return {"draw": self.draw, "generator": self.generator.get_state().tolist(), "first_step": self._first_step,
                "history": {str(k): v for k, v in self.history.items()}}

    def load_extra_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            return
        self.draw = [int(x) for x in state["draw"]]
        self.generator.set_state(torch.tensor(state["generator"], dtype=torch.uint8))
        self.history = {int(k): list(v) for k, v in state.get("history", {}).items()}
        self._first_step = bool(state.get("first_step", False))

    # ------------------------------------------------------------------ loss
    _draw_cache: tuple = ((), None)

    def _draw_index(self, device) -> torch.Tensor:
        """The draw as an index tensor, made once per draw (not a host→device copy every step)."""
        key, idx = self._draw_cache
        if key != (tuple(self.draw), str(device)):
            idx = torch.tensor(self.draw, device=device)
            self._draw_cache = ((tuple(self.draw), str(device)), idx)
        return idx

    def forward(self, student, teacher, batch) -> torch.Tensor:
        s = student.layer_vectors(self.options.pooling).index_select(1, self._s)
        idx = self._draw_index(s.device)
        t = teacher.layer_vectors(self.options.pooling).index_select(1, idx)
        if self.options.center:
            s, t = s - s.mean(dim=0, keepdim=True), t - t.mean(dim=0, keepdim=True)
        if self.options.variant == "layerwise":
            ps, pt = self.proj_s(s.float()), self.proj_t(t.float())
        else:
            ps, pt = self.proj_s(s.float().flatten(1)), self.proj_t(t.float().flatten(1))
        if self.options.normalize:
            ps, pt = l2_normalize(ps), l2_normalize(pt)
        if self.options.variant == "layerwise":
            return (ps.float() - pt.float()).pow(2).sum(dim=-1).mean(dim=0).sum()  # per-layer distance, summed
        return squared_distance(ps, pt)

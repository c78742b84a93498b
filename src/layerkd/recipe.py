"""Recipes: weighted objectives plus phases.

A recipe is a set of named objectives (each an ``nn.Module``) and a list of phases; each phase
says which objectives are active with which weights, their phase-specific options (e.g. the
layers of a stacked schedule) and how long it lasts — a fixed number of epochs, until a plateau
of its training loss, or (``epochs: null``) until the end of training.

``train.epochs`` is always the *total* budget: a schedule (stacked/progressive internal KD,
Annealing-KD) divides it, and the last open-ended phase takes whatever
the earlier phases left, so every method gets the same number of epochs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

import layerkd.objectives  # noqa: F401,E402  (registers every objective)

from .config import PhaseSpec, RecipeConfig
from .data.batching import Batch
from .errors import ConfigError
from .models.trace import Trace
from .objectives import registry as _registry  # noqa: F401
from .objectives.base import BuildContext, Needs, Objective
from .objectives.registry import build_objective, get_objective_class, parse_options


@dataclass
class Phase:
    name: str
    weights: dict[str, float]
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    epochs: int | None = None
    advance: str = "epochs"
    patience: int = 1
    min_delta: float = 0.01

    @property
    def active(self) -> list[str]:
        return [k for k, w in self.weights.items() if w > 0]


class Recipe(nn.Module):
    def __init__(self, objectives: dict[str, Objective], phases: list[Phase], total_epochs: int):
        super().__init__()
        if not phases:
            raise ConfigError("recipe: no phases")
        self.objectives = nn.ModuleDict(objectives)
        self.phases = phases
        self.total_epochs = total_epochs
        self.phase_index = 0
        self.phase_epoch = 0
        self._elapsed_before_phase = 0
        self._best_loss = float("inf")
        self._bad_epochs = 0
        self._apply_phase_options()

    # ------------------------------------------------------------------ needs
    @property
    def phase(self) -> Phase:
        return self.phases[self.phase_index]

    def needs(self, phase: int | None = None) -> Needs:
        ph = self.phases[self.phase_index if phase is None else phase]
        return Needs.union(self.objectives[key].needs for key in ph.active)

    def all_needs(self) -> Needs:
        return Needs.union(self.needs(i) for i in range(len(self.phases)))

    # ------------------------------------------------------------------ loss
    def forward(self, student: Trace, teacher: Trace | None, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Weighted total and the unweighted value of every active term."""
        terms: dict[str, torch.Tensor] = {}
        total: torch.Tensor | None = None
        for key, weight in self.phase.weights.items():
            if weight <= 0:
                continue
            value = self.objectives[key](student, teacher, batch)
            terms[key] = value
            total = value * weight if total is None else total + value * weight
        assert total is not None
        return total, terms

    # ------------------------------------------------------------------ schedule
    def phase_epochs(self, index: int | None = None) -> int:
        """Length of a phase in epochs (an open phase takes the remaining budget)."""
        i = self.phase_index if index is None else index
        ph = self.phases[i]
        if ph.epochs is not None:
            return ph.epochs
        fixed = sum(p.epochs or 0 for p in self.phases[i + 1 :])
        return max(1, self.total_epochs - self._epochs_before(i) - fixed)

    def _epochs_before(self, index: int) -> int:
        """Epochs spent before phase ``index`` (phases ahead of the current one assumed full length)."""
        if index <= self.phase_index:
            return self._elapsed_before_phase if index == self.phase_index else sum(p.epochs or 0 for p in self.phases[:index])
        return self._elapsed_before_phase + sum(p.epochs or 0 for p in self.phases[self.phase_index : index])

    def start_epoch(self, epoch: int) -> dict[str, Any]:
        logs: dict[str, Any] = {"phase": self.phase.name}
        for key in self.phase.active:
            out = self.objectives[key].start_epoch(epoch, phase_epoch=self.phase_epoch, phase_epochs=self.phase_epochs())
            if out:
                logs[key] = out
        return logs

    def start_step(self) -> None:
        for key in self.phase.active:
            self.objectives[key].start_step()

    def end_epoch(self, epoch: int, mean_loss: float) -> Phase | None:
        """Advance the schedule after an epoch; returns the new phase when it changed."""
        self.phase_epoch += 1
        ph = self.phase
        if self.phase_index == len(self.phases) - 1:
            return None
        done = self.phase_epoch >= self.phase_epochs()
        if ph.advance == "plateau" and not done:
            if mean_loss < self._best_loss * (1.0 - ph.min_delta):
                self._best_loss = mean_loss
                self._bad_epochs = 0
            else:
                self._bad_epochs += 1
                done = self._bad_epochs >= ph.patience
        if not done:
            return None
        self._elapsed_before_phase = epoch + 1
        self.phase_index += 1
        self.phase_epoch = 0
        self._best_loss = float("inf")
        self._bad_epochs = 0
        self._apply_phase_options()
        return self.phase

    def _apply_phase_options(self) -> None:
        for key, obj in self.objectives.items():
            opts = self.phase.options.get(key)
            if opts is not None:
                obj.set_phase_options(**opts)

    # ------------------------------------------------------------------ state (exact resume)
    def schedule_state(self) -> dict[str, Any]:
        return {
            "phase_index": self.phase_index,
            "phase_epoch": self.phase_epoch,
            "elapsed_before_phase": self._elapsed_before_phase,
            "best_loss": self._best_loss,
            "bad_epochs": self._bad_epochs,
            "objectives": {k: o.extra_state_dict() for k, o in self.objectives.items()},
        }

    def load_schedule_state(self, state: dict[str, Any]) -> None:
        self.phase_index = int(state["phase_index"])
        self.phase_epoch = int(state["phase_epoch"])
        self._elapsed_before_phase = int(state["elapsed_before_phase"])
        self._best_loss = float(state["best_loss"])
        self._bad_epochs = int(state["bad_epochs"])
        self._apply_phase_options()
        for k, s in state.get("objectives", {}).items():
            if k in self.objectives:
                self.objectives[k].load_extra_state_dict(s)

    def describe(self) -> list[dict[str, Any]]:
        return [
            {"name": p.name, "epochs": self.phase_epochs(i) if p.epochs is None else p.epochs, "weights": p.weights,
             "options": p.options, "advance": p.advance}
            for i, p in enumerate(self.phases)
        ]


def _phase_from_spec(spec: PhaseSpec | dict, index: int, keys: set[str], where: str) -> Phase:
    if isinstance(spec, dict):
        spec = PhaseSpec.model_validate(spec)
    for k in list(spec.use) + list(spec.options):
        if k not in keys:
            raise ConfigError(f"{where}.phases[{index}]: unknown objective key {k!r}; the recipe has: {', '.join(sorted(keys))}")
    if not any(w > 0 for w in spec.use.values()):
        raise ConfigError(f"{where}.phases[{index}]: no objective with a positive weight")
    return Phase(
        name=spec.name or f"phase{index + 1}",
        weights=dict(spec.use),
        options={k: dict(v) for k, v in spec.options.items()},
        epochs=spec.epochs,
        advance=spec.advance,
        patience=spec.patience,
        min_delta=spec.min_delta,
    )


def build_recipe(cfg: RecipeConfig, ctx: BuildContext, total_epochs: int, where: str = "recipe") -> Recipe:
    objectives: dict[str, Objective] = {}
    weights: dict[str, float] = {}
    options_by_key = {}
    for i, spec in enumerate(cfg.objectives):
        key = spec.key or spec.name
        if key in objectives:
            raise ConfigError(f"{where}.objectives[{i}]: objective key {key!r} used twice; give one of them a distinct 'key'")
        opts = spec.options
        objectives[key] = build_objective(spec.name, opts, ctx, where=f"{where}.objectives[{i}]")
        weights[key] = spec.weight
        options_by_key[key] = (spec.name, opts)
    if cfg.phases:
        phases = [_phase_from_spec(p, i, set(objectives), where) for i, p in enumerate(cfg.phases)]
    else:
        scheduled = []
        for key, (name, opts) in options_by_key.items():
            cls = get_objective_class(name)
            others = {k: w for k, w in weights.items() if k != key}
            sched = cls.schedule(parse_options(name, opts), key, weights[key], others, ctx, total_epochs)
            if sched is not None:
                scheduled.append((key, sched))
        if len(scheduled) > 1:
            raise ConfigError(
                f"{where}: objectives {scheduled[0][0]!r} and {scheduled[1][0]!r} both define a schedule; write the phases explicitly"
            )
        if scheduled:
            phases = [_phase_from_spec(p, i, set(objectives), where) for i, p in enumerate(scheduled[0][1])]
        else:
            if not any(w > 0 for w in weights.values()):
                raise ConfigError(f"{where}: every objective has weight 0 ({', '.join(weights)}), so nothing would be "
                                  "trained; give at least one a positive weight")
            phases = [Phase(name="main", weights=dict(weights))]
    open_phases = [i for i, p in enumerate(phases) if p.epochs is None]
    fixed = sum(p.epochs or 0 for p in phases)
    if len(open_phases) > 1 or (open_phases and open_phases[0] != len(phases) - 1):
        raise ConfigError(f"{where}.phases: only the last phase may be open-ended (epochs: null)")
    if open_phases and fixed >= total_epochs:
        raise ConfigError(
            f"{where}.phases: the fixed phases take {fixed} epochs, leaving none of train.epochs={total_epochs} for the last phase"
        )
    if not open_phases and fixed != total_epochs:
        raise ConfigError(f"{where}.phases: phases last {fixed} epochs but train.epochs is {total_epochs}; make them agree")
    # validate phase options eagerly (a misspelt layer list fails now, not at phase 3)
    recipe = Recipe(objectives, phases, total_epochs)
    for ph in phases:
        for key, opts in ph.options.items():
            objectives[key].set_phase_options(**opts)
    recipe._apply_phase_options()
    return recipe

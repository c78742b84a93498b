"""Method presets: named recipes (``--method alp``) and their combinations (``universal+alp``).

Presets are YAML files shipped inside the package (``layerkd/presets``; the repository's
``configs/methods`` points there). Each holds a description, the weighted objectives with their
options and, for multi-stage methods, a ``pipeline`` (``takd``). Every hidden-space preset shares
the same ``0.5·CE + 0.5·KD (T = 2)`` base, so comparing methods isolates their intermediate-layer
term. A combination ``a+b`` takes the union of the objectives; an objective present in both keeps
the first preset's settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

from .config import ObjectiveSpec, RecipeConfig
from .errors import ConfigError


@dataclass(frozen=True)
class Method:
    name: str
    description: str
    recipe: RecipeConfig
    pipeline: str | None = None
    assistant: str | None = None


#: the method of a distillation that names none (``--method`` unset, no ``recipe``)
DEFAULT_METHOD = "kd"

_ALLOWED = {"description", "objectives", "phases", "pipeline", "assistant"}


def _load(name: str, data: dict[str, Any]) -> Method:
    unknown = sorted(set(data) - _ALLOWED)
    if unknown:
        raise ConfigError(f"method preset {name!r}: unknown key {unknown[0]!r}")
    recipe = RecipeConfig.model_validate({"objectives": data["objectives"], "phases": data.get("phases")})
    return Method(name, str(data.get("description", "")), recipe, data.get("pipeline"), data.get("assistant"))


def presets() -> dict[str, Method]:
    out = {}
    for entry in sorted(resources.files("layerkd").joinpath("presets").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            name = entry.name[: -len(".yaml")]
            out[name] = _load(name, yaml.safe_load(entry.read_text(encoding="utf-8")))
    return out


def resolve_method(spec: str) -> Method:
    """A preset by name, or the combination ``a+b+…`` of presets."""
    table = presets()
    parts = [p.strip() for p in spec.split("+") if p.strip()]
    if not parts:
        raise ConfigError("method: empty name")
    for p in parts:
        if p not in table:
            raise ConfigError(f"unknown method {p!r}; expected one of: {', '.join(table)} (or a+b combinations)")
    if len(parts) == 1:
        return table[parts[0]]
    chosen = [table[p] for p in parts]
    if any(m.pipeline for m in chosen) or any(m.recipe.phases for m in chosen):
        raise ConfigError(f"method {spec!r}: multi-stage methods ({', '.join(m.name for m in chosen if m.pipeline)}) cannot be combined")
    objectives: list[ObjectiveSpec] = []
    seen: set[str] = set()
    for m in chosen:
        for o in m.recipe.objectives:
            key = o.key or o.name
            if key not in seen:
                objectives.append(o)
                seen.add(key)
    desc = " + ".join(m.name for m in chosen)
    return Method(spec, f"combination: {desc}", RecipeConfig(objectives=objectives))

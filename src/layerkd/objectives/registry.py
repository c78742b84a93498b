"""Objective registry: ``@register`` on a class makes it available by name in configs."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from ..errors import ConfigError
from .base import BuildContext, Objective

OBJECTIVES: dict[str, type[Objective]] = {}


def register(cls: type[Objective]) -> type[Objective]:
    if not cls.name:
        raise TypeError(f"{cls.__name__} has no name")
    if cls.name in OBJECTIVES and OBJECTIVES[cls.name] is not cls:
        raise TypeError(f"objective {cls.name!r} registered twice")
    OBJECTIVES[cls.name] = cls
    return cls


def get_objective_class(name: str) -> type[Objective]:
    try:
        return OBJECTIVES[name]
    except KeyError:
        raise ConfigError(f"unknown objective {name!r}; expected one of: {', '.join(sorted(OBJECTIVES))}") from None


def parse_options(name: str, options: dict[str, Any], where: str = "") -> Any:
    cls = get_objective_class(name)
    try:
        return cls.Options.model_validate(options)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            allowed = ", ".join(sorted(cls.Options.model_fields)) or "none"
            msg = f"unknown option {loc!r} (expected one of: {allowed}, weight, key)"
        else:
            msg = f"option {loc!r}: {err['msg']}" + (f" (got {err['input']!r})" if "input" in err else "")
        raise ConfigError(f"{where or 'objective'} ({name}): {msg}") from None


def build_objective(name: str, options: dict[str, Any], ctx: BuildContext, where: str = "") -> Objective:
    cls = get_objective_class(name)
    return cls(parse_options(name, options, where), ctx)

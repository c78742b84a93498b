"""The defaults ``--help`` shows, taken from the pydantic config models (never typed twice).

The run options of ``finetune``/``distill`` default to ``None`` so that a ``--config`` file can
set them (an option given on the command line overrides the file); their *effective* default is
the config model's. :func:`default_help` appends it to the option's help as ``[default: 3]``
(escaped: the help is ``rich`` markup, where a bare ``[...]`` would be read as a style tag).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from ..config import RunConfig


def _submodel(model: type[BaseModel], name: str) -> type[BaseModel]:
    ann = model.model_fields[name].annotation
    for candidate in (ann, *getattr(ann, "__args__", ())):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    raise KeyError(f"{model.__name__}.{name} is not a config section")


def config_default(dotted: str, model: type[BaseModel] = RunConfig) -> Any:
    """The default of a config field, e.g. ``config_default("train.epochs") == 3``."""
    *sections, leaf = dotted.split(".")
    for name in sections:
        model = _submodel(model, name)
    return model.model_fields[leaf].get_default(call_default_factory=True)


def with_default(text: str, shown: Any) -> str:
    """``text [default: shown]``, escaped for rich markup."""
    from rich.markup import escape  # noqa: PLC0415

    return f"{text} " + escape(f"[default: {shown}]")


def default_help(text: str, dotted: str, *, model: type[BaseModel] = RunConfig, when_none: str | None = None) -> str:
    """The help of an option that sets config field ``dotted``, ending with its default
    (``when_none`` words a ``None`` default, e.g. ``all rows``; without it nothing is added)."""
    value = config_default(dotted, model)
    if value is None:
        return text if when_none is None else with_default(text, when_none)
    return with_default(text, value)

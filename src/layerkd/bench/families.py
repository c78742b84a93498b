"""Declared comparison families of a suite file: the method comparisons its report decides.

A suite file may declare, before any of its cells runs, which comparisons its report tests and
how they are grouped for the multiple-testing adjustment::

    comparisons:
      - name: alp-claims              # a family: Holm's adjustment runs over all of its tests
        pairs: [[alp, pkd], [alp, kd]]  # [METHOD, BASELINE]: method labels of this suite
        alternative: greater          # H1 of every test: greater (default), less or two-sided
        tasks: [mrpc, sts-b]          # optional: default every task of the suite
        eval_sets: [dev]              # optional: default [dev]; others are the tasks' extra_eval names

A family's tests are every pair × task × student of the suite × evaluation set; ``layerkd
report`` runs each as a two-level paired bootstrap on the primary score and writes the claims
table (:mod:`layerkd.bench.claims`). The section is report metadata: it is not part of any
cell's config, so adding or changing it never changes a cell key.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field

from ..errors import ConfigError
from .stats import ALTERNATIVES


class ComparisonFamily(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    pairs: list[tuple[str, str]] = Field(min_length=1, description="[METHOD, BASELINE] method labels")
    alternative: str = Field("greater", description="greater | less | two-sided")
    tasks: list[str] | None = Field(None, description="default: every task of the suite")
    eval_sets: list[str] = Field(default_factory=lambda: ["dev"])


def check_families(families: list[ComparisonFamily], *, methods: Iterable[str], tasks: Iterable[str],
                   eval_sets: Iterable[str], where: str) -> None:
    """ConfigError unless every family names known methods, tasks and evaluation sets, once each."""
    methods, tasks, eval_sets = list(methods), list(tasks), ["dev", *eval_sets]
    seen: set[str] = set()
    for i, f in enumerate(families):
        at = f"{where}: comparisons[{i}] ({f.name})"
        if f.name in seen:
            raise ConfigError(f"{at}: the family name {f.name!r} is used twice")
        seen.add(f.name)
        if f.alternative not in ALTERNATIVES:
            raise ConfigError(f"{at}: alternative {f.alternative!r} (expected one of: {', '.join(ALTERNATIVES)})")
        pairs: set[tuple[str, str]] = set()
        for a, b in f.pairs:
            for m in (a, b):
                if m not in methods:
                    raise ConfigError(f"{at}: pair [{a}, {b}]: {m!r} is not a method label of the suite "
                                      f"(expected one of: {', '.join(methods)})")
            if a == b:
                raise ConfigError(f"{at}: pair [{a}, {b}] compares a method with itself")
            if (a, b) in pairs:
                raise ConfigError(f"{at}: pair [{a}, {b}] is declared twice")
            pairs.add((a, b))
        for t in f.tasks or []:
            if t not in tasks:
                raise ConfigError(f"{at}: task {t!r} is not a task of the suite (expected one of: {', '.join(tasks)})")
        for e in f.eval_sets:
            if e not in eval_sets:
                raise ConfigError(f"{at}: eval set {e!r} is not dev or an extra_eval of the suite's tasks "
                                  f"(expected one of: {', '.join(dict.fromkeys(eval_sets))})")

"""Experiment suites: a YAML grid of tasks × students × methods × seeds over shared settings.

A suite file is plain data (read as a config: :func:`layerkd.config.read_yaml`, so duplicate
keys and alias bombs are errors; unknown keys are errors)::

    name: ild
    description: intermediate-layer methods, 2-layer student cut from the teacher
    base:                       # a run-config fragment shared by every cell
      data: {data_dir: "${shared}/data/glue"}
      train: {epochs: 4, lr: 1.0e-4, batch_size: 32, max_length: 128}
    tasks:
      mrpc:
        teacher: "${work}/teachers/mrpc"
        extra_eval: {paws-wiki: {file: "${shared}/data/ood/PAWS-Wiki/dev.tsv"}}
      sst-2: {teacher: "${work}/teachers/sst-2", train_subsample: 8000}
    students: {L2: "bottom:2"}  # label -> student spec (or {spec: …, overrides: {…}})
    methods: [ce, kd, {label: rail-concat, method: rail-c}]
    seeds: [1, 2, 3]
    comparisons:                # optional: the report's declared comparison families
      - {name: alp-claims, pairs: [[alp, kd]], alternative: greater}

``comparisons`` is report metadata (:mod:`layerkd.bench.families`), never part of a cell key.

``${name}`` placeholders are filled from ``--var name=value`` or, for the fixed set
:data:`ENV_VARIABLES` only (``shared`` and ``work``), from the environment variables
``LAYERKD_SHARED`` / ``LAYERKD_WORK``; an unfilled placeholder is an error. No other ``LAYERKD_*``
variable is read: ``LAYERKD_VERBOSE=1`` or ``LAYERKD_LANES=1`` used to become placeholders whose
values were written back as ``${verbose}`` into every string containing ``1``, changing every cell
key. Only the placeholders a suite uses take part in its keys. The library never guesses these
paths.

**Cell order** is stable: tasks, then students, then methods, then seeds, each in file order.

**Cell keys** (the result file name) are the first 16 hex digits of the SHA-256 of the cell's
*resolved* run config — every default filled in, the method preset expanded into its
objectives and phases — with placeholders written back in their ``${name}`` form (so the key does
not depend on where ``shared`` lives on this machine), without where outputs and caches go, plus
the SHA-256 of the teacher's weight files. The suite's name is not part of the key: a cell that
two suites share (``smoke`` and ``ild`` on MRPC, seed 1) runs once. Changing anything that changes
what is trained (a hyper-parameter, a preset's definition, the teacher weights) gives a new key.
An option added to the run config later enters the key only when it is set away from the value
that reproduces the earlier behaviour (:data:`layerkd.config.ADDED_OPTIONS`), so adding options
never orphans finished cells.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..config import (
    RunConfig,
    deep_merge,
    format_validation_error,
    read_yaml,
    trained_dump,
    validate_run_config,
)
from ..errors import ConfigError
from .families import ComparisonFamily, check_families

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)  # as the run config's


class TaskEntry(_Strict):
    teacher: str = Field(description="the task's fine-tuned teacher (directory)")
    train_subsample: int | None = Field(None, ge=1)
    extra_eval: dict[str, dict[str, Any]] = Field(default_factory=dict, description="name -> {file, columns}")
    overrides: dict[str, Any] = Field(default_factory=dict, description="run-config fragment for this task's cells")


class StudentEntry(_Strict):
    spec: str
    overrides: dict[str, Any] = Field(default_factory=dict)


class MethodEntry(_Strict):
    label: str
    method: str | None = None
    recipe: dict[str, Any] | None = None
    overrides: dict[str, Any] = Field(default_factory=dict)


class SuiteFile(_Strict):
    name: str
    description: str = ""
    base: dict[str, Any] = Field(default_factory=dict)
    tasks: dict[str, TaskEntry]
    students: dict[str, str | StudentEntry]
    methods: list[str | MethodEntry]
    seeds: list[int] = Field(min_length=1)
    baseline: str = Field("ce", description="the row each method is tested against in the report")
    comparisons: list[ComparisonFamily] = Field(default_factory=list, description="declared comparison families")

    @field_validator("tasks", "students", "methods")
    @classmethod
    def _nonempty(cls, v):
        if not v:
            raise ValueError("must not be empty")
        return v


@dataclass(frozen=True)
class Cell:
    """One run of a suite."""

    task: str
    student_label: str
    student: str
    method: str
    seed: int
    config: RunConfig = field(compare=False, repr=False)
    key: str = ""
    teacher_path: str = field(default="", compare=False)
    teacher_hash: str = field(default="", compare=False)

    def describe(self) -> dict[str, Any]:
        return {"task": self.task, "student": self.student_label, "student_spec": self.student, "method": self.method,
                "seed": self.seed}


@dataclass
class Suite:
    name: str
    description: str
    path: Path
    cells: list[Cell]
    baseline: str
    variables: dict[str, str]
    comparisons: list[ComparisonFamily] = field(default_factory=list)


def substitute(obj: Any, variables: dict[str, str], where: str) -> Any:
    """Fill ``${name}`` placeholders in every string of a nested structure."""
    if isinstance(obj, str):
        def repl(m: re.Match) -> str:
            name = m.group(1)
            if name not in variables:
                env = f" or set LAYERKD_{name.upper()}" if name in ENV_VARIABLES else ""
                raise ConfigError(f"{where}: placeholder ${{{name}}} is not set (give --var {name}=PATH{env})")
            return variables[name]
        return _PLACEHOLDER.sub(repl, obj)
    if isinstance(obj, dict):
        return {k: substitute(v, variables, where) for k, v in obj.items()}
    if isinstance(obj, list):
        return [substitute(v, variables, where) for v in obj]
    return obj


def placeholders(obj: Any) -> list[str]:
    """The ``${name}`` placeholder names used in the strings of a nested structure."""
    if isinstance(obj, str):
        return _PLACEHOLDER.findall(obj)
    if isinstance(obj, dict):
        return [n for v in obj.values() for n in placeholders(v)]
    if isinstance(obj, list):
        return [n for v in obj for n in placeholders(v)]
    return []


def unsubstitute(obj: Any, variables: dict[str, str]) -> Any:
    """Write absolute placeholder values back as ``${name}`` (longest value first)."""
    pairs = sorted(((v, k) for k, v in variables.items() if v), key=lambda p: -len(p[0]))
    if isinstance(obj, str):
        for value, name in pairs:
            obj = obj.replace(value, f"${{{name}}}")
        return obj
    if isinstance(obj, dict):
        return {k: unsubstitute(v, variables) for k, v in obj.items()}
    if isinstance(obj, list):
        return [unsubstitute(v, variables) for v in obj]
    return obj


ENV_VARIABLES = ("shared", "work")
"""The placeholders that may also come from the environment (``LAYERKD_SHARED``, ``LAYERKD_WORK``)."""


def suite_variables(given: dict[str, str] | None = None) -> dict[str, str]:
    """``LAYERKD_SHARED`` / ``LAYERKD_WORK`` from the environment (:data:`ENV_VARIABLES`, no other
    ``LAYERKD_*`` variable), overridden by ``given`` (``--var``)."""
    out = {name: os.environ[f"LAYERKD_{name.upper()}"] for name in ENV_VARIABLES if os.environ.get(f"LAYERKD_{name.upper()}")}
    out.update(given or {})
    return {k: str(Path(v).expanduser().resolve()) if k in ("shared", "work") else v for k, v in out.items()}


@lru_cache(maxsize=64)
def _hash_weights(path: str, stamp: tuple) -> str:
    h = hashlib.sha256()
    for f in sorted(Path(path).glob("*.safetensors")) or sorted(Path(path).glob("*.bin")):
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                h.update(chunk)
    return h.hexdigest()


def teacher_hash(path: str) -> str:
    """SHA-256 of a teacher directory's weight files ('' when the directory does not exist yet)."""
    p = Path(path)
    if not p.is_dir():
        return ""
    files = sorted(p.glob("*.safetensors")) or sorted(p.glob("*.bin"))
    stamp = tuple((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    return _hash_weights(str(p), stamp) if files else ""


def _resolved_dump(cfg: RunConfig) -> dict[str, Any]:
    from ..stages.distill import resolve_recipe  # noqa: PLC0415

    data = trained_dump(cfg)
    method = resolve_recipe(cfg)
    data["resolved_method"] = {"recipe": method.recipe.model_dump(mode="json"), "pipeline": method.pipeline,
                               "assistant": method.assistant}
    return data


def cell_key(cfg: RunConfig, variables: dict[str, str], teacher_weights: str) -> str:
    data = unsubstitute(_resolved_dump(cfg), variables)
    blob = json.dumps({"config": data, "teacher_weights": teacher_weights}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def load_suite(path: str | Path, variables: dict[str, str] | None = None) -> Suite:
    """Read, validate and expand a suite file into its cells (stable order, keys computed)."""
    path = Path(path)
    raw = read_yaml(path)
    try:
        spec = SuiteFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, f"suite {path}").replace(
            "(expected one of: ", "(expected one of the run-config keys: ")) from None
    used = set(placeholders(raw))
    # only the placeholders this suite uses are written back into its configs (and so its keys)
    variables = {k: v for k, v in suite_variables(variables).items() if k in used}
    where = f"suite {path}"
    check_families(spec.comparisons, methods=[m if isinstance(m, str) else m.label for m in spec.methods],
                   tasks=list(spec.tasks), eval_sets=[e for t in spec.tasks.values() for e in t.extra_eval], where=where)
    cells: list[Cell] = []
    seen: dict[str, Cell] = {}
    for task, t in spec.tasks.items():
        for s_label, s in spec.students.items():
            s = StudentEntry(spec=s) if isinstance(s, str) else s
            for m in spec.methods:
                m = MethodEntry(label=m, method=m) if isinstance(m, str) else m
                if (m.method is None) == (m.recipe is None):
                    raise ConfigError(f"{where}: methods: entry {m.label!r} needs exactly one of method or recipe")
                for seed in spec.seeds:
                    data: dict[str, Any] = deep_merge(spec.base, {
                        "task": task,
                        "teacher": {"path": t.teacher},
                        "student": s.spec,
                        "train": {"seed": seed},
                    })
                    if m.method is not None:
                        data["method"] = m.method
                    else:
                        data["recipe"] = m.recipe
                    if t.train_subsample is not None:
                        data = deep_merge(data, {"data": {"train_subsample": t.train_subsample}})
                    if t.extra_eval:
                        data = deep_merge(data, {"data": {"extra_eval": t.extra_eval}})
                    for ov in (t.overrides, s.overrides, m.overrides):
                        data = deep_merge(data, ov)
                    cell_where = f"{where} [{task} / {s_label} / {m.label} / seed {seed}]"
                    cfg = validate_run_config(substitute(data, variables, where), where=cell_where)
                    th = teacher_hash(cfg.teacher.path)
                    key = cell_key(cfg, variables, th or f"missing:{cfg.teacher.path}")
                    cell = Cell(task=task, student_label=s_label, student=s.spec, method=m.label, seed=seed, config=cfg,
                                key=key, teacher_path=cfg.teacher.path, teacher_hash=th)
                    if key in seen:
                        raise ConfigError(f"{where}: cells {seen[key].describe()} and {cell.describe()} resolve to the same "
                                          "config (duplicate method or student entry)")
                    seen[key] = cell
                    cells.append(cell)
    return Suite(name=spec.name, description=spec.description, path=path, cells=cells, baseline=spec.baseline,
                 variables=variables, comparisons=spec.comparisons)

"""Typed, validated run configuration.

Configs are plain data: YAML is read with a ``yaml.SafeLoader`` subclass (no tags, no imports,
no code; a key named twice and an alias bomb are errors: :mod:`layerkd.safe_yaml`), every section
is a pydantic model with ``extra="forbid"`` so a misspelt key is an error, types are strict (a bool
is not an int, a float not an int), every float is finite, and every value is range-checked. Errors are one line naming the file and the field, e.g.::

    config run.yaml: train.lrr: unknown key (expected one of: batch_size, epochs, lr, …)

The resolved config (after CLI overrides and presets) is written next to every run's results.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from . import safe_yaml
from .errors import ConfigError


class Strict(BaseModel):
    # strict: a bool is not an int (``epochs: true``), a float or a string is not an int, a number is
    # not a bool; allow_inf_nan=False: every float is finite (``adam_eps: .inf`` is an error).
    model_config = ConfigDict(extra="forbid", validate_assignment=True, strict=True, allow_inf_nan=False)


class TrainConfig(Strict):
    """Optimisation and evaluation settings shared by fine-tuning and distillation."""

    epochs: int = Field(3, ge=1, description="total training epochs (all phases of a recipe together)")
    max_steps: int | None = Field(None, ge=1, description="stop after this many optimiser steps (overrides epochs)")
    lr: float = Field(5e-5, gt=0, le=1.0, description="peak learning rate of AdamW")
    weight_decay: float = Field(0.01, ge=0, le=1.0)
    adam_eps: float = Field(1e-8, gt=0)
    optimizer_impl: Literal["default", "foreach", "fused", "forloop"] = Field(
        "default", description="torch's AdamW implementation (the same update up to floating-point order; "
                               "default: torch's choice; layerkd.optim, benchmarks/levers.py)")
    batch_size: int = Field(32, ge=1, description="global training batch size (across processes and accumulation)")
    grad_accum: int = Field(1, ge=1, description="gradient accumulation steps; batch_size is split into this many micro-batches")
    eval_batch_size: int = Field(128, ge=1)
    max_grad_norm: float | None = Field(1.0, gt=0, description="clip the gradient norm; null disables clipping")
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="linear warm-up over this fraction of steps, then linear decay")
    max_length: int = Field(128, ge=8, le=4096, description="truncate inputs to this many tokens")
    seed: int = Field(42, ge=0, le=2**32 - 1, description="random seed (0 … 2**32-1, numpy's range)")
    precision: Literal["fp32", "bf16", "fp16"] = Field("fp32", description="mixed precision (bf16 works on CPU and GPU)")
    eval_every_steps: int | None = Field(None, ge=1, description="also evaluate every N optimiser steps")
    early_stopping_patience: int | None = Field(None, ge=1, description="stop after N evaluations without improvement")
    checkpoint_every_steps: int | None = Field(None, ge=1, description="also checkpoint every N steps (always at epoch ends)")
    keep_checkpoints: int = Field(2, ge=1, description="how many step checkpoints to keep")
    keep_final_checkpoints: bool = Field(
        False, description="keep checkpoints/ (step checkpoints with optimizer state, the best-model copy) once the "
                           "run has finished (--keep-checkpoints); by default they are removed when the final model "
                           "and results are written (layerkd.run_finish)")
    group_by_length: bool = True
    log_every_steps: int = Field(20, ge=1)
    tensorboard: bool = False
    report_to: list[Literal["tensorboard", "wandb", "mlflow"]] = Field(
        default_factory=list, description="experiment trackers that receive every loss term, the learning rate, the "
                                          "evaluations and the layer-attention summaries (--report-to; the 'track' "
                                          "extra; layerkd.tracking); tensorboard: true is the same as listing tensorboard")
    nonfinite: Literal["stop", "skip"] = Field("stop", description="on a NaN/inf loss: stop naming the objective, or skip the step")
    deterministic: bool = Field(False, description="torch.use_deterministic_algorithms (slower; for exact resume on GPU)")

    @model_validator(mode="after")
    def _accum_divides(self):
        if self.batch_size % self.grad_accum:
            raise ValueError(f"batch_size {self.batch_size} must be divisible by grad_accum {self.grad_accum}")
        return self


class EvalSet(Strict):
    """An extra evaluation set (e.g. an out-of-domain file)."""

    file: str
    columns: str | dict[str, str] | None = None


class ValidationConfig(Strict):
    """Where a run makes its choices (best epoch, early stopping, teacher heads): see
    :mod:`layerkd.data.validation`."""

    source: Literal["carve", "eval"] = Field(
        "carve", description="carve: hold out part of the training set and use the evaluation split as the test set "
                             "(scored once, at the selected and the last epoch); eval: select on the evaluation "
                             "split (layerkd's behaviour until 2026-12-06)")
    fraction: float = Field(0.1, gt=0, lt=0.5, description="share of the training rows held out")
    max_rows: int = Field(2000, ge=1, description="at most this many rows held out")
    seed: int = Field(0, ge=0, description="seed of the (stratified) draw")


class DataConfig(Strict):
    """Where the data comes from: a GLUE directory, files, or a Hugging Face dataset."""

    data_dir: str | None = Field(None, description="GLUE directory in the classic layout (<dir>/RTE/train.tsv)")
    train_file: str | None = None
    dev_file: str | None = None
    columns: str | dict[str, str] | None = Field(None, description="text_a=…,text_b=…,label=… for files")
    hf_dataset: str | None = Field(None, description="Hugging Face dataset id or save_to_disk directory")
    hf_config: str | None = None
    train_split: str = "train"
    eval_split: str = "dev"
    train_subsample: int | None = Field(None, ge=1, description="use a fixed random subset of this many training rows")
    subsample_seed: int = Field(0, ge=0)
    extra_eval: dict[str, EvalSet] = Field(default_factory=dict, description="name -> extra labelled evaluation file")
    validation: ValidationConfig = Field(default_factory=ValidationConfig,
                                         description="the split that serves every choice (see layerkd.data.validation)")

    @model_validator(mode="after")
    def _one_source(self):
        sources = [self.data_dir is not None, self.train_file is not None or self.dev_file is not None, self.hf_dataset is not None]
        if sum(sources) > 1:
            raise ValueError("give one data source: data_dir, or train_file/dev_file, or hf_dataset")
        if sum(sources) == 0:
            raise ValueError("no data source: give data_dir (GLUE layout), train_file/dev_file, or hf_dataset")
        return self


class HeadsFitConfig(Strict):
    """Fitting the teacher's pseudo classifiers (teacher frozen)."""

    epochs: int = Field(3, ge=1)
    lr: float = Field(1e-3, gt=0)
    batch_size: int = Field(64, ge=1)
    layers: list[int] | Literal["intermediate", "all"] = Field(
        "intermediate", description="teacher layers that get a head: 'intermediate' (1..n-1), 'all' (1..n) or a list"
    )
    pooling: Literal["cls", "mean", "max"] = "cls"
    dropout: float = Field(0.1, ge=0, lt=1)
    standardize: bool = Field(
        True, description="z-score each layer's pooled vector with its training-set mean and std before the "
                          "head; without it the heads on layers whose vectors barely vary (the lower [CLS] vectors "
                          "of MiniLM teachers: std ~0.001) learn nothing. false reproduces runs until 2026-11-30")


class TeacherConfig(Strict):
    path: str = Field(description="fine-tuned teacher: a layerkd/Hugging Face model directory or hub id")
    heads: str | None = Field(None, description="directory of fitted pseudo classifiers; fitted automatically if needed and absent")
    fit_heads: HeadsFitConfig = Field(default_factory=HeadsFitConfig)


class CacheConfig(Strict):
    enabled: bool = Field(True, description="serve cacheable teacher outputs from a memory-mapped cache")
    dir: str | None = Field(None, description="cache directory (default: $LAYERKD_CACHE or ~/.cache/layerkd)")
    dtype: Literal["fp16", "fp32"] = "fp16"
    only: bool = Field(False, description="cache-only mode (--teacher-cache-only): never load the teacher's weights; "
                                          "serve every teacher need from entries written by `layerkd cache build` "
                                          "(layerkd.cache_only)")


class ObjectiveSpec(BaseModel):
    """One weighted objective; its other keys are the objective's options (validated by it)."""

    model_config = ConfigDict(extra="allow", strict=True, allow_inf_nan=False)
    name: str
    weight: float = Field(1.0, ge=0)
    key: str | None = None

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class PhaseSpec(Strict):
    """One phase of a recipe: which objectives are active, with which weights, for how long."""

    name: str | None = None
    epochs: int | None = Field(None, ge=1, description="phase length; null = until the end of training")
    use: dict[str, float] = Field(description="objective key -> weight in this phase")
    options: dict[str, dict[str, Any]] = Field(default_factory=dict, description="objective key -> phase-specific options")
    advance: Literal["epochs", "plateau"] = "epochs"
    patience: int = Field(1, ge=1)
    min_delta: float = Field(0.01, ge=0, description="relative loss improvement that counts, for advance: plateau")


class RecipeConfig(Strict):
    objectives: list[ObjectiveSpec]
    phases: list[PhaseSpec] | None = None

    @field_validator("objectives")
    @classmethod
    def _nonempty(cls, v):
        if not v:
            raise ValueError("a recipe needs at least one objective")
        return v


class RunConfig(Strict):
    """A whole run: fine-tuning (``model``) or distillation (``teacher`` + ``student`` + recipe)."""

    task: str | dict[str, Any]
    data: DataConfig
    model: str | None = Field(None, description="finetune: the model to fine-tune (path or hub id)")
    teacher: TeacherConfig | None = None
    student: str | None = Field(None, description="student spec: path, layers:2,4,6, bottom:2, config:…, bilstm:…, cnn:…")
    assistant: str | None = Field(None, description="takd: the assistant's spec (same syntax as student)")
    method: str | None = Field(None, description="a preset name or a+b combination (see `layerkd methods`)")
    recipe: RecipeConfig | None = None
    train: TrainConfig = Field(default_factory=TrainConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    output_dir: str | None = None
    trust_remote_code: bool = False
    pooling: Literal["cls", "mean"] | None = Field(
        None, description="what the classifier of the trained model reads: the [CLS] state (Hugging Face's "
                          "heads) or the masked mean of the final token states; saved with the model. null: the "
                          "model's own (a student cut from the teacher inherits the teacher's)")

    @model_validator(mode="after")
    def _mode(self):
        if self.model is not None and (self.teacher is not None or self.student is not None):
            raise ValueError("give either model (fine-tuning) or teacher + student (distillation), not both")
        if self.model is None and self.teacher is None:
            raise ValueError("give model (fine-tuning) or teacher + student (distillation)")
        if self.teacher is not None and self.student is None:
            raise ValueError("student: missing; distillation needs a student spec")
        if self.method is not None and self.recipe is not None:
            raise ValueError("give method (a preset) or recipe (explicit objectives), not both")
        return self

    @property
    def is_distill(self) -> bool:
        return self.teacher is not None


# --------------------------------------------------------------------------- loading and errors


# Options added after results were first recorded, each with the value that reproduces the
# earlier behaviour (not necessarily today's default: `standardize` became true later). At that
# value an option is left out of every hash (suite cell keys, checkpoint config hashes,
# teacher-heads cache keys), so adding an option never orphans finished runs; at any other value,
# the default included, it enters the hash like every other option.
ADDED_OPTIONS: tuple[tuple[tuple[str, ...], Any], ...] = (
    (("teacher", "fit_heads", "standardize"), False),
    (("pooling",), None),
    (("data", "validation"), {"source": "eval", "fraction": 0.1, "max_rows": 2000, "seed": 0}),
    (("train", "optimizer_impl"), "default"),
)


def hashable_dump(cfg: BaseModel, at: tuple[str, ...] = ()) -> dict[str, Any]:
    """``cfg.model_dump(mode="json")`` without the :data:`ADDED_OPTIONS` set to their earlier behaviour.

    ``at``: where ``cfg`` sits in a run config (``("teacher", "fit_heads")`` for a
    :class:`HeadsFitConfig`)."""
    data = cfg.model_dump(mode="json")
    for path, default in ADDED_OPTIONS:
        if path[:len(at)] != at:
            continue
        *parents, leaf = path[len(at):]
        node: Any = data
        for k in parents:
            node = node.get(k) if isinstance(node, dict) else None
        if isinstance(node, dict) and leaf in node and node[leaf] == default:
            del node[leaf]
    return data


def trained_dump(cfg: RunConfig) -> dict[str, Any]:
    """What a run config says about *what is trained*: :func:`hashable_dump` without where outputs
    and caches go or how often it logs. The input of every run hash (checkpoint config hash, suite
    cell key)."""
    data = hashable_dump(cfg)
    data.pop("output_dir", None)
    data.get("cache", {}).pop("dir", None)
    data.get("cache", {}).pop("only", None)  # where the teacher's outputs come from, not what is trained
    for k in ("log_every_steps", "tensorboard", "report_to", "keep_final_checkpoints"):
        data.get("train", {}).pop(k, None)
    return data


def format_validation_error(exc: ValidationError, where: str) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
    if err["type"] == "extra_forbidden":
        model = _model_at(RunConfig, err["loc"][:-1])
        allowed = ", ".join(sorted(model.model_fields)) if model else ""
        msg = f"unknown key{f' (expected one of: {allowed})' if allowed else ''}"
    elif err["type"] == "missing":
        msg = "missing"
    else:
        msg = err["msg"].removeprefix("Value error, ")
        if "input" in err and err["type"] not in ("model_type",) and not isinstance(err["input"], dict):
            msg += f" (got {err['input']!r})"
    more = f" (+{len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"{where}: {loc}: {msg}{more}"


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    skip_key = False  # the previous field was a dict[str, Model]: this part is one of its keys
    for part in loc:
        if isinstance(part, int) or skip_key:
            skip_key = False
            continue
        field = model.model_fields.get(str(part)) if model else None
        if field is None:
            return None
        ann = field.annotation
        candidates = [ann, *getattr(ann, "__args__", ())]
        nxt = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if nxt is None:
            for c in candidates:  # list[Model] / dict[str, Model]
                for inner in getattr(c, "__args__", ()):
                    if isinstance(inner, type) and issubclass(inner, BaseModel):
                        nxt = inner
        if nxt is None:
            return None
        skip_key = any(get_origin(c) is dict for c in candidates)
        model = nxt
    return model


def read_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"config file not found: {p}")
    if p.is_dir():
        raise ConfigError(f"config {p} is a directory, expected a YAML file")
    try:
        data = safe_yaml.load(p.read_text(encoding="utf-8"))  # safe_load + duplicate keys, alias bound
    except UnicodeDecodeError:
        raise ConfigError(f"config {p}: not valid UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config {p}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"config {p}{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config {p}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def validate_run_config(data: dict[str, Any], where: str = "config") -> RunConfig:
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, where)) from None


def dump_config(cfg: BaseModel) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json", exclude_none=False), sort_keys=False)

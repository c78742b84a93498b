"""Task registry: every GLUE task plus user-defined tasks.

A :class:`Task` knows its text columns, its label set (or that it is a regression), its metrics
and its main metric, and — for GLUE tasks — where each split lives in the classic
``download_glue_data.py`` layout and which columns GLUE's own processors read.

User tasks are registered from a config mapping (see :func:`task_from_config`), e.g.::

    task:
      name: reviews
      text_columns: [review]          # one or two columns
      label_column: stars
      labels: [neg, pos]              # or  regression: true
      metrics: [accuracy, f1]         # the first is the main metric unless main_metric is set
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError
from .metrics import KNOWN_METRICS


@dataclass(frozen=True)
class GlueSplit:
    """Where one split of a GLUE task lives and which columns GLUE's processors read.

    Columns are header names, or integer positions for header-less files (CoLA train/dev).
    ``label`` is None for unlabelled test files.
    """

    file: str
    text_a: str | int
    text_b: str | int | None
    label: str | int | None
    header: bool = True


@dataclass(frozen=True)
class Task:
    name: str
    text_columns: tuple[str, ...]
    label_column: str
    labels: tuple[str, ...] | None  # None: regression
    metrics: tuple[str, ...]
    main_metric: str
    glue_dir: str | None = None
    glue_splits: dict[str, GlueSplit] = field(default_factory=dict)
    description: str = ""

    @property
    def is_regression(self) -> bool:
        return self.labels is None

    @property
    def num_labels(self) -> int:
        return 1 if self.labels is None else len(self.labels)

    @property
    def is_pair(self) -> bool:
        return len(self.text_columns) == 2

    def label_id(self, raw: Any) -> int | float:
        """Map a raw label (string or number) to a class id, or a float for regression.

        Raises ``ValueError`` with a short reason; readers wrap it with file and line.
        """
        if self.labels is None:
            try:
                value = float(raw)
            except (TypeError, ValueError):
                raise ValueError(f"label {raw!r} is not a number ({self.name} is a regression task)") from None
            if value != value or value in (float("inf"), float("-inf")):
                raise ValueError(f"label {raw!r} is not a finite number")
            return value
        key = str(raw).strip()
        if key in self._label_index:
            return self._label_index[key]
        if isinstance(raw, int) and not isinstance(raw, bool) and 0 <= raw < len(self.labels):
            return int(raw)
        raise ValueError(f"label {raw!r} is not one of the task's labels {list(self.labels)}")

    @property
    def _label_index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.labels or ())}


_REGISTRY: dict[str, Task] = {}


def _norm(name: str) -> str:
    return name.lower().replace("-", "").replace("_", "")


def register_task(task: Task, *, overwrite: bool = False) -> Task:
    key = _norm(task.name)
    if key in _REGISTRY and not overwrite and _REGISTRY[key] != task:
        raise ConfigError(f"task {task.name!r} is already registered with a different definition")
    _REGISTRY[key] = task
    return task


def get_task(name: str) -> Task:
    try:
        return _REGISTRY[_norm(name)]
    except KeyError:
        known = ", ".join(sorted(t.name for t in _REGISTRY.values()))
        raise ConfigError(f"unknown task {name!r}; expected one of: {known} (or define a custom task in the config)") from None


def list_tasks() -> list[Task]:
    return sorted(_REGISTRY.values(), key=lambda t: t.name)


def task_from_config(spec: str | dict[str, Any]) -> Task:
    """A task named in a config: a registered name, or a mapping that defines a new task."""
    if isinstance(spec, str):
        return get_task(spec)
    if not isinstance(spec, dict):
        raise ConfigError(f"task: expected a task name or a mapping, got {type(spec).__name__}")
    allowed = {"name", "text_columns", "label_column", "labels", "regression", "metrics", "main_metric", "description"}
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise ConfigError(f"task: unknown key {unknown[0]!r}; expected one of: {', '.join(sorted(allowed))}")
    if "name" not in spec:
        raise ConfigError("task.name: missing; a custom task needs a name")
    cols = spec.get("text_columns")
    if isinstance(cols, str):
        cols = [cols]
    if not cols or not isinstance(cols, list) or len(cols) not in (1, 2) or not all(isinstance(c, str) for c in cols):
        raise ConfigError("task.text_columns: expected a list of one or two column names")
    regression = bool(spec.get("regression", False))
    labels = spec.get("labels")
    if regression and labels is not None:
        raise ConfigError("task: give either labels (classification) or regression: true, not both")
    if not regression:
        if not isinstance(labels, list) or len(labels) < 2:
            raise ConfigError("task.labels: expected a list of at least two label names (or regression: true)")
        labels = tuple(str(x) for x in labels)
        if len(set(labels)) != len(labels):
            raise ConfigError("task.labels: label names must be distinct")
    default_metrics = ["pearson", "spearmanr"] if regression else ["accuracy"]
    metrics = spec.get("metrics", default_metrics)
    if isinstance(metrics, str):
        metrics = [metrics]
    if not isinstance(metrics, list) or not metrics or not all(isinstance(m, str) for m in metrics):
        raise ConfigError(f"task.metrics: expected a non-empty list of metric names; known: {', '.join(KNOWN_METRICS)}")
    for m in metrics:
        if m not in KNOWN_METRICS:
            raise ConfigError(f"task.metrics: unknown metric {m!r}; expected one of: {', '.join(KNOWN_METRICS)}")
        reg_metric = m in ("pearson", "spearmanr", "mse")
        if reg_metric != regression:
            kind = "regression" if regression else "classification"
            raise ConfigError(f"task.metrics: {m!r} does not apply to a {kind} task")
    if "f1" in metrics and labels is not None and len(labels) != 2:
        raise ConfigError("task.metrics: 'f1' is the binary F1 of the second label; it needs exactly two labels")
    main = spec.get("main_metric", metrics[0])
    if main not in metrics:
        raise ConfigError(f"task.main_metric: {main!r} is not one of task.metrics {list(metrics)}")
    task = Task(
        name=str(spec["name"]),
        text_columns=tuple(cols),
        label_column=str(spec.get("label_column", "label")),
        labels=None if regression else labels,
        metrics=tuple(metrics),
        main_metric=main,
        description=str(spec.get("description", "")),
    )
    return register_task(task)


def _glue(name, directory, cols, label_col, labels, metrics, main, splits, description):
    return register_task(
        Task(
            name=name,
            text_columns=cols,
            label_column=label_col,
            labels=labels,
            metrics=metrics,
            main_metric=main,
            glue_dir=directory,
            glue_splits=splits,
            description=description,
        )
    )


def _pair_splits(a, b, label, test_label=None, extra=None):
    s = {
        "train": GlueSplit("train.tsv", a, b, label),
        "dev": GlueSplit("dev.tsv", a, b, label),
        "test": GlueSplit("test.tsv", a, b, test_label),
    }
    s.update(extra or {})
    return s


# Column choices follow the GLUE processors of `transformers` (glue.py) and the classic layout.
_glue("CoLA", "CoLA", ("sentence",), "label", ("0", "1"), ("matthews_correlation", "accuracy"), "matthews_correlation",
      {"train": GlueSplit("train.tsv", 3, None, 1, header=False),
       "dev": GlueSplit("dev.tsv", 3, None, 1, header=False),
       "test": GlueSplit("test.tsv", "sentence", None, None)},
      "grammatical acceptability (Matthews correlation)")
_glue("SST-2", "SST-2", ("sentence",), "label", ("0", "1"), ("accuracy",), "accuracy",
      {"train": GlueSplit("train.tsv", "sentence", None, "label"),
       "dev": GlueSplit("dev.tsv", "sentence", None, "label"),
       "test": GlueSplit("test.tsv", "sentence", None, None)},
      "binary sentiment (accuracy)")
_glue("MRPC", "MRPC", ("sentence1", "sentence2"), "label", ("0", "1"), ("f1", "accuracy"), "f1",
      _pair_splits("#1 String", "#2 String", "Quality"),
      "paraphrase (F1 of the paraphrase class, and accuracy)")
_glue("STS-B", "STS-B", ("sentence1", "sentence2"), "label", None, ("pearson", "spearmanr"), "pearson",
      _pair_splits("sentence1", "sentence2", "score"),
      "semantic similarity 0-5 (regression; Pearson and Spearman)")
_glue("QQP", "QQP", ("question1", "question2"), "label", ("0", "1"), ("accuracy", "f1"), "accuracy",
      _pair_splits("question1", "question2", "is_duplicate"),
      "duplicate questions (accuracy and F1)")
_glue("MNLI", "MNLI", ("premise", "hypothesis"), "label", ("contradiction", "entailment", "neutral"),
      ("accuracy",), "accuracy",
      {"train": GlueSplit("train.tsv", "sentence1", "sentence2", "gold_label"),
       "dev": GlueSplit("dev_matched.tsv", "sentence1", "sentence2", "gold_label"),
       "dev_matched": GlueSplit("dev_matched.tsv", "sentence1", "sentence2", "gold_label"),
       "dev_mismatched": GlueSplit("dev_mismatched.tsv", "sentence1", "sentence2", "gold_label"),
       "test": GlueSplit("test_matched.tsv", "sentence1", "sentence2", None),
       "test_mismatched": GlueSplit("test_mismatched.tsv", "sentence1", "sentence2", None)},
      "natural language inference, 3 classes (accuracy on dev_matched; dev_mismatched as a split)")
_glue("QNLI", "QNLI", ("question", "sentence"), "label", ("entailment", "not_entailment"), ("accuracy",), "accuracy",
      _pair_splits("question", "sentence", "label"),
      "question-answer entailment (accuracy)")
_glue("RTE", "RTE", ("sentence1", "sentence2"), "label", ("entailment", "not_entailment"), ("accuracy",), "accuracy",
      _pair_splits("sentence1", "sentence2", "label"),
      "recognising textual entailment (accuracy)")
_glue("WNLI", "WNLI", ("sentence1", "sentence2"), "label", ("0", "1"), ("accuracy",), "accuracy",
      _pair_splits("sentence1", "sentence2", "label"),
      "Winograd NLI (accuracy)")

GLUE_TASKS = ("CoLA", "SST-2", "MRPC", "STS-B", "QQP", "MNLI", "QNLI", "RTE", "WNLI")

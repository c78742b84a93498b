"""Config errors said in the user's own terms: the command-line flag, when the value came (or
should come) from the command line.

:func:`~layerkd.cli.options.build_config` merges a ``--config`` file with the command-line
options; the config models (:mod:`layerkd.config`) then report problems by config key
(``train.seed``, ``teacher.path``). Here, with :data:`~layerkd.cli.options.FLAGS` (config key →
flag):

* **a bad value given as an option** names its flag where the message names its source:
  ``--seed: train.seed: Input should be less than or equal to 4294967295 (got 4294967296)`` (was
  ``options: train.seed: …`` or, with a ``--config`` that does not even hold the value,
  ``config run.yaml: train.seed: …``);
* **a required value that is missing** (fine-tuning's model, distillation's teacher and student,
  the task, the data) names the flag that gives it: without ``--config``
  ``missing --teacher: the fine-tuned teacher to distil from (a model directory or hub id)``; with
  one, the key too: ``config run.yaml: teacher.path: missing; set it there or give --teacher``.

Everything else keeps the config's wording (``layerkd.config.format_validation_error``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..config import RunConfig, format_validation_error
from ..errors import ConfigError

#: what each required value is, for the "missing" messages
WHAT = {
    "model": "the model to fine-tune (a model directory or hub id)",
    "teacher.path": "the fine-tuned teacher to distil from (a model directory or hub id)",
    "student": "the student (bottom:2, layers:2,4, config:layers=2,hidden=256, a model directory, bilstm:…, cnn:…)",
    "task": "the task (rte, sst-2, mrpc, …: layerkd tasks lists them)",
    "data.data_dir": "the data (a GLUE directory)",
}
DATA_KEYS = ("data_dir", "train_file", "dev_file", "hf_dataset")


def _missing(merged: dict[str, Any], overrides: dict[str, Any]) -> list[str]:
    """Required keys with no value, for the command whose overrides these are (in the config's
    field order, as the config's own errors come)."""
    out = []
    if merged.get("task") is None:
        out.append("task")
    data = merged.get("data")
    if data is None or (isinstance(data, dict) and not any(data.get(k) is not None for k in DATA_KEYS)):
        out.append("data.data_dir")
    if "model" in overrides and merged.get("model") is None and merged.get("teacher") is None:
        out.append("model")  # finetune (a config that distils is the config's own error)
    if "teacher.path" in overrides and merged.get("model") is None:  # distill
        teacher = merged.get("teacher")
        if not isinstance(teacher, dict) or teacher.get("path") is None:
            out.append("teacher.path")
        if merged.get("student") is None:
            out.append("student")
    return out


def _missing_message(key: str, flags: dict[str, str], overrides: dict[str, Any], config: Path | None) -> str:
    flag = flags[key]
    if key == "data.data_dir" and "data.hf_dataset" in overrides:
        flag = f"{flag} or {flags['data.hf_dataset']}"
    if config is None:
        extra = " (files: data.train_file/dev_file in a --config)" if key == "data.data_dir" else ""
        return f"missing {flag}: {WHAT[key]}{extra}"
    if key == "data.data_dir":
        return (f"config {config}: data: no data source; set data.data_dir, data.train_file/dev_file or data.hf_dataset "
                f"there, or give {flag}")
    return f"config {config}: {key}: missing; set it there or give {flag}"


def _given_key(loc: tuple, given: set[str]) -> str | None:
    """The option key (given on the command line) that the error location lies in, if any."""
    dotted = ".".join(str(p) for p in loc)
    hits = [k for k in given if dotted == k or dotted.startswith(k + ".")]
    return max(hits, key=len) if hits else None


def validate(merged: dict[str, Any], overrides: dict[str, Any], flags: dict[str, str], config: Path | None) -> RunConfig:
    """Validate the merged config; errors name the flag where the user gave (or should give) one."""
    for key in _missing(merged, overrides):
        if key in flags:
            raise ConfigError(_missing_message(key, flags, overrides, config))
    try:
        return RunConfig.model_validate(merged)
    except ValidationError as exc:
        where = f"config {config}" if config else "options"
        text = format_validation_error(exc, where)
        loc = exc.errors()[0]["loc"]
        key = _given_key(loc, {k for k, v in overrides.items() if v is not None and k in flags})
        if key is None:
            raise ConfigError(text) from None
        raise ConfigError(f"{flags[key]}: {text.removeprefix(f'{where}: ')}") from None  # the flag is where it came from

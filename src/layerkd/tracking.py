"""Experiment tracking through Accelerate's trackers: ``--report-to tensorboard,wandb,mlflow``
(``train.report_to``; ``train.tensorboard: true`` is kept as another way to ask for TensorBoard).

The JSONL log (``RUN_DIR/log.jsonl``) is written as before; the trackers receive the same records
as scalars, through :class:`accelerate.Accelerator`'s tracking API (``log_with``,
``init_trackers``, ``log``), from the main process only:

* every training log line: ``train/loss``, ``train/lr``, ``train/term/<objective>`` (each loss
  term, unweighted) at its optimiser step;
* every evaluation: ``eval/<metric>`` and ``eval/main`` at its step;
* at the end: ``final/best/<metric>`` and ``final/last/<metric>`` (the selected and the last
  model, on the test set when the run carved a validation split), and the ALP / Universal-KD
  attention over teacher layers averaged over the selection split
  (``results.json`` ``diagnostics.layer_attention``) as one scalar per (student layer, teacher
  layer): ``attention/<objective>/student<i>/teacher<j>``;
* as the run's configuration (hyper-parameters): the training settings, the task, the stage and
  the config hash that names the run's ``config.yaml``.

Where each tracker writes (nothing is sent anywhere unless its own settings say so):

* ``tensorboard``: ``RUN_DIR/tb`` (the place ``train.tensorboard`` always used);
* ``wandb``: a run in ``RUN_DIR/wandb`` (or ``$WANDB_DIR``), project ``$WANDB_PROJECT`` or
  ``layerkd``, named after the run directory (or ``$WANDB_NAME``). Online or offline is W&B's own
  setting: ``WANDB_MODE=offline`` keeps everything local (``wandb sync`` uploads it later);
* ``mlflow``: the tracking URI in ``$MLFLOW_TRACKING_URI`` (a server, a database, a ``file:``
  store); when none is set, a file store in ``RUN_DIR/mlruns``, because MLflow's own default (a
  SQLite database in the working directory) needs the full ``mlflow`` package, and the lighter
  ``mlflow-skinny`` is what the ``track`` extra installs. MLflow 3 refuses file stores unless
  ``MLFLOW_ALLOW_FILE_STORE`` is true: layerkd sets it for the run (and restores it after) when the
  store in use is a file store. Experiment ``$MLFLOW_EXPERIMENT_NAME`` or ``layerkd``.

A tracker whose package is missing, or that cannot start (e.g. W&B online without a login), is a
user error naming the tracker, raised before the first training step. A resumed run starts a new
tracker run that continues from the checkpoint's step.

Trackers are finished with each tracker's ``finish`` rather than ``Accelerator.end_training``,
which would also tear the process group down while a distributed run still has collective
work to do; a run that fails ends its W&B run with exit code 1 and its MLflow run as ``FAILED``.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from .errors import ConfigError

#: tracker name -> the module it needs (all three come with the ``track`` extra)
TRACKERS = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}
EXTRA_HINT = "pip install 'layerkd[track]'"


def requested(train_cfg) -> list[str]:
    """The trackers a :class:`~layerkd.config.TrainConfig` asks for, in order, each once."""
    names = list(train_cfg.report_to or ())
    if getattr(train_cfg, "tensorboard", False) and "tensorboard" not in names:
        names.insert(0, "tensorboard")
    return list(dict.fromkeys(names))


def parse_report_to(value: str | None) -> list[str] | None:
    """``--report-to tensorboard,wandb`` as a list (``none`` or an empty value: no tracker)."""
    if value is None:
        return None
    names = [v.strip() for v in value.split(",") if v.strip()]
    return [] if names == ["none"] else names


def _check_installed(name: str) -> None:
    try:
        importlib.import_module(TRACKERS[name])
    except ImportError:
        raise ConfigError(f"train.report_to: {name} is not installed; it comes with the 'track' extra: {EXTRA_HINT}") from None


def _scalars(values: dict[str, Any], prefix: str, skip: tuple[str, ...] = ()) -> dict[str, float]:
    """The finite-or-not numbers of a record (bools and strings left out) under ``prefix/``."""
    return {f"{prefix}/{k}": float(v) for k, v in values.items()
            if k not in skip and isinstance(v, (int, float)) and not isinstance(v, bool)}


def record_scalars(record: dict[str, Any]) -> tuple[dict[str, float], int | None]:
    """What a JSONL log record becomes for the trackers: scalars and their step (``train`` and
    ``eval`` records only; others give nothing)."""
    event = record.get("event")
    if event not in ("train", "eval"):
        return {}, None
    return _scalars(record, event, skip=("time", "step", "epoch")), record.get("step")


def final_scalars(result: dict[str, Any]) -> dict[str, float]:
    """The end of a run: selected and last metrics, and the layer-attention summaries."""
    out = {**_scalars(result.get("best") or {}, "final/best"), **_scalars(result.get("last") or {}, "final/last")}
    for key, att in ((result.get("diagnostics") or {}).get("layer_attention") or {}).items():
        for i, row in zip(att["student"], att["weights"], strict=True):
            for j, w in zip(att["teacher"], row, strict=True):
                out[f"attention/{key}/student{i}/teacher{j}"] = float(w)
    return out


def _hparam(v: Any) -> bool | int | float | str:
    """TensorBoard's hparams and MLflow's params take plain values: anything else as its text."""
    if isinstance(v, (bool, int, float, str)):
        return v
    import json  # noqa: PLC0415

    return "null" if v is None else json.dumps(v, sort_keys=True, default=str)


def _is_file_store(uri: str) -> bool:
    return uri.startswith("file:") or "://" not in uri and not uri.startswith(("databricks", "sqlite", "http"))


class Tracking:
    """The trackers of one training run (none when ``names`` is empty: every method is then a no-op)."""

    def __init__(self, names: list[str], output_dir: Path):
        unknown = [n for n in names if n not in TRACKERS]
        if unknown:
            raise ConfigError(f"train.report_to: unknown tracker {unknown[0]!r}; expected one of: {', '.join(TRACKERS)}")
        for n in names:
            _check_installed(n)
        self.names = names
        self.output_dir = Path(output_dir)
        self.trackers = [self._make(n) for n in names]
        self._env_before: dict[str, str | None] = {}
        self._started = False

    @classmethod
    def for_run(cls, train_cfg, output_dir: Path) -> Tracking:
        return cls(requested(train_cfg), output_dir)

    def _make(self, name: str):
        from accelerate.tracking import MLflowTracker, TensorBoardTracker, WandBTracker  # noqa: PLC0415

        run_name = self.output_dir.name or "layerkd"
        if name == "tensorboard":
            return TensorBoardTracker("tb", str(self.output_dir))
        if name == "wandb":
            return WandBTracker(os.environ.get("WANDB_PROJECT") or "layerkd", name=os.environ.get("WANDB_NAME") or run_name,
                                dir=os.environ.get("WANDB_DIR") or str(self.output_dir))
        return MLflowTracker(experiment_name=os.environ.get("MLFLOW_EXPERIMENT_NAME") or "layerkd", run_name=run_name)

    # ------------------------------------------------------------------ the run
    def _set_env(self, key: str, value: str) -> None:
        self._env_before.setdefault(key, os.environ.get(key))
        os.environ[key] = value

    def _restore_env(self) -> None:
        for key, old in self._env_before.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old
        self._env_before = {}

    def start(self, accelerator, config: dict[str, Any]) -> None:
        """Start every tracker (main process) and record the run's configuration."""
        if not self.trackers or not accelerator.is_main_process:
            return
        if "mlflow" in self.names:
            if not os.environ.get("MLFLOW_TRACKING_URI"):
                import mlflow  # noqa: PLC0415

                self._set_env("MLFLOW_TRACKING_URI", (self.output_dir / "mlruns").resolve().as_uri())
                mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
            if _is_file_store(os.environ["MLFLOW_TRACKING_URI"]) and not os.environ.get("MLFLOW_ALLOW_FILE_STORE"):
                self._set_env("MLFLOW_ALLOW_FILE_STORE", "true")
        try:
            accelerator.init_trackers("layerkd", config={k: _hparam(v) for k, v in config.items()})
        except Exception as exc:  # the trackers' own errors (no login, unreachable server, bad URI)
            self._started = True
            self.end(accelerator, failed=True)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"train.report_to: a tracker could not start ({', '.join(self.names)}): "
                              f"{type(exc).__name__}: {first[:300]}") from None
        self._started = True

    def log(self, accelerator, record: dict[str, Any]) -> None:
        """One JSONL log record, as scalars (``train`` and ``eval`` records)."""
        if not self._started:
            return
        values, step = record_scalars(record)
        if values:
            accelerator.log(values, step=step)

    def end(self, accelerator, result: dict[str, Any] | None = None, *, failed: bool = False, step: int | None = None) -> None:
        """Log the final values (when the run finished) and finish every tracker."""
        if not self._started:
            return
        self._started = False
        try:
            if result is not None and not failed:
                values = final_scalars(result)
                if values:
                    accelerator.log(values, step=step)
            for tracker in accelerator.trackers:
                if failed and tracker.name == "wandb":
                    tracker.run.finish(exit_code=1)
                elif failed and tracker.name == "mlflow":
                    import mlflow  # noqa: PLC0415

                    mlflow.end_run(status="FAILED")
                else:
                    tracker.finish()
            accelerator.trackers.clear()
        finally:
            if "mlflow" in self.names and "MLFLOW_TRACKING_URI" in self._env_before:
                import mlflow  # noqa: PLC0415

                mlflow.set_tracking_uri(self._env_before["MLFLOW_TRACKING_URI"])
            self._restore_env()

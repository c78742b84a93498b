"""Progress of every long step: fine-tuning, distilling, the teacher-heads fit, the teacher-cache
build, evaluation, a bench suite.

Two displays, chosen per process (the JSONL metrics log is written either way and never changes):

* **In a terminal** (stderr is a TTY): one ``rich`` display on stderr, a transient bar per
  running step with its label and recipe phase, epoch, step/total, throughput, elapsed time, ETA
  and the smoothed loss terms; log lines (evaluations, warnings) print above it.
* **Elsewhere** (a log file, ``nohup``, CI, a notebook): one plain line per step at a steady
  interval, every ``seconds`` (default 30) or every ``steps`` updates (default off), whichever
  comes first, with the same fields, so a log shows the run is alive::

      distill epoch 1/3 step 120/345 (35%) 3.2 steps/s elapsed 0:37 ETA 1:10 loss 0.4321 (ce 0.1203 kd 0.3118)

  A step that printed a line ends with a ``done`` line (``distill: done, 345 steps in 1:48``).

The loss shown is an exponential moving average (weight :data:`SMOOTHING` on the newest step)
of the weighted total and of every objective's term (unweighted, as ``term/<name>`` in
``log.jsonl``). Evaluation results are one line naming what was evaluated (:func:`format_eval`).

Settings (:data:`SETTINGS`): the global options ``layerkd --quiet`` (no progress, only warnings,
errors and results), ``--verbose`` (debug messages; with ``--quiet``, without progress),
``--progress-seconds S`` and
``--progress-steps N``; or the environment variables ``LAYERKD_PROGRESS_SECONDS``,
``LAYERKD_PROGRESS_STEPS`` and ``LAYERKD_PROGRESS`` (``terminal``, ``plain`` or ``off``: force a
display), which subprocesses such as bench cells inherit. Lines go through the ``layerkd``
logger at INFO level, so a logger set to WARNING shows none.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("layerkd")

#: weight of the newest step in the smoothed loss terms
SMOOTHING = 0.1


@dataclass
class Settings:
    quiet: bool = False
    seconds: float = 30.0  # plain display: a line at least this often …
    steps: int = 0  # … or every this many updates (0: off), whichever comes first
    display: str | None = None  # "terminal", "plain", "off"; None: terminal if stderr is a TTY


def _from_env() -> Settings:
    s = Settings()
    for name, attr, kind in (("LAYERKD_PROGRESS_SECONDS", "seconds", float), ("LAYERKD_PROGRESS_STEPS", "steps", int)):
        raw = os.environ.get(name)
        if raw:
            try:
                setattr(s, attr, max(kind(0), kind(raw)))
            except ValueError:
                log.warning("warning: %s=%r is not a number; using %s", name, raw, getattr(s, attr))
    mode = os.environ.get("LAYERKD_PROGRESS")
    if mode in ("terminal", "plain", "off"):
        s.display = mode
    return s


SETTINGS = _from_env()


def configure(*, quiet: bool | None = None, seconds: float | None = None, steps: int | None = None,
              display: str | None = None) -> None:
    """Change :data:`SETTINGS` (the CLI's global options call this)."""
    for key, value in (("quiet", quiet), ("seconds", seconds), ("steps", steps), ("display", display)):
        if value is not None:
            setattr(SETTINGS, key, value)


def display_kind() -> str:
    """``terminal``, ``plain`` or ``off`` for a step started now."""
    if SETTINGS.quiet or not log.isEnabledFor(logging.INFO):
        return "off"
    if SETTINGS.display is not None:
        return SETTINGS.display
    return "terminal" if sys.stderr.isatty() else "plain"


# ------------------------------------------------------------------------------------------ formatting
def format_duration(seconds: float | None) -> str:
    """``0:07``, ``12:30``, ``1:02:03``; ``?`` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def format_rate(per_second: float | None, unit: str) -> str:
    """``3.2 steps/s`` or, below one per second, ``2.5 s/step``."""
    if not per_second:
        return f"? {unit}s/s"
    if per_second >= 1:
        return f"{per_second:.1f} {unit}s/s"
    return f"{1 / per_second:.1f} s/{unit}"


def format_losses(losses: Mapping[str, float]) -> str:
    """``loss 0.4321 (ce 0.1203 kd 0.3118)``: the total first, then every term."""
    if not losses:
        return ""
    total = losses.get("loss")
    terms = " ".join(f"{k} {v:.4f}" for k, v in losses.items() if k != "loss")
    if total is None:
        return terms
    return f"loss {total:.4f}" + (f" ({terms})" if terms else "")


def format_eval(label: str, split: str, rows: int, metrics: Mapping[str, Any], *, main: str | None = None,
                step: int | None = None, epoch: int | None = None, best: bool = False) -> str:
    """One readable line naming what was evaluated, e.g.
    ``distill: eval validation (366 rows) step 120 epoch 1: f1 0.8123 accuracy 0.7500 (best)``.

    The main metric comes first; ``_main`` and per-part metrics (``layer3/f1`` of the teacher
    heads) are left out."""
    names = [k for k in metrics if not k.startswith("_") and "/" not in k and isinstance(metrics[k], (int, float))]
    if main in names:
        names.remove(main)
        names.insert(0, main)
    where = "".join(f" {k} {v}" for k, v in (("step", step), ("epoch", epoch)) if v is not None)
    values = " ".join(f"{k} {float(metrics[k]):.4f}" for k in names)
    return f"{label + ': ' if label else ''}eval {split} ({rows} rows){where}: {values}{' (best)' if best else ''}"


# ------------------------------------------------------------------------------------------ a step's progress
class Tracker:
    """The progress of one long step; :func:`track` makes one. ``update`` is cheap: the display
    decides when to draw (the terminal at most every :attr:`refresh` s, plain lines at the
    interval of :data:`SETTINGS`). Loss values may be tensors: they are smoothed where they are and
    turned into numbers only when drawn."""

    refresh = 0.25

    def __init__(self, label: str, total: int | None, *, unit: str = "step", completed: int = 0,
                 epochs: int | None = None, clock: Callable[[], float] = time.monotonic):
        self.label, self.total, self.unit, self.epochs = label, total, unit, epochs
        self.completed = self._first = completed
        self.epoch: int | None = None
        self.phase: str | None = None
        self.detail = ""
        self._smoothed: dict[str, Any] = {}
        self._clock = clock
        self.started = self._last_draw = clock()
        self._updates_since_draw = 0
        self._lock = threading.Lock()

    # ---- state
    def update(self, completed: int | None = None, *, advance: int = 0, epoch: int | None = None, phase: str | None = None,
               loss: Any = None, terms: Mapping[str, Any] | None = None, detail: str | None = None) -> None:
        with self._lock:
            self.completed = (self.completed if completed is None else completed) + advance
            if epoch is not None:
                self.epoch = epoch
            if phase is not None:
                self.phase = phase
            if detail is not None:
                self.detail = detail
            if loss is not None:
                self._smooth("loss", loss)
            for k, v in (terms or {}).items():
                self._smooth(k, v)
            self._updates_since_draw += 1
            self._maybe_draw()  # under the lock: a heartbeat thread and the worker never draw the same line twice

    def _smooth(self, key: str, value: Any) -> None:
        value = value.detach() if hasattr(value, "detach") else value
        old = self._smoothed.get(key)
        self._smoothed[key] = value if old is None else old * (1 - SMOOTHING) + value * SMOOTHING

    def losses(self) -> dict[str, float]:
        return {k: float(v) for k, v in self._smoothed.items()}

    def rate(self) -> float | None:
        elapsed = self._clock() - self.started
        done = self.completed - self._first
        return done / elapsed if elapsed > 0 and done > 0 else None

    def eta(self) -> float | None:
        rate = self.rate()
        if rate is None or self.total is None:
            return None
        return max(0, self.total - self.completed) / rate

    # ---- text
    def title(self) -> str:
        """Label, recipe phase and epoch: ``distill [phase2] epoch 2/3``."""
        parts = [self.label]
        if self.phase:
            parts.append(f"[{self.phase}]")
        if self.epoch is not None:
            parts.append(f"epoch {self.epoch}" + (f"/{self.epochs}" if self.epochs else ""))
        return " ".join(parts)

    def status(self, *, counts: bool = True) -> str:
        """Step/total, throughput, elapsed, ETA and the smoothed losses (``counts=False``: without
        step/total, which the terminal display shows beside its bar)."""
        parts = []
        if counts:
            pct = f" ({100 * self.completed / self.total:.0f}%)" if self.total else ""
            parts.append(f"{self.unit} {self.completed}/{self.total if self.total is not None else '?'}{pct}")
        parts += [format_rate(self.rate(), self.unit), f"elapsed {format_duration(self._clock() - self.started)}",
                  f"ETA {format_duration(self.eta())}"]
        losses = format_losses(self.losses())
        if losses:
            parts.append(losses)
        if self.detail:
            parts.append(f"| {self.detail}")
        return " ".join(parts)

    def line(self) -> str:
        return f"{self.title()} {self.status()}"

    # ---- display (the base class shows nothing)
    def _maybe_draw(self) -> None:
        pass

    def close(self, ok: bool) -> None:
        pass


class PlainTracker(Tracker):
    """Log lines at a steady interval (see :data:`SETTINGS`), and a ``done`` line if it printed any."""

    def __init__(self, *a, summary: bool = True, **k):
        super().__init__(*a, **k)
        self.summary = summary
        self.lines = 0

    def _maybe_draw(self) -> None:
        now = self._clock()
        due_time = SETTINGS.seconds >= 0 and now - self._last_draw >= SETTINGS.seconds
        due_steps = SETTINGS.steps > 0 and self._updates_since_draw >= SETTINGS.steps
        if due_time or due_steps:
            self._last_draw, self._updates_since_draw = now, 0
            self.lines += 1
            log.info(self.line())

    def close(self, ok: bool) -> None:
        if ok and self.summary and self.lines:
            done = self.completed - self._first
            log.info("%s: done, %d %ss in %s", self.label, done, self.unit, format_duration(self._clock() - self.started))


class RichTracker(Tracker):
    """A task of the shared ``rich`` display (:class:`_Live`)."""

    def __init__(self, live: _Live, *a, **k):
        super().__init__(*a, **k)
        self.live = live
        self.task = live.progress.add_task(self.title(), total=self.total, completed=self.completed, status=self.status(counts=False))

    def _maybe_draw(self, force: bool = False) -> None:
        now = self._clock()
        if force or now - self._last_draw >= self.refresh:
            self._last_draw = now
            self.live.progress.update(self.task, completed=self.completed, total=self.total, description=self.title(),
                                      status=self.status(counts=False))

    def close(self, ok: bool) -> None:
        self._maybe_draw(force=True)
        self.live.progress.remove_task(self.task)


class _Live:
    """The one ``rich`` display of the process, shared by nested steps (training → evaluation);
    while it runs, the log handlers that write to stderr write above it."""

    current: _Live | None = None

    def __init__(self, console=None):
        from rich.console import Console  # noqa: PLC0415
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn  # noqa: PLC0415

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(bar_width=30), MofNCompleteColumn(),
                                 TextColumn("{task.fields[status]}"), console=console or Console(stderr=True),
                                 transient=True, redirect_stderr=True, redirect_stdout=False)
        self.users = 0
        self._handlers: list[tuple[logging.StreamHandler, Any]] = []

    def enter(self) -> None:
        if self.users == 0:
            stderr = sys.stderr
            self.progress.start()
            for h in {*logging.getLogger().handlers, *log.handlers}:
                if isinstance(h, logging.StreamHandler) and h.stream in (stderr, sys.__stderr__) and sys.stderr is not stderr:
                    self._handlers.append((h, h.setStream(sys.stderr)))  # rich's proxy: lines go above the display
        self.users += 1

    def exit(self) -> None:
        self.users -= 1
        if self.users == 0:
            for h, old in self._handlers:
                h.setStream(old)
            self._handlers.clear()
            self.progress.stop()
            _Live.current = None


@contextmanager
def track(label: str, total: int | None, *, unit: str = "step", completed: int = 0, epochs: int | None = None,
          enabled: bool = True, summary: bool = True, console=None) -> Iterator[Tracker]:
    """The progress of one long step (see the module docstring). ``enabled=False`` (another
    process of a distributed run, a caller that wants silence) shows nothing; ``summary``: a plain
    display ends with a ``done`` line when it printed any; ``console``: draw the terminal display
    on this ``rich`` console (tests)."""
    kind = "terminal" if console is not None else display_kind() if enabled else "off"
    kw = {"unit": unit, "completed": completed, "epochs": epochs}
    if kind == "terminal":
        live = _Live.current or _Live(console)
        _Live.current = live
        live.enter()
        tracker: Tracker = RichTracker(live, label, total, **kw)
    elif kind == "plain":
        tracker = PlainTracker(label, total, summary=summary, **kw)
    else:
        tracker = Tracker(label, total, **kw)
    ok = False
    try:
        yield tracker
        ok = True
    finally:
        tracker.close(ok)
        if kind == "terminal":
            live.exit()


@contextmanager
def heartbeat(beat: Callable[[], None], every: float) -> Iterator[None]:
    """Call ``beat()`` every ``every`` seconds in a background thread while the block runs."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every):
            beat()

    thread = threading.Thread(target=loop, name="layerkd-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()

"""Where a command may write: the guard every output directory (and output file) passes first.

Rules (``docs/errors.md``, "Output directories"), checked before anything is created or removed:

* **Never over or around an input.** An output directory is refused when it *is*, *contains* or
  *lies inside* any input of the command: the data directory or files, the model being
  fine-tuned, the teacher, the student or assistant source, the teacher heads, the teacher cache,
  the config file (paths compared after resolving symlinks). This holds with and without
  ``--overwrite``: writing there would mix outputs into an input, and replacing it would delete it.
* **Never ``.``, ``~`` or a root**, nor a directory that contains the working or home directory.
* **``--overwrite`` only replaces layerkd's own directories**: one that carries the run marker
  (:data:`MARKER`), which a command writes when it creates (or first fills) its output directory.
  The marker records the kind of output (``run``: finetune, distill, fit-heads; ``demo``;
  ``report``) and a command only writes into, or replaces, a directory of its own kind. A
  non-empty directory without it is refused whatever the flags (``--resume`` also accepts a
  directory that holds ``checkpoints/``, from runs made before the marker existed).
* **Writable, or one line why not**: below a file, a symlink loop, a dangling symlink, no write
  permission, a read-only file system are refused up front, and any ``OSError`` while creating the
  directory becomes the same one-line error.
* **One writer at a time.** A command holds an exclusive :mod:`filelock` lock on
  ``OUT/.layerkd.lock`` while it runs; a second command on the same directory stops with exit 2.
  (``filelock`` uses ``flock`` where it works and falls back to a lock file elsewhere.)
* **A failure leaves nothing behind.** If the command fails or is interrupted before its first
  checkpoint (``checkpoints/step-*``, or a finished run's ``metrics.json``, anywhere up to two
  levels down: :func:`has_checkpoint`), what it created is removed
  again — the directory itself when the command created it, else only the entries that were not
  there before — and nothing else.

The marker and the lock file are hidden files (``.layerkd-run``, ``.layerkd.lock``) and do not
count as contents: a directory holding only them is empty.
"""

from __future__ import annotations

import datetime as _dt
import errno
import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

MARKER = ".layerkd-run"
LOCK = ".layerkd.lock"
OWN_FILES = frozenset({MARKER, LOCK, f".{MARKER}.tmp"})


@dataclass(frozen=True)
class Input:
    """A path the command reads: ``label`` names it in messages (e.g. ``the teacher``)."""

    label: str
    path: Path

    @property
    def real(self) -> Path:
        return Path(os.path.realpath(self.path))


# inputs the stage cannot see in its RunConfig (the config file), set by the CLI for one command
_EXTRA_INPUTS: ContextVar[tuple[Input, ...]] = ContextVar("layerkd_extra_inputs", default=())


@contextmanager
def config_file_input(path: str | Path | None) -> Iterator[None]:
    """Within the block, the config file ``path`` counts as an input of every run (CLI use)."""
    token = _EXTRA_INPUTS.set(_EXTRA_INPUTS.get() + ((Input("the config file", Path(path)),) if path else ()))
    try:
        yield
    finally:
        _EXTRA_INPUTS.reset(token)


def input_paths(cfg) -> list[Input]:
    """Every local path a run config reads (hub ids and student specs such as ``bottom:2`` are
    not paths and are left out), plus the teacher cache of a run with a teacher and the config
    file of the command (:func:`config_file_input`)."""
    items: list[tuple[str, str | None]] = []
    d = cfg.data
    items += [("the data directory", d.data_dir), ("the training file", d.train_file), ("the dev file", d.dev_file),
              ("the dataset directory", d.hf_dataset)]
    items += [(f"the evaluation file {name!r}", es.file) for name, es in d.extra_eval.items()]
    items += [("the model being fine-tuned", cfg.model), ("the student", cfg.student), ("the assistant", cfg.assistant)]
    out = [Input(label, Path(p)) for label, p in items if p and os.path.lexists(p)]
    if cfg.teacher is not None:
        out += [Input(label, Path(p)) for label, p in (("the teacher", cfg.teacher.path), ("the teacher heads", cfg.teacher.heads))
                if p and os.path.lexists(p)]
        if cfg.cache.enabled:
            from .stages.distill import cache_root  # noqa: PLC0415

            root = cache_root(cfg)  # it may not exist yet: the run creates it
            if os.path.exists(root) and not os.path.isdir(root):  # refused before anything is created
                raise ConfigError(f"teacher cache directory {root} exists and is a file; give a directory "
                                  "(cache.dir / --cache-dir)")
            out.append(Input("the teacher cache", root))
    return out + list(_EXTRA_INPUTS.get())


# ------------------------------------------------------------------------------------------ checks
def _relation(out: Path, inp: Path) -> str | None:
    if out == inp:
        return "is"
    if out in inp.parents:
        return "contains"
    if inp in out.parents:
        return "lies inside"
    return None


def check_location(path: str | Path, inputs: Iterable[Input], what: str = "output directory") -> Path:
    """Refuse ``.``/``~``/a root (or a directory containing the working or home directory) and any
    overlap with ``inputs``. Reads only; returns the resolved path."""
    real = Path(os.path.realpath(path))
    cwd, home = Path.cwd().resolve(), Path.home().resolve()
    for place, where in ((cwd, "the working directory"), (home, "your home directory")):
        if real == place:
            raise ConfigError(f"{what} {path} is {where}; give a new directory for the outputs")
        if real in place.parents:
            raise ConfigError(f"{what} {path} contains {where}; give a new directory for the outputs")
    if real.parent == real:
        raise ConfigError(f"{what} {path} is a filesystem root; give a new directory for the outputs")
    for inp in inputs:
        rel = _relation(real, inp.real)
        if rel is not None:
            raise ConfigError(f"{what} {path} {rel} {inp.label} {inp.path}; outputs never go into, over or around an "
                              "input: choose another directory")
    return real


def _broken_link(p: Path) -> str | None:
    """Why the symlink ``p`` cannot be followed (None if it is not a broken link)."""
    if not os.path.islink(p) or os.path.exists(p):
        return None
    try:
        os.stat(p)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return f"{p} is a symlink loop"
    return f"{p} is a symlink to {os.readlink(p)}, which does not exist"


def _writable(d: Path) -> str | None:
    if os.access(d, os.W_OK | os.X_OK):
        return None
    try:
        if os.statvfs(d).f_flag & os.ST_RDONLY:
            return f"{d} is on a read-only file system"
    except OSError:
        pass
    return f"no write permission in {d}"


def check_writable(path: str | Path, what: str = "output directory", *, directory: bool = True) -> None:
    """Refuse a path that cannot become a directory (``directory``) or a file we can write: a
    broken symlink on the way, a file where a directory must be (or the reverse), no permission,
    a read-only file system. Reads only."""
    p = Path(path)
    why = _broken_link(p)
    if why is None and p.exists():
        if directory and not p.is_dir():
            raise ConfigError(f"{what} {p} exists and is a file")
        if not directory and p.is_dir():
            raise ConfigError(f"{what} {p}: is a directory; give a file name (e.g. {p / 'eval.json'})")
        why = _writable(p if directory else p.parent)
    elif why is None or not directory:
        anc = p.parent if why is not None else p  # a file output replaces a broken link; a directory cannot
        while not os.path.lexists(anc) and anc != anc.parent:
            anc = anc.parent
        why = _broken_link(anc)
        if why is None and anc.exists() and not anc.is_dir():
            why = f"{anc} is a file, not a directory"
        elif why is None and anc.exists():
            why = _writable(anc)
    if why is not None:
        raise ConfigError(f"cannot write {what} {p}: {why}")


def _contents(d: Path) -> list[Path]:
    return [c for c in d.iterdir() if c.name not in OWN_FILES] if d.is_dir() else []


def is_marked(d: Path) -> bool:
    return (Path(d) / MARKER).is_file()


def marker_kind(d: Path) -> str | None:
    """The kind of layerkd output ``d`` holds (None: no marker). A marker without a readable kind
    counts as a run's."""
    if not is_marked(d):
        return None
    try:
        kind = json.loads((Path(d) / MARKER).read_text(encoding="utf-8")).get("kind")
    except (OSError, ValueError, AttributeError):
        kind = None
    return kind if isinstance(kind, str) and kind else "run"


def _check_contents(out: Path, *, overwrite: bool, resume: bool, reuse: Callable[[Path], bool] | None, kind: str,
                    what: str) -> bool:
    """Whether ``out`` holds anything; refuse what may not be written over. ``reuse``: a command
    that replaces only its own file names in a directory (demo, report) accepts a directory for
    which it returns True."""
    if not _contents(out):
        return False
    found = marker_kind(out)
    marked = found == kind
    if reuse is not None:
        if marked or reuse(out):
            return True
    elif resume:
        if marked or (out / "checkpoints").is_dir():
            return True
    elif overwrite:
        if marked:
            return True
    elif marked:
        raise ConfigError(f"{what} {out} exists and is not empty; pass --overwrite to replace it or --resume to "
                          "continue")
    why = f"was not created by layerkd (no {MARKER} marker)" if found is None else f"holds another layerkd output (a {found})"
    raise ConfigError(f"{what} {out} exists, is not empty and {why}, so it is never written into or replaced: "
                      "choose another directory")


# ------------------------------------------------------------------------------------------ the lock
def acquire_lock(out: Path, what: str = "output directory"):
    """Take the exclusive lock of ``out`` (which exists) and return it (``.release()`` it); a
    one-line error if another command holds it."""
    from filelock import FileLock, Timeout  # noqa: PLC0415

    lock = FileLock(str(out / LOCK))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise ConfigError(f"{what} {out} is in use by another layerkd command (it holds {out / LOCK}); wait for it to "
                          "finish or choose another directory") from None
    except OSError as exc:
        raise ConfigError(f"cannot lock {what} {out}: {exc.strerror or exc}") from None
    return lock


# ------------------------------------------------------------------------------------------ the directory
def has_checkpoint(out: Path) -> bool:
    """Work a failure must not throw away, in ``out`` or up to two levels below (takd's assistant,
    the demo's teacher and students): a completed ``checkpoints/step-*`` (what ``--resume``
    continues from) or a finished run (its ``metrics.json``; finished runs drop their checkpoints)."""
    from .checkpoint import list_checkpoints  # noqa: PLC0415

    levels = ("", "*/", "*/*/")
    if any(list_checkpoints(d) for lv in levels for d in out.glob(f"{lv}checkpoints")):
        return True
    return any(True for lv in levels for _ in out.glob(f"{lv}metrics.json"))


def _write_marker(out: Path, kind: str) -> None:
    from . import __version__, jsonio  # noqa: PLC0415
    from .checkpoint import atomic_write_text  # noqa: PLC0415

    if marker_kind(out) != kind:
        stamp = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        atomic_write_text(out / MARKER, jsonio.dumps({"created_by": "layerkd", "kind": kind, "version": __version__,
                                                      "created_at": stamp}) + "\n")


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)


def _make(out: Path, what: str) -> Path | None:
    """Create ``out`` (and missing parents); return the topmost directory created (None: it existed)."""
    top = next((p for p in (*reversed(out.parents), out) if not os.path.lexists(p)), None)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {what} {out}: {exc.strerror or exc}") from None
    return top


def _undo(out: Path, created: Path | None, before: set[str]) -> None:
    """Remove what this command created in ``out``: all of it if it created ``out`` (from the
    topmost new parent), else the entries that were not there before."""
    if created is not None:
        shutil.rmtree(created, ignore_errors=True)
    elif out.is_dir():
        for child in out.iterdir():
            if child.name not in before:
                _remove(child)


@contextmanager
def run_directory(path: str | Path | None, *, overwrite: bool = False, resume: bool = False, inputs: Iterable[Input] = (),
                  reuse: Callable[[Path], bool] | None = None, what: str = "output directory", kind: str = "run",
                  main: bool = True, barrier: Callable[[], None] = lambda: None) -> Iterator[Path]:
    """Check, create, lock and mark a command's output directory; yield it; on a failure before
    the first checkpoint remove what this command created (see the module docstring).

    ``overwrite`` clears a directory marked as a ``kind`` output; ``resume`` continues in one;
    ``reuse`` (demo, report) accepts an existing directory as is when it is marked as a ``kind``
    output or ``reuse(dir)`` is true. With several
    processes every process checks (reads only), then only ``main`` creates, locks, clears and
    marks, between two ``barrier()`` calls."""
    if path is None:
        raise ConfigError("output_dir: missing; give --output-dir")
    out = Path(path)
    inputs = list(inputs)
    check_location(out, inputs, what)
    check_writable(out, what)
    _check_contents(out, overwrite=overwrite, resume=resume, reuse=reuse, kind=kind, what=what)
    barrier()  # every process has looked before the main one changes anything
    created, before, lock = None, set(), None
    if main:
        created = _make(out, what)
        before = {c.name for c in out.iterdir()}
        try:
            lock = acquire_lock(out, what)
            # again under the lock: another command may have written here since the first look
            if _check_contents(out, overwrite=overwrite, resume=resume, reuse=reuse, kind=kind, what=what) and overwrite and not resume \
                    and reuse is None:
                for child in _contents(out):
                    _remove(child)
                before = {c.name for c in out.iterdir()}
            _write_marker(out, kind)
        except BaseException as exc:
            _undo(out, created, before)
            if lock is not None:
                lock.release()
            if isinstance(exc, OSError):
                raise ConfigError(f"cannot write {what} {out}: {exc.strerror or exc}") from None
            raise
    try:
        barrier()
        yield out
    except BaseException:
        if main and not has_checkpoint(out):
            _undo(out, created, before)
        raise
    finally:
        if lock is not None:
            lock.release()


def evaluation_inputs(file: str | Path | None, data_dir: str | Path | None) -> list[Input]:
    """The data ``layerkd evaluate`` reads (its model directory is where results go by default)."""
    return [Input(label, Path(p)) for label, p in (("the data file", file), ("the data directory", data_dir)) if p]


def check_output_file(path: str | Path, inputs: Iterable[Input], what: str = "evaluate --output", *,
                      model_dir: str | Path | None = None) -> Path:
    """A result file (``evaluate --output``): not a directory, writable, neither an input nor
    inside one. Inside ``model_dir`` (where results go by default) only an existing file that is
    not an ``eval*.json`` result is refused: it is part of the model."""
    p = Path(path)
    check_writable(p, what, directory=False)
    real = Path(os.path.realpath(p))
    for inp in inputs:
        rel = _relation(real, inp.real)
        if rel is not None:
            raise ConfigError(f"{what} {p} {rel} {inp.label} {inp.path}; results never go into or over an input: "
                              "choose another file")
    if model_dir is not None and _relation(real, Path(os.path.realpath(model_dir))) == "lies inside" and p.exists() \
            and not (p.name.startswith("eval") and p.suffix == ".json"):
        raise ConfigError(f"{what} {p} is a file of the model {model_dir}; results never go over an input: choose another file")
    return p


def check_place(path: str | Path, inputs: Iterable[Input], what: str) -> None:
    """Location and writability of a directory a command writes into without replacing it (a
    shared ``bench --results`` directory): :func:`check_location` + :func:`check_writable`."""
    check_location(path, inputs, what)
    check_writable(path, what)


def _legacy_report(d: Path) -> bool:
    """A report directory written before the marker existed: no marker, a ``report.md``."""
    return not is_marked(d) and (d / "report.md").is_file()


def writes_report_dir(fn):
    """Decorator for ``fn(results_dir, out_dir, ...)`` (``layerkd report``): run it inside
    :func:`run_directory` on ``out_dir`` — never over or around the results directory, locked,
    and a directory that is not empty must be marked or hold a ``report.md`` (a report written
    before the marker existed): the report replaces its own files there, nothing else."""
    import functools  # noqa: PLC0415

    @functools.wraps(fn)
    def wrapper(results_dir, out_dir, *args, **kwargs):
        inputs = [Input("the results directory", Path(results_dir))]
        with run_directory(out_dir, inputs=inputs, reuse=_legacy_report, what="report directory", kind="report"):
            return fn(results_dir, out_dir, *args, **kwargs)

    return wrapper

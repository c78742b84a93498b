"""How the ``layerkd`` command ends: exit codes, usage errors and interruptions.

Exit codes (documented in ``docs/errors.md``):

* ``0`` — success;
* ``1`` — a bug (the traceback is printed) or a ``layerkd bench`` in which cells failed;
* ``2`` — a user error: one line ``error: …`` (bad input, config, model pair, and every
  command-line usage error: an unknown option, a value of the wrong type, a missing argument);
* ``130`` — interrupted by SIGINT (Ctrl-C); ``143`` — stopped by SIGTERM.

Typer ≥ 0.20 ships its own copy of click (``typer._click``), whose exception classes are not
``click``'s: the usage-error check looks for both, so it holds with either kind of typer. A
usage error prints click's usage line and hint, then one line ``error: <message>``.

An interrupted ``finetune``/``distill`` (SIGINT, or SIGTERM, which :func:`sigterm_raises` turns
into the same exception so every clean-up that handles Ctrl-C runs) leaves its output directory
as :func:`interrupted_message` says: with a completed checkpoint the directory is kept (that is
what ``--resume`` continues from); without one the stage removes what it created and no empty
``checkpoints/`` is left behind.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

EXIT_OK, EXIT_BUG, EXIT_USER = 0, 1, 2
EXIT_SIGINT, EXIT_SIGTERM = 128 + signal.SIGINT, 128 + signal.SIGTERM  # 130, 143


class Terminated(KeyboardInterrupt):
    """Raised by the SIGTERM handler: a KeyboardInterrupt, so every clean-up for Ctrl-C runs."""

    exit_code = EXIT_SIGTERM


class Interrupted(Exception):  # noqa: N818 - it is the message the command ends with, not an error
    """A stage was interrupted; ``str()`` is the message, ``exit_code`` 130 or 143."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` (Python's default ends the process
    at once, skipping every clean-up). Outside the main thread the block runs as is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _click_modules() -> list:
    """The click copies the installed typer may raise from: its vendored ``typer._click``
    (typer ≥ 0.20) and the ``click`` package (older typer, or anything else on the path)."""
    mods = []
    import typer  # noqa: PLC0415

    vendored = getattr(typer, "_click", None)
    if vendored is None:
        with contextlib.suppress(ImportError):
            import typer._click as vendored  # noqa: PLC0415
    if vendored is not None:
        mods.append(vendored)
    with contextlib.suppress(ImportError):
        import click  # noqa: PLC0415

        mods.append(click)
    return mods


def click_exception_types() -> tuple[type, ...]:
    return tuple({m.exceptions.ClickException for m in _click_modules()})


def _typer_and_click(name: str) -> tuple[type, ...]:
    import typer  # noqa: PLC0415

    found = [getattr(typer, name, None), *(getattr(m.exceptions, name, None) for m in _click_modules())]
    return tuple({t for t in found if isinstance(t, type)})


def exit_types() -> tuple[type, ...]:
    """typer.Exit (typer's own class in typer ≥ 0.20) and click's ``Exit``."""
    return _typer_and_click("Exit")


def abort_types() -> tuple[type, ...]:
    return _typer_and_click("Abort")


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def show_usage_error(exc: BaseException) -> int:
    """Print a click usage error as click's usage line + hint, then one ``error:`` line; return
    the exit code, 2 (a user error, whatever code click gives the exception). A bare command group (``layerkd``, ``layerkd cache``) prints its
    help first, then ``error: missing command``."""
    ctx = getattr(exc, "ctx", None)
    if type(exc).__name__ == "NoArgsIsHelpError":
        text = exc.format_message() if hasattr(exc, "format_message") else ""
        if text.strip():  # plain click puts the help in the message; typer's rich help printed it already
            print(text, file=sys.stderr)
        print("error: missing command (see the list above)", file=sys.stderr)
        return EXIT_USER
    if ctx is not None:
        with contextlib.suppress(Exception):
            print(ctx.get_usage(), file=sys.stderr)
            if ctx.command.get_help_option(ctx) is not None:
                print(f"Try '{ctx.command_path} {ctx.help_option_names[0]}' for help.", file=sys.stderr)
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    print(f"error: {one_line(message)}", file=sys.stderr)
    return EXIT_USER


def _only_unfinished(ckpt_dir: Path) -> bool:
    """``checkpoints/`` holds nothing a resume could use: no ``step-*`` checkpoint, only ``best``
    and the temporary/aside directories of interrupted writes."""
    return all(p.name == "best" or (p.name.startswith(".") and p.name.endswith((".tmp", ".old")))
               for p in ckpt_dir.iterdir())


def interrupted_message(output_dir: str | Path | None, exc: KeyboardInterrupt) -> Interrupted:
    """What an interrupted training stage tells the user, after the stage's own clean-up ran.
    Removes a ``checkpoints/`` directory that holds no completed checkpoint."""
    from .checkpoint import list_checkpoints  # noqa: PLC0415

    code = getattr(exc, "exit_code", EXIT_SIGINT)
    what = "terminated (SIGTERM)" if code == EXIT_SIGTERM else "interrupted"
    if output_dir is None:
        return Interrupted(what, code)
    out = Path(output_dir)
    ckpts = out / "checkpoints"
    done = list_checkpoints(ckpts)
    if done:
        return Interrupted(f"{what}; the last checkpoint {done[-1].name} is kept in {ckpts}: rerun the same command "
                           "with --resume to continue", code)
    if ckpts.is_dir() and _only_unfinished(ckpts):
        shutil.rmtree(ckpts, ignore_errors=True)
    if not out.exists():
        return Interrupted(f"{what} before the first checkpoint; {out} was removed", code)
    return Interrupted(f"{what} before the first checkpoint; nothing to resume in {out}", code)

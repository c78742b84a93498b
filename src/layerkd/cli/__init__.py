"""The ``layerkd`` command.

User errors (bad files, config keys, impossible pairs …) print one line ``error: …`` and exit
with code 2; nothing half-written is left behind. One module per group of commands: ``train``
(finetune, distill, fit-heads, methods, demo), ``evaluate``, ``bench`` (bench, report, tasks),
``cache``, ``export``; shared option types and the config building in ``options``.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Annotated

import typer

from ..errors import LayerKDError
from ..progress import SETTINGS
from ..progress import configure as configure_progress

# isort: off
# each module registers its commands; this order is the order `layerkd --help` lists them in
from . import train, evaluate, export, cache, bench  # noqa: F401
# isort: on
from .app import app, cache_app
from .options import build_config

__all__ = ["app", "build_config", "cache_app", "main"]


def _setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s", stream=sys.stderr)
    logging.getLogger("layerkd").setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("accelerate", "transformers", "urllib3", "filelock", "httpx", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@app.callback()
def _global_options(
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress display or lines; only warnings, errors "
                                                              "and results")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="debug messages too (with --quiet: without progress)")] = False,
    progress_seconds: Annotated[float, typer.Option("--progress-seconds", min=0, help=(
        "away from a terminal: a progress line at least this often (also LAYERKD_PROGRESS_SECONDS)"))] = SETTINGS.seconds,
    progress_steps: Annotated[int, typer.Option("--progress-steps", min=0, help=(
        "away from a terminal: also a progress line every N steps, 0 = off (also LAYERKD_PROGRESS_STEPS)"))] = SETTINGS.steps,
) -> None:
    """Options for every command (given before it: layerkd --quiet distill …); see layerkd.progress."""
    if quiet or verbose:
        logging.getLogger("layerkd").setLevel(logging.DEBUG if verbose else logging.WARNING)
    configure_progress(quiet=quiet, seconds=progress_seconds, steps=progress_steps)


def main() -> None:
    """Run the command and exit with its code (see :mod:`layerkd.exits`: 0 ok, 1 bug or failed
    bench cells, 2 user or usage error, 130 interrupted, 143 terminated)."""
    from .. import exits  # noqa: PLC0415

    _setup_logging(verbose=bool(os.environ.get("LAYERKD_VERBOSE")))
    try:
        code = app(standalone_mode=False)
        from ..stages.common import end_distributed  # noqa: PLC0415

        end_distributed()  # after a distributed command: see its docstring
    except LayerKDError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exits.EXIT_USER)
    except exits.Interrupted as exc:
        typer.echo(str(exc), err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt as exc:
        typer.echo("interrupted", err=True)
        sys.exit(getattr(exc, "exit_code", exits.EXIT_SIGINT))
    except Exception as exc:
        if isinstance(exc, exits.click_exception_types()):  # usage errors (typer's own click copy too)
            sys.exit(exits.show_usage_error(exc))
        if isinstance(exc, exits.exit_types()):
            sys.exit(exc.exit_code)
        if isinstance(exc, exits.abort_types()):
            typer.echo("interrupted", err=True)
            sys.exit(exits.EXIT_SIGINT)
        raise
    # without standalone mode typer returns the exit code of a command that raised typer.Exit
    # (a bench with failed cells: 1) and 130 for a Ctrl-C it caught
    if isinstance(code, int) and code:
        if code == exits.EXIT_SIGINT:
            typer.echo("interrupted", err=True)
        sys.exit(code)


"""The typer applications every command module registers on (:mod:`layerkd.cli`)."""

from __future__ import annotations

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode="rich",
    help=(
        "layerkd — intermediate-layer knowledge distillation for text classifiers.\n\n"
        "Typical flow: [bold]layerkd finetune[/] a teacher, [bold]layerkd distill[/] it into a student with a "
        "method ([bold]layerkd methods[/] lists them), [bold]layerkd evaluate[/] any saved model. "
        "[bold]layerkd demo[/] runs the whole thing offline in a few minutes."
    ),
)
cache_app = typer.Typer(help="Inspect or clear the teacher-output cache.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")

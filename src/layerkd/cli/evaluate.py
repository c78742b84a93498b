"""The ``evaluate`` command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .. import jsonio
from .app import app
from .defaults import config_default, with_default
from .options import (
    DataDirOpt,
    HfConfigOpt,
    HfDatasetOpt,
    LabelColumnOpt,
    RemoteOpt,
    TextColumnsOpt,
    hf_options,
)


@app.command()
def evaluate(
    model_dir: Annotated[str, typer.Argument(help="a saved model directory (any layerkd/Hugging Face model)")],
    task: Annotated[str | None, typer.Option("--task", help="task the model was trained for (optional with --hf-dataset: "
                                                             "its label column defines the task)")] = None,
    data_dir: DataDirOpt = None,
    split: Annotated[str, typer.Option("--split", help="GLUE split (dev, train, dev_mismatched …)")] = "dev",
    file: Annotated[Path | None, typer.Option("--file", help="any labelled TSV/CSV/JSONL file instead of a GLUE split")] = None,
    columns: Annotated[str | None, typer.Option("--columns", help="text_a=COL,text_b=COL,label=COL for --file")] = None,
    max_length: Annotated[int | None, typer.Option("--max-length", help=with_default(
        "max tokens per input", f"the model's training max length (train.max_length of its config.yaml), else "
                                f"{config_default('train.max_length')}"))] = None,
    output: Annotated[Path | None, typer.Option("--output", help="write the metrics JSON here (default MODEL_DIR/eval-split-<split>.json "
                                                "or eval-file-<name>-<hash>.json; never replaces another evaluation)")] = None,
    hf_dataset: HfDatasetOpt = None,
    hf_config: HfConfigOpt = None,
    text_columns: TextColumnsOpt = None,
    label_column: LabelColumnOpt = None,
    trust_remote_code: RemoteOpt = False,
) -> None:
    """Score a saved model on a split or a file; prints and writes every metric of the task."""
    from ..stages.evaluate import evaluate_model  # noqa: PLC0415
    from ..tasks import get_task, task_from_config  # noqa: PLC0415

    hf = hf_options(hf_dataset, hf_config, text_columns, label_column)
    if hf_dataset is not None:
        columns = columns or hf["data.columns"]
    if task is None and hf_dataset is None:
        import click  # noqa: PLC0415

        raise click.MissingParameter(param_hint="'--task'", param_type="option")
    if task is None:
        from ..data.hf_task import infer_task  # noqa: PLC0415

        t = task_from_config(infer_task(hf_dataset, hf_config, columns, split=split))
        columns = None  # the task names the columns now
    else:
        t = get_task(task)
    if sum(x is not None for x in (data_dir, file, hf_dataset)) != 1:
        from ..errors import DataError  # noqa: PLC0415

        raise DataError("evaluate: give either --data-dir (with --split) or --file, or --hf-dataset (with --split)")
    from ..checkpoint import atomic_write_text  # noqa: PLC0415
    from ..eval_output import check_replaceable, default_name, evaluation_id  # noqa: PLC0415

    ident = evaluation_id(model_dir, data_dir=None if data_dir is None else str(data_dir), split=split,
                          file=None if file is None else str(file), columns=columns)
    if hf_dataset is not None:
        ident.update(hf_dataset=hf_dataset, hf_config=hf_config, columns=columns)
    out = output or (Path(model_dir) / default_name(ident) if Path(model_dir).is_dir() else None)
    if out is not None:
        from ..outputs import check_output_file, evaluation_inputs  # noqa: PLC0415

        check_output_file(out, evaluation_inputs(file, data_dir), model_dir=model_dir)  # writable, not over/in the data
        check_replaceable(out, ident)  # before any work: never replaces another evaluation
    res = evaluate_model(model_dir, t, data_dir=None if data_dir is None else str(data_dir), split=split,
                         file=None if file is None else str(file), columns=columns, max_length=max_length,
                         trust_remote_code=trust_remote_code, hf_dataset=hf_dataset, hf_config=hf_config)
    if out is not None:
        check_replaceable(out, ident)  # again: another process may have written it meanwhile
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, jsonio.dumps({**res, "evaluated": ident}, indent=2))
    typer.echo(jsonio.dumps(res, indent=2))

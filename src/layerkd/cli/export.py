"""The ``layerkd export`` command; the work is
:func:`layerkd.deploy.export_run.export_run`, the documentation ``docs/export.md``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from ..deploy import DEFAULT_TOLERANCE
from .app import app


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB"


def summary(meta: dict[str, Any]) -> list[str]:
    """The lines the command prints (the full report is ``export.json``)."""
    v, sizes, out = meta["verification"], meta["sizes"], Path(meta["output"])
    main = v["main_metric"]
    lines = [f"exported {meta['source']} ({meta['kind']}) to {out / meta['files']['fp32']} ({_mb(sizes[meta['files']['fp32']])}; "
             f"PyTorch weights {_mb(sizes['pytorch_weights'])})",
             f"verified on {v['rows']} rows of {v['data']}: max |logit difference| {v['max_abs_diff']:.2e} "
             f"≤ tolerance {v['tolerance']['max_abs_logit_diff']:.0e}; {main} PyTorch {v['metrics']['pytorch'][main]:.4f}, "
             f"ONNX {v['metrics']['onnx'][main]:.4f}"]
    if "int8" in v:
        q = v["int8"]
        agree = "" if q["argmax_agreement_vs_fp32"] is None else f", same prediction as fp32 on {q['argmax_agreement_vs_fp32']:.1%}"
        lines.append(f"int8: {out / meta['files']['int8']} ({_mb(sizes[meta['files']['int8']])}): {main} "
                     f"{v['metrics']['onnx_int8'][main]:.4f} ({q['metric_change'][main]:+.4f} vs fp32{agree})")
    lines.append(f"report: {out / 'export.json'}")
    return lines


def export(
    run_dir: Annotated[Path, typer.Argument(help="a finetune/distill run directory (or any saved layerkd model)")],
    format_: Annotated[str, typer.Option("--format", help="export format (onnx)")] = "onnx",
    quantize: Annotated[str | None, typer.Option("--quantize", help="also write a dynamically quantised model: int8")] = None,
    output: Annotated[Path | None, typer.Option("--output", help="export directory " + escape("[default: RUN_DIR/onnx]"))] = None,
    task: Annotated[str | None, typer.Option("--task", help="task " + escape("[default: the run's config.yaml]"))] = None,
    data_dir: Annotated[Path | None, typer.Option(
        "--data-dir", help="verify on this GLUE directory's --split " + escape("[default: the run's evaluation data]"))] = None,
    split: Annotated[str | None, typer.Option("--split", help="split of --data-dir " + escape("[default: dev]"))] = None,
    file: Annotated[Path | None, typer.Option("--file", help="verify on this labelled TSV/CSV/JSONL file instead")] = None,
    columns: Annotated[str | None, typer.Option("--columns", help="text_a=COL,text_b=COL,label=COL for --file")] = None,
    max_length: Annotated[int | None, typer.Option(
        "--max-length", help="max tokens per input " + escape("[default: the run's train.max_length, else 128]"))] = None,
    tolerance: Annotated[float, typer.Option(
        "--tolerance", help="largest allowed |logit difference| between the ONNX model and PyTorch")] = DEFAULT_TOLERANCE,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="rows per verification batch")] = 64,
    exporter: Annotated[str, typer.Option("--exporter", help="torch.onnx exporter: torchscript or dynamo (needs onnxscript)")] = "torchscript",
    opset: Annotated[int | None, typer.Option("--opset", min=7, help="ONNX opset " + escape("[default: 17]"))] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace an earlier export in --output")] = False,
    trust_remote_code: Annotated[bool, typer.Option("--trust-remote-code", help="allow model code from the hub (off by default)")] = False,
) -> None:
    """Export a trained model to ONNX, verified against PyTorch on the task's rows (optionally int8)."""
    from ..deploy.export_run import export_run  # noqa: PLC0415
    from ..exits import sigterm_raises  # noqa: PLC0415

    with sigterm_raises():  # SIGTERM unwinds like Ctrl-C: the temporary export directory is removed
        meta = export_run(run_dir, fmt=format_, quantize=quantize, output=output, task=task,
                          data_dir=None if data_dir is None else str(data_dir), split=split,
                          file=None if file is None else str(file), columns=columns, max_length=max_length,
                          tolerance=tolerance, batch_size=batch_size, exporter=exporter, opset=opset, overwrite=overwrite,
                          trust_remote_code=trust_remote_code)
    for line in summary(meta):
        typer.echo(line)


app.command("export")(export)

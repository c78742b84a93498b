"""``layerkd demo``: the whole flow in a few minutes, offline, with nothing but the package.

Without arguments: generates the compositional-sentiment task (:mod:`layerkd.toy`), fine-tunes a
small 4-layer BERT teacher from scratch, distils it into a randomly initialised 2-layer student
with several methods, and prints a comparison table (dev accuracy of the best and last epoch,
agreement with the teacher, training time). With ``--task/--data-dir/--teacher`` it runs the
same comparison on real data (student default: the teacher's bottom two layers).

Beside ``demo.json`` it draws ``demo.png`` (the methods' scores and ALP's attention over the
teacher's layers) and, on the generated task, explains the table (:mod:`layerkd.stages.demo_tour`).
A demo folder is always built from scratch: rerunning ``layerkd demo`` on one replaces the earlier
demo entirely (never a table of one run beside the students of another).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from .. import jsonio, toy
from ..config import validate_run_config
from ..errors import ConfigError
from . import demo_tour
from .distill import distill
from .finetune import finetune

DEFAULT_METHODS = ("ce", "kd", "pkd", "alp", "rail", "universal", "universal+alp")
TOY_STUDENT = "config:layers=2,hidden=32,heads=4,intermediate=64"


class DemoResult(list):
    """The table's rows (a list, as :func:`run_demo` returned before) with what is shown beside them:
    ``explanation`` (the generated task only, else None), ``figure`` (``demo.png``; None when it
    could not be drawn) and ``figure_note`` (then why not, one line)."""

    def __init__(self, rows: list[dict[str, Any]], explanation: str | None, figure: Path | None, figure_note: str | None):
        super().__init__(rows)
        self.explanation, self.figure, self.figure_note = explanation, figure, figure_note

    @property
    def rows(self) -> list[dict[str, Any]]:
        return list(self)


def _agreement(out: Path, teacher_preds: np.ndarray) -> float:
    preds = np.asarray(json.loads((out / "results.json").read_text())["dev_predictions"]["best"])
    return float((preds == teacher_preds).mean()) if len(preds) == len(teacher_preds) else float("nan")


def run_demo(output_dir: Path, *, data_dir: str | None = None, teacher: str | None = None, student: str | None = None,
             echo=print, **kw) -> DemoResult:
    """Run the demo in ``output_dir``: a new directory, or one an earlier demo made (it carries
    layerkd's run marker with kind ``demo``): that one is emptied first and the demo starts from
    scratch. Never ``.``, ``~``, a directory of someone else's files or of another layerkd
    output, or one over or around the data, teacher or student (:mod:`layerkd.outputs`); held
    locked while the demo runs."""
    from ..outputs import Input, _contents, marker_kind, run_directory  # noqa: PLC0415

    inputs = [Input(label, Path(p)) for label, p in (("the data directory", data_dir), ("the teacher", teacher),
                                                     ("the student", student)) if p and Path(p).exists()]
    earlier = Path(output_dir).is_dir() and marker_kind(Path(output_dir)) == "demo" and bool(_contents(Path(output_dir)))
    with run_directory(output_dir, overwrite=True, inputs=inputs, what="demo directory", kind="demo") as out:
        if earlier:
            echo(f"replaced the earlier demo in {out}: a demo always starts from scratch")
        return _run_demo(out, data_dir=data_dir, teacher=teacher, student=student, echo=echo, **kw)


def _run_demo(
    output_dir: Path,
    *,
    methods: tuple[str, ...] = DEFAULT_METHODS,
    task: str | None = None,
    data_dir: str | None = None,
    teacher: str | None = None,
    student: str | None = None,
    epochs: int | None = None,
    train_subsample: int | None = None,
    seed: int = 0,
    echo=print,
) -> DemoResult:
    real = task is not None
    majority = None
    if real:
        if data_dir is None or teacher is None:
            raise ConfigError("demo on real data needs --task, --data-dir and --teacher")
        base = {"task": task, "data": {"data_dir": data_dir, "train_subsample": train_subsample}}
        train_cfg = {"epochs": epochs or 3, "lr": 1e-4, "batch_size": 32, "max_length": 128, "seed": seed}
        teacher_dir = teacher
        student = student or "bottom:2"
        from ..stages.evaluate import evaluate_model  # noqa: PLC0415
        from ..tasks import get_task  # noqa: PLC0415

        t_metrics = evaluate_model(teacher_dir, get_task(task), data_dir=data_dir, max_length=128)
        teacher_preds = None
        echo(f"teacher {teacher_dir}: {jsonio.dumps({k: round(v, 4) for k, v in t_metrics.items() if isinstance(v, float)})}")
        t_seconds = float("nan")
    else:
        import torch  # noqa: PLC0415

        torch.set_num_threads(1)  # tiny models: intra-op threads cost more than they give
        data = output_dir / "data"
        train_path, dev_path = toy.write_sentiment_data(data, n_train=1000, n_dev=400, seed=seed, noise=0.0,
                                                        max_extra_clauses=0)
        majority = demo_tour.majority_rate(dev_path)
        base = {"task": toy.TOY_TASK, "data": {"train_file": str(train_path), "dev_file": str(dev_path)}}
        train_cfg = {"epochs": epochs or 6, "lr": 5e-3, "batch_size": 16, "max_length": 32, "seed": seed, "warmup_ratio": 0.0}
        student = student or TOY_STUDENT
        bert = toy.write_tiny_bert(output_dir / "pretrained-teacher", layers=4, hidden=32, heads=4, intermediate=64, seed=seed)
        teacher_dir = str(output_dir / "teacher")
        echo("fine-tuning a 4-layer, 32-wide BERT teacher (random init) on the generated compositional-sentiment task …")
        t0 = time.time()
        cfg = validate_run_config({**base, "model": str(bert), "output_dir": teacher_dir,
                                   "train": {**train_cfg, "epochs": 12, "lr": 2e-3}})
        res = finetune(cfg, overwrite=True, progress=False)
        t_metrics = res["best"]
        t_results = json.loads((Path(teacher_dir) / "results.json").read_text())
        teacher_preds = np.asarray(t_results["dev_predictions"]["best"])
        t_curve = demo_tour.validation_curve(t_results, res["main_metric"])
        t_seconds = time.time() - t0
        echo(f"teacher: accuracy {t_metrics['accuracy']:.4f} ({t_seconds:.0f} s)")
    rows = []
    for m in methods:
        echo(f"distilling into {student} with {m} …")
        out = output_dir / "students" / m
        cfg = validate_run_config({**base, "teacher": {"path": teacher_dir}, "student": student, "method": m,
                                   "train": train_cfg, "output_dir": str(out),
                                   "cache": {"dir": str(output_dir / "cache")}})
        t0 = time.time()
        res = distill(cfg, overwrite=True, progress=False)
        main = res["main_metric"]
        curve = demo_tour.validation_curve(json.loads((out / "results.json").read_text()), main)
        rows.append({"method": m, "best": res["best"][main], "last": res["last"][main], "metric": main,
                     "agreement": _agreement(out, teacher_preds) if teacher_preds is not None else float("nan"),
                     "seconds": time.time() - t0, "validation_curve": curve,
                     "left_chance": None if majority is None else demo_tour.left_chance(curve, majority)})
    main = rows[0]["metric"] if rows else "accuracy"
    teacher_row = {"method": "(teacher)", "best": t_metrics.get(main, float("nan")), "last": float("nan"), "metric": main,
                   "agreement": 1.0, "seconds": t_seconds}
    if not real:
        teacher_row.update(validation_curve=t_curve, left_chance=demo_tour.left_chance(t_curve, majority))
    rows.insert(0, teacher_row)
    (output_dir / "demo.json").write_text(jsonio.dumps({"teacher": t_metrics, "student": student, "majority": majority,
                                                        "rows": rows}, indent=2))
    try:
        figure, note = demo_tour.write_figure(output_dir, rows, majority=majority), None
    except ConfigError as exc:  # matplotlib is missing: the demo stands without its figure
        figure, note = None, f"no figure: {exc}"
    return DemoResult(rows, None if real else demo_tour.explain(rows, majority), figure, note)


def format_table(rows: list[dict[str, Any]]) -> str:
    metric = rows[0]["metric"] if rows else "score"
    lines = [f"| method | dev {metric} (best epoch) | dev {metric} (last epoch) | agreement with teacher | seconds |",
             "|---|---|---|---|---|"]
    for r in rows:
        cells = [f"{r[k]:.4f}" if r[k] == r[k] else "–" for k in ("best", "last")]
        agree = "–" if r["agreement"] != r["agreement"] else f"{r['agreement']:.3f}"
        secs = "–" if r["seconds"] != r["seconds"] else f"{r['seconds']:.0f}"
        lines.append(f"| {r['method']} | {cells[0]} | {cells[1]} | {agree} | {secs} |")
    return "\n".join(lines)

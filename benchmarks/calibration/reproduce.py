"""Record whether a v2 teacher fine-tuned again from scratch is bit-identical to the one the cells use.

    python benchmarks/calibration/reproduce.py --original WORK/teachers-v2 --rerun FRESH/teachers-v2 TASK...
    python benchmarks/calibration/reproduce.py --recorded benchmarks/results/cells-v2 --rerun WORK/teachers-v2 TASK...

(``bash benchmarks/calibration/reproduce.sh TASK...`` runs the fine-tuning, then this.) For each task
it compares the SHA-256 of the weight files (the hash the cell keys include) and every field of
``results.json`` except the timing (``train_seconds``): scores, per-epoch validation curve, selected
epoch, test predictions, versions. Floats are equal to a relative 1e-12 (:func:`same`).

When the original teacher is gone (the work area outside git was lost), ``--recorded CELLS`` compares
the rebuilt one with what the committed cells recorded of it instead: the weights' hash in every
cell of that task's ``teachers-v2/<task>`` teacher, and the teacher's best and last test scores and
its test predictions at the selected epoch. A rebuilt teacher that matches keeps every cell's key.
The record is merged into ``benchmarks/results/teacher-reproduction.json`` (one entry per task, the
newest check wins) and rendered as ``teacher-reproduction.md``. Paths are written relative to the
work area (``teachers-v2/<task>``): committed results carry no machine's absolute paths.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "results"
TIMING = {"train_seconds"}


def _bad_input(message: str) -> None:
    print(message, file=sys.stderr)
    raise SystemExit(2)


def same(a: object, b: object) -> bool:
    """Equal, except that two floats may differ in the last digits (relative 1e-12): a score computed
    again from identical predictions can differ by one unit in the last place (the summation order of a
    vectorised reduction). Weights (by hash) and predictions (integers) are still compared exactly."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def weights_sha256(run: Path) -> str:
    """The hash the cell keys use (:func:`layerkd.bench.suite.teacher_hash`): equal hashes, equal keys."""
    from layerkd.bench.suite import teacher_hash  # noqa: PLC0415

    h = teacher_hash(str(run))
    if not h:
        _bad_input(f"{run}: no weight file (expected a finished `layerkd finetune` run)")
    return h


def _results(run: Path) -> dict:
    path = run / "results.json"
    if not path.is_file():
        _bad_input(f"{path}: missing (expected a finished `layerkd finetune` run)")
    return json.loads(path.read_text())


def compare(task: str, original: Path, rerun: Path, note: str = "") -> dict:
    """One task's record: hashes, whether they match, and which results fields differ (timing aside)."""
    a, b = _results(original), _results(rerun)
    differing = sorted(k for k in set(a) | set(b) if k not in TIMING and not same(a.get(k), b.get(k)))
    ha, hb = weights_sha256(original), weights_sha256(rerun)
    env = b.get("environment") or {}
    return {
        "task": task,
        "teacher": f"teachers-v2/{task}",
        "checked_on": dt.date.today().isoformat(),
        "weights_sha256_original": ha,
        "weights_sha256_rerun": hb,
        "bit_identical": ha == hb,
        "results_fields_differing": differing,
        "rerun_environment": {k: env.get(k) for k in ("layerkd", "torch", "transformers", "torch_threads", "cpu_count")},
        "train_seconds": {"original": a.get("train_seconds"), "rerun": b.get("train_seconds")},
        "note": note,
    }


def recorded_teacher(task: str, cells: Path) -> dict:
    """What the committed cells of ``task`` recorded of their ``teachers-v2/<task>`` teacher (read by the
    report's own reader): the hash (one, unless the teacher changed between cells), scores, predictions."""
    from layerkd.bench.results import load_results  # noqa: PLC0415
    from layerkd.errors import ConfigError  # noqa: PLC0415
    from layerkd.tasks import get_task  # noqa: PLC0415

    try:
        runs, _, _ = load_results(cells)
        name = get_task(task).name
    except ConfigError as exc:
        _bad_input(str(exc))
    mine = [r for r in runs if r.task.name == name and str(r.teacher.get("path", "")).endswith(f"teachers-v2/{task}")]
    hashes = {r.teacher_hash for r in mine}
    if not mine:
        _bad_input(f"{cells}: no cell of task {task!r} with a teachers-v2/{task} teacher (expected committed cell results)")
    if len(hashes) > 1:
        _bad_input(f"{cells}: the {task} cells record {len(hashes)} different teacher hashes; compare with --original")
    t = mine[0].teacher
    return {"fingerprint": mine[0].teacher_hash, "cells": len(mine),
            "best": t.get("best"), "last": t.get("last"), "dev_predictions.best": t.get("dev_predictions")}


def compare_recorded(task: str, cells: Path, rerun: Path, note: str = "") -> dict:
    """One task's record against the committed cells (the original teacher is gone)."""
    rec = recorded_teacher(task, cells)
    b = _results(rerun)
    now = {"best": b.get("best"), "last": b.get("last"),
           "dev_predictions.best": (b.get("dev_predictions") or {}).get("best")}
    differing = sorted(k for k in now if not same(now[k], rec[k]))
    hb = weights_sha256(rerun)
    env = b.get("environment") or {}
    return {
        "task": task,
        "teacher": f"teachers-v2/{task}",
        "checked_on": dt.date.today().isoformat(),
        "original": f"recorded in {rec['cells']} committed cells",
        "weights_sha256_original": rec["fingerprint"],
        "weights_sha256_rerun": hb,
        "bit_identical": rec["fingerprint"] == hb,
        "results_fields_differing": differing,
        "rerun_environment": {k: env.get(k) for k in ("layerkd", "torch", "transformers", "torch_threads", "cpu_count")},
        "train_seconds": {"original": None, "rerun": b.get("train_seconds")},
        "note": note,
    }


def _origin(record: dict) -> str:
    return f"original: {record['original']}" if record.get("original") else ""


def render(records: dict[str, dict]) -> str:
    lines = [
        "# Teacher reproduction (generated by benchmarks/calibration/reproduce.py)",
        "",
        "Each v2 teacher listed was fine-tuned a second time from scratch, in a fresh work area, with the",
        "command that made it (`LAYERKD_REPRO=<fresh folder> bash benchmarks/calibration/reproduce.sh TASK`), and",
        "compared with the teacher the `ild-v2` cells use: the SHA-256 of the weights and every field of",
        "`results.json` except the training time (scores equal to a relative 1e-12: a score computed again",
        "from identical predictions can differ in its last digit). A teacher that reproduces keeps its cell keys (they",
        "include the weights' hash). Where the original was lost with the work area outside git, the rerun",
        "is compared with what the committed cells recorded of it (`--recorded`): the weights' hash in their",
        "keys, the teacher's best and last test scores and its test predictions (\"original\" below).",
        "",
        "| task | checked on | weights (SHA-256, first 12): original | rerun | bit-identical "
        "| results fields that differ | rerun versions (threads) | note |",
        "|---|---|---|---|:---:|---|---|---|",
    ]
    for task in sorted(records):
        r = records[task]
        env = r["rerun_environment"]
        diff = ", ".join(r["results_fields_differing"]) or "none"
        lines.append(
            f"| {task} | {r['checked_on']} | {r['weights_sha256_original'][:12]} | {r['weights_sha256_rerun'][:12]} "
            f"| {'yes' if r['bit_identical'] else '**no**'} | {diff} "
            f"| layerkd {env['layerkd']}, torch {env['torch']}, transformers {env['transformers']} "
            f"({env['torch_threads']}) | {'; '.join(x for x in (_origin(r), r.get('note', '')) if x)} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--original", type=Path, help="the teachers-v2 folder the cells use")
    src.add_argument("--recorded", type=Path, help="committed cell results (the original teachers are gone)")
    p.add_argument("--rerun", type=Path, required=True, help="the teachers-v2 folder of the fresh fine-tuning")
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--note", default="", help="what the check is for, e.g. how the original run was made")
    p.add_argument("tasks", nargs="+")
    args = p.parse_args(argv)
    record_path = args.out / "teacher-reproduction.json"
    records = json.loads(record_path.read_text()) if record_path.is_file() else {}
    for task in args.tasks:
        records[task] = (compare(task, args.original / task, args.rerun / task, args.note) if args.original
                         else compare_recorded(task, args.recorded, args.rerun / task, args.note))
        r = records[task]
        print(f"{task}: {'bit-identical' if r['bit_identical'] else 'DIFFERENT weights'}"
              f" ({r['weights_sha256_original'][:12]} vs {r['weights_sha256_rerun'][:12]});"
              f" results fields that differ: {', '.join(r['results_fields_differing']) or 'none'}")
    args.out.mkdir(parents=True, exist_ok=True)
    tmp = record_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(records, indent=2, sort_keys=True) + "\n")
    tmp.replace(record_path)
    (args.out / "teacher-reproduction.md").write_text(render(records))
    return 0 if all(records[t]["bit_identical"] for t in args.tasks) else 1


if __name__ == "__main__":
    raise SystemExit(main())

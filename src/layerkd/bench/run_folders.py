"""``layerkd report`` on plain run folders: the runs ``layerkd distill`` / ``finetune`` wrote.

A *run folder* holds ``results.json`` and ``config.yaml`` (and ``metrics.json``), as every finished
run does. ``layerkd report`` takes one or more of them, or folders that contain them at any depth
(a folder of runs, a demo folder; ``checkpoints/`` is not searched), and reads each into the same
normalised :class:`~layerkd.bench.results.Run` a bench result becomes, so the report — tables,
tests, figures — is the one :func:`~layerkd.bench.report.build_report` writes for bench results.

What a run is grouped by, from its ``config.yaml`` and ``results.json``:

* **task** — the task its results name; **seed** — ``train.seed``;
* **student** — the ``student`` spec of a distillation (``model`` of a fine-tuning run: the folder
  or hub id's last part); **method** — ``method`` (``recipe`` for an explicit recipe,
  ``finetune`` for a fine-tuning run);
* the **teacher** row comes from the teacher's own ``results.json`` when its folder is there; a
  fine-tuning run that is the teacher of a distillation among the runs is shown as that teacher,
  not as a method row;
* two runs alike in all four (e.g. a learning-rate sweep) are not replicates: each keeps its
  method label with its folder name added, ``alp (rte-alp-lr3)``, and a warning says so.

:func:`seeds_note` is the one line that says what the statistics need when the runs lack seeds.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..config import read_yaml
from ..errors import ConfigError, LayerKDError
from .results import SCHEMA, Run, _parse_run

log = logging.getLogger("layerkd")

RUN_FILES = ("results.json", "config.yaml")


def is_run_folder(d: Path) -> bool:
    return all((Path(d) / f).is_file() for f in RUN_FILES)


def holds_bench_results(d: Path) -> bool:
    """A ``layerkd bench --results`` directory: a ``*.json`` of the bench result schema at its top."""
    for p in Path(d).glob("*.json"):
        try:
            with open(p, encoding="utf-8") as fh:
                head = fh.read(4096)
        except OSError:
            continue
        if f'"{SCHEMA}' in head:
            return True
    return False


def find_run_folders(paths: Sequence[Path]) -> list[Path]:
    """The run folders named by ``paths``: each a run folder itself or a folder searched for them."""
    found: list[Path] = []
    for p in map(Path, paths):
        if not p.is_dir():
            raise ConfigError(f"report: {p} is not a directory (give run folders, a folder of them, or bench results)")
        if is_run_folder(p):
            found.append(p)
            continue
        for root, dirs, _files in os.walk(p):
            dirs[:] = sorted(x for x in dirs if x != "checkpoints" and not x.startswith("."))
            if is_run_folder(Path(root)):
                found.append(Path(root))
    seen, out = set(), []
    for f in found:
        real = os.path.realpath(f)
        if real not in seen:
            seen.add(real)
            out.append(f)
    return out


def _label(spec: str) -> str:
    """A model path's last part (a hub id or student spec as written)."""
    return Path(spec).name if spec and Path(spec).exists() else spec


def _teacher_record(cfg: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    teacher = cfg.get("teacher") if isinstance(cfg.get("teacher"), dict) else {}
    path = str(teacher.get("path") or "")
    rec: dict[str, Any] = {"path": path, "fingerprint": result.get("teacher_fingerprint"), "best": None}
    res = Path(path) / "results.json" if path else None
    if res is not None and res.is_file():
        try:
            t = json.loads(res.read_text(encoding="utf-8"))
            rec.update(best=t.get("best"), last=t.get("last"), dev_predictions=(t.get("dev_predictions") or {}).get("best"))
        except (OSError, ValueError):
            pass
    return rec


def read_run_folder(d: Path) -> Run:
    """One run folder as a :class:`Run` (ValueError/LayerKDError when it cannot be read)."""
    cfg = read_yaml(d / "config.yaml")
    result = json.loads((d / "results.json").read_text(encoding="utf-8"))
    if not isinstance(result, dict):
        raise ValueError("results.json is not a JSON object")
    train = cfg.get("train") if isinstance(cfg.get("train"), dict) else {}
    distill = cfg.get("teacher") is not None
    spec = str(cfg.get("student") if distill else cfg.get("model") or "")
    method = str(cfg.get("method") or ("recipe" if cfg.get("recipe") else "distill")) if distill else "finetune"
    seed = train.get("seed", 42)  # the config model's default, for a config.yaml that left it out
    stamp = _dt.datetime.fromtimestamp((d / "results.json").stat().st_mtime, _dt.timezone.utc).isoformat(timespec="seconds")
    record = {
        "schema": SCHEMA, "key": str(d),
        "cell": {"task": result.get("task"), "student": _label(spec), "student_spec": spec, "method": method, "seed": seed},
        "suites": [], "config": cfg, "teacher": _teacher_record(cfg, result) if distill else {}, "result": result,
        "wall_seconds": result.get("train_seconds"), "finished_at": stamp,
        "command": f"layerkd {'distill' if distill else 'finetune'} (the run folder's config.yaml)",
    }
    return _parse_run(d, record)


def load_run_folders(folders: Sequence[Path]) -> tuple[list[Run], list[tuple[str, str]], list[dict[str, Any]]]:
    """Read run folders the way :func:`~layerkd.bench.results.load_results` reads bench results:
    (runs, skipped folders with the reason, failed records: none)."""
    runs: list[Run] = []
    skipped: list[tuple[str, str]] = []
    for d in folders:
        try:
            runs.append(read_run_folder(Path(d)))
        except (OSError, ValueError, KeyError, TypeError, LayerKDError) as exc:
            log.warning("report: skipping %s: %s", d, exc)
            skipped.append((str(d), f"not a readable run ({' '.join(str(exc).split())[:160]})"))
    teachers = {os.path.realpath(r.teacher["path"]) for r in runs if r.teacher.get("path")}
    runs = [r for r in runs if r.method != "finetune" or os.path.realpath(r.path) not in teachers]
    alike: dict[tuple, list[Run]] = defaultdict(list)
    for r in runs:
        alike[r.identity].append(r)
    for same in alike.values():
        if len(same) > 1:
            log.warning("report: %s are the same task/student/method/seed %s; each row is labelled with its folder",
                        ", ".join(str(r.path) for r in same), "/".join(map(str, same[0].identity)))
            for r in same:
                r.method = f"{r.method} ({r.path.name})"
    runs.sort(key=lambda r: (r.finished_at, r.key))
    return runs, skipped, []


def seeds_note(runs: Sequence[Run]) -> str | None:
    """One line when the statistics lack seeds: the paired tests (and a std) need two or more seeds
    per method; None when every task/student/method has them."""
    n = Counter((r.task.name, r.student, r.method) for r in runs)
    few = sorted({k[2] for k, v in n.items() if v < 2}, key=[k[2] for k in n].index)
    if not few:
        return None
    who = "these runs have 1 per method" if all(v < 2 for v in n.values()) else f"{', '.join(few)} {'has' if len(few) == 1 else 'have'} 1"
    return f"significance (and a std) needs ≥2 seeds per method; {who} (train more with --seed N)"


def build_run_report(paths: Sequence[Path], out_dir: Path, **kw) -> dict[str, Any]:
    """:func:`~layerkd.bench.report.build_report` over the run folders of ``paths``: the same
    files in ``out_dir`` (never over or around a run folder, locked; see :mod:`layerkd.outputs`).
    Adds ``"note"``: :func:`seeds_note` of the runs used."""
    from ..outputs import Input, _legacy_report, run_directory  # noqa: PLC0415
    from .report import build_report  # noqa: PLC0415

    paths = [Path(p) for p in paths]
    folders = find_run_folders(paths)
    if not folders:
        raise ConfigError(f"report: {', '.join(map(str, paths))} holds no run folders (results.json and config.yaml, "
                          "as layerkd finetune/distill write them) and no bench results (layerkd bench --results)")
    loaded = load_run_folders(folders)
    if not loaded[0]:
        raise ConfigError(f"report: none of the {len(folders)} run folder(s) could be read ({loaded[1][0][0]}: "
                          f"{loaded[1][0][1]})")
    inputs = [Input("the run folder", p) for p in [*paths, *folders]]
    with run_directory(out_dir, inputs=inputs, reuse=_legacy_report, what="report directory", kind="report"):
        label = paths[0] if len(paths) == 1 else Path(", ".join(map(str, paths)))
        summary = build_report.__wrapped__(label, out_dir, loaded=loaded, **kw)
    summary["note"] = seeds_note(loaded[0])
    return summary

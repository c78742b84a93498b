"""Figure data of ``layerkd report``: from grouped runs to the numbers :mod:`layerkd.bench.figures` draws.

:func:`_make_figures` walks the dev groups and, per task / student / method, prepares attention
heatmaps (ALP, Universal-KD), RAIL layer coverage, teacher pseudo-classifier scores per layer,
learning curves and score against student size, then calls the drawing functions of
:mod:`layerkd.bench.figures` (which know nothing about runs). Returns one record (kind, path,
caption, task) per figure for the markdown.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import figures as F
from .results import Group, Run, _mname, _nan
from .stats import mean_std

_FIGURE_PREFIXES = ("attention_", "teacher_layers_", "rail_", "curves_", "size_")


def _slug(*parts: str) -> str:
    return "_".join(re.sub(r"[^A-Za-z0-9.-]+", "-", str(p)).strip("-").lower() or "x" for p in parts)


def _teacher_layers(run: Run) -> int | None:
    m = re.search(r"\((\d+) layers", str(run.result.get("teacher", "")))
    return int(m.group(1)) if m else None


def _attention_axes(entry: dict[str, Any], shape: tuple[int, int]) -> tuple[list, list, str, str]:
    """Row/column labels and names of a layer_attention entry, whatever its key names."""
    r, c = shape

    def labels(keys: Sequence[str], n: int) -> list:
        for k in keys:
            v = entry.get(k)
            if isinstance(v, list) and len(v) == n:
                return v
        return list(range(1, n + 1))

    rows = labels(("row_labels", "student", "student_layers", "query_layers", "rows"), r)
    cols = labels(("col_labels", "teacher", "teacher_layers", "cols"), c)
    rname = entry.get("rows") if isinstance(entry.get("rows"), str) else "student layer"
    cname = entry.get("cols") if isinstance(entry.get("cols"), str) else "teacher layer"
    return rows, cols, rname, cname


def _head_scores(th: dict[str, Any], metric: str) -> dict[int, float] | None:
    """Per teacher layer dev score of the pseudo classifiers, from a ``teacher_heads`` report."""
    ds = th.get("dev_scores")
    if isinstance(ds, dict) and ds:
        return {int(k): float("nan") if v is None else float(v) for k, v in ds.items()}  # null: not finite
    dev = th.get("dev")
    if isinstance(dev, dict) and dev:
        out = {}
        for k, v in dev.items():
            if isinstance(v, dict):
                v = v.get(th.get("metric", metric))
            if isinstance(v, (int, float)):
                out[int(re.sub(r"\D", "", str(k)) or 0)] = float(v)
        return out or None
    dm = th.get("dev_metrics")
    if isinstance(dm, dict):
        out = {}
        for k, v in dm.items():
            m = re.fullmatch(r"layer(\d+)/(.+)", str(k))
            if m and m.group(2) == th.get("metric", metric):
                out[int(m.group(1))] = float(v)
        return out or None
    return None


def _curve(runs: list[Run], metric: str) -> dict[str, Any] | None:
    pts: dict[float, list[float]] = {}
    for r in runs:
        hist = r.result.get("history") or []
        steps, epochs = r.result.get("steps"), r.result.get("epochs_run")
        spe = steps / epochs if isinstance(steps, (int, float)) and isinstance(epochs, (int, float)) and epochs else None
        for h in hist:
            if not isinstance(h, dict) or metric not in h:
                continue
            if h.get("end_of_epoch") or spe is None:
                x = float(h.get("epoch", 0))
            else:
                x = float(h.get("step", 0)) / spe
            pts.setdefault(round(x, 3), []).append(float(h[metric]))
    if not pts:
        return None
    xs = sorted(pts)
    stats = [mean_std(pts[x]) for x in xs]
    return {"x": xs, "mean": [s[0] for s in stats], "std": [s[1] for s in stats], "n": len(runs)}


def _make_figures(fig_dir: Path, groups: dict[tuple, Group], tasks: list[str], students: list[str],
                  methods: list[str], teachers: dict[str, list[dict[str, Any]]], baseline: str) -> list[dict[str, Any]]:
    made: list[dict[str, Any]] = []
    colours = F.method_colours(methods)

    def add(kind: str, path: Path, caption: str, task: str) -> None:
        made.append({"kind": kind, "path": path, "caption": caption, "task": task})

    def teacher_main(tname: str) -> float | None:
        rows = teachers.get(tname) or []
        if not rows:
            return None
        return rows[0].get(f"best_{rows[0]['main_metric']}_mean")

    def dashed(tname: str, what: str = "the teacher") -> str:
        return "" if _nan(teacher_main(tname)) else f"; dashed: {what}"

    dev = {k: g for k, g in groups.items() if k[0] == "dev"}
    for tname in tasks:
        for s in students:
            for m in methods:
                g = dev.get(("dev", tname, s, m))
                if g is None:
                    continue
                # (a) attention over teacher layers
                by_obj: dict[str, list[tuple[np.ndarray, dict]]] = {}
                for r in g.runs:
                    for obj, entry in (r.diagnostics.get("layer_attention") or {}).items():
                        if isinstance(entry, dict) and "weights" in entry:
                            w = np.asarray(entry["weights"], dtype=np.float64)
                            if w.ndim == 2 and w.size:
                                by_obj.setdefault(obj, []).append((w, entry))
                for obj, items in by_obj.items():
                    shape = Counter(w.shape for w, _ in items).most_common(1)[0][0]
                    use = [(w, e) for w, e in items if w.shape == shape]
                    mean = np.mean([w for w, _ in use], axis=0)
                    rows, cols, rname, cname = _attention_axes(use[0][1], shape)
                    title = f"{obj} attention over teacher layers — {tname}, {s}, {m} (mean of {len(use)} seed(s))"
                    p = F.attention_heatmap(fig_dir / f"attention_{_slug(tname, s, m, obj)}.png", mean,
                                            row_labels=rows, col_labels=cols, title=title, row_name=rname,
                                            col_name=cname)
                    add("attention", p, f"{tname}, student {s}, {m}: `{obj}` — mean attention weight of each student "
                                        f"layer (row) over the teacher layers (columns) on dev, averaged over "
                                        f"{len(use)} seed(s); rows sum to 1.", tname)
                # (c) RAIL coverage
                by_obj_draws: dict[str, list[dict[int, list[int]]]] = {}
                for r in g.runs:
                    for obj, draws in (r.diagnostics.get("rail_draws") or {}).items():
                        if isinstance(draws, dict) and draws:
                            by_obj_draws.setdefault(obj, []).append(
                                {int(e): [int(x) for x in d] for e, d in draws.items()})
                for obj, per_run in by_obj_draws.items():
                    epochs = sorted({e for d in per_run for e in d})
                    drawn = sorted({x for d in per_run for v in d.values() for x in v})
                    n_t = max([_teacher_layers(r) or 0 for r in g.runs] + drawn)
                    layers = list(range(1, n_t + 1)) if drawn and min(drawn) >= 1 else list(range(min(drawn), n_t + 1))
                    frac = np.zeros((len(epochs), len(layers)))
                    for d in per_run:
                        for i, e in enumerate(epochs):
                            for x in d.get(e, []):
                                if x in layers:
                                    frac[i, layers.index(x)] += 1
                    frac /= len(per_run)
                    title = f"RAIL teacher layers drawn per epoch — {tname}, {s}, {m} ({obj}, {len(per_run)} seed(s))"
                    p = F.rail_coverage(fig_dir / f"rail_{_slug(tname, s, m, obj)}.png", frac,
                                        epochs=[e + 1 for e in epochs], layers=layers, n_runs=len(per_run), title=title)
                    add("rail", p, f"{tname}, student {s}, {m}: `{obj}` — teacher layers drawn at the start of each "
                                   f"epoch (cell: runs that drew the layer / runs; {len(per_run)} seed(s)). With "
                                   "per-batch resampling only the epoch's first draw is logged.", tname)
        # (b) teacher pseudo classifiers per layer
        series_by_teacher: dict[tuple[str, bool], dict[str, dict[int, float]]] = {}  # (teacher, standardised) -> fits
        metric = None
        task_runs = [r for key, grp in dev.items() if key[1] == tname for r in grp.runs]
        for r in task_runs:
            th = r.diagnostics.get("teacher_heads")
            if not isinstance(th, dict):
                continue
            metric = th.get("metric", r.task.main_metric)
            sc = _head_scores(th, r.task.main_metric)
            if not sc:
                continue
            fit_id = str(th.get("key") or f"{r.key}")
            fp = str(r.teacher.get("fingerprint") or th.get("teacher") or "teacher")
            series_by_teacher.setdefault((fp, r.heads_standardized), {})[fit_id] = sc
        if series_by_teacher:
            series = []
            n_teachers = len({fp for fp, _ in series_by_teacher})
            for (fp, std), fits in sorted(series_by_teacher.items()):
                layers = sorted({x for f in fits.values() for x in f})
                stats = [mean_std([f.get(x, float("nan")) for f in fits.values()]) for x in layers]
                label = "pseudo classifiers" if n_teachers == 1 else f"teacher {fp[:8]}"
                label += ", standardised inputs" if std else ""
                series.append({"label": label, "layers": layers, "mean": [s_[0] for s_ in stats],
                               "std": [s_[1] for s_ in stats], "n": len(fits)})
            n_fits = sum(len(f) for f in series_by_teacher.values())
            p = F.teacher_layer_scores(fig_dir / f"teacher_layers_{_slug(tname)}.png", series, metric=_mname(metric),
                                       title=f"Teacher pseudo classifiers per layer — {tname}",
                                       teacher_score=teacher_main(tname))
            add("teacher_layers", p, f"{tname}: dev {_mname(metric)} of a linear classifier on each frozen teacher layer "
                                     f"(mean ± std over {n_fits} distinct fit(s))"
                                     f"{dashed(tname, 'the teacher with its own classifier')}.", tname)
        # (d) learning curves
        for s in students:
            curves = {}
            task_info_ = None
            for m in methods:
                g = dev.get(("dev", tname, s, m))
                if g is None:
                    continue
                task_info_ = g.task
                c = _curve(g.runs, g.task.main_metric)
                if c is not None:
                    curves[m] = c
            if curves and task_info_ is not None:
                p = F.learning_curves(fig_dir / f"curves_{_slug(tname, s)}.png", curves,
                                      metric=_mname(task_info_.main_metric), colours=colours, baseline=baseline,
                                      teacher_score=teacher_main(tname),
                                      title=f"Dev {_mname(task_info_.main_metric)} during training — {tname}, "
                                            f"student {s} (mean ± std over seeds)")
                add("curves", p, f"{tname}, student {s}: dev {_mname(task_info_.main_metric)} at each evaluation, "
                                 f"mean over seeds with a ±1 std band (n seeds in the legend){dashed(tname)}.", tname)
        # (e) score against student size
        series_size: dict[str, list[dict[str, Any]]] = {}
        task_info_ = None
        for m in methods:
            for s in students:
                g = dev.get(("dev", tname, s, m))
                if g is None:
                    continue
                task_info_ = g.task
                params = [r.params for r in g.runs if r.params]
                if not params:
                    continue
                mean, std, _ = mean_std([r.metrics("best")[g.task.main_metric] for r in g.runs])
                series_size.setdefault(m, []).append({"params": int(np.median(params)), "mean": mean, "std": std,
                                                      "label": s})
        if series_size and task_info_ is not None:
            p = F.score_vs_size(fig_dir / f"size_{_slug(tname)}.png", series_size, metric=_mname(task_info_.main_metric),
                                colours=colours, teacher_score=teacher_main(tname),
                                title=f"Best-epoch dev {_mname(task_info_.main_metric)} against student size — {tname}")
            add("size", p, f"{tname}: best-epoch dev {_mname(task_info_.main_metric)} (mean ± std over seeds) against "
                           f"the student's parameter count (log scale), one marker per method{dashed(tname)}.", tname)
    return made

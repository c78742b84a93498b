"""Figures of the bench report (PNG, matplotlib's Agg canvas; no pyplot, no global state).

Every function takes already-aggregated numbers (prepared by :mod:`layerkd.bench.report_figures`) and writes one
PNG atomically (a temporary file in the same folder, then a rename). matplotlib is optional:
:func:`require_matplotlib` raises a one-line :class:`~layerkd.errors.ConfigError` naming the
extra to install.
"""

from __future__ import annotations

import math
import os
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError

DPI = 120


def require_matplotlib():
    """Import matplotlib with the non-interactive Agg backend (no display needed)."""
    try:
        import matplotlib  # noqa: PLC0415
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
        from matplotlib.figure import Figure  # noqa: PLC0415
    except ImportError:
        raise ConfigError("figures need matplotlib: pip install 'layerkd[plots]'") from None
    return matplotlib, Figure, FigureCanvasAgg


def _figure(width: float, height: float):
    _, figure_cls, canvas_cls = require_matplotlib()
    fig = figure_cls(figsize=(width, height), dpi=DPI)
    canvas_cls(fig)
    return fig


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def method_colours(methods: Sequence[str]) -> dict[str, Any]:
    """A stable colour per method (tab10 up to 10 methods, tab20 beyond)."""
    matplotlib, _, _ = require_matplotlib()
    cmap = matplotlib.colormaps["tab10" if len(methods) <= 10 else "tab20"]
    return {m: cmap(i % cmap.N) for i, m in enumerate(methods)}


def _annotate_cells(ax, im, values: np.ndarray, fmt) -> None:
    """Write each cell's value in it, white on dark colours and black on light ones."""
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            v = values[i, j]
            if np.isnan(v):
                continue
            r, g, b, _ = im.cmap(im.norm(v))
            dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5
            ax.text(j, i, fmt(v), ha="center", va="center", fontsize=8, color="white" if dark else "black")


def heatmap(path: Path, values: np.ndarray, *, row_labels: Sequence[Any], col_labels: Sequence[Any], row_name: str,
            col_name: str, title: str, colorbar_label: str, fmt=lambda v: f"{v:.2f}", vmin: float | None = 0.0,
            vmax: float | None = None, cmap: str = "viridis") -> Path:
    """A labelled heatmap with every cell's value written in it and a colour bar."""
    values = np.asarray(values, dtype=np.float64)
    r, c = values.shape
    width, height = max(4.0, 0.75 * c + 2.5), max(2.6, 0.55 * r + 1.8)
    fig = _figure(width, height)
    ax = fig.add_subplot(1, 1, 1)
    finite = values[~np.isnan(values)]
    top = float(vmax) if vmax is not None else (float(finite.max()) if finite.size else 1.0)
    if vmin is not None and top <= vmin:
        top = vmin + 1.0
    im = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=top, aspect="auto")
    ax.set_xticks(range(c), [str(x) for x in col_labels])
    ax.set_yticks(range(r), [str(x) for x in row_labels])
    ax.set_xlabel(col_name)
    ax.set_ylabel(row_name)
    ax.set_title(textwrap.fill(title, int(width * 10)), fontsize=10)  # a small map's text must not run off the figure
    _annotate_cells(ax, im, values, fmt)
    cb = fig.colorbar(im, ax=ax)
    cb.set_label(textwrap.fill(colorbar_label, int(height * 9)))
    return _save(fig, path)


def attention_heatmap(path: Path, weights: np.ndarray, *, row_labels: Sequence[Any], col_labels: Sequence[Any],
                      title: str, row_name: str = "student layer", col_name: str = "teacher layer") -> Path:
    """(a) ALP / Universal-KD: mean attention of each student layer over the teacher layers."""
    return heatmap(path, weights, row_labels=row_labels, col_labels=col_labels, row_name=row_name, col_name=col_name,
                   title=title, colorbar_label="attention weight (mean over dev examples and seeds)", vmin=0.0)


def rail_coverage(path: Path, fraction: np.ndarray, *, epochs: Sequence[int], layers: Sequence[int], n_runs: int,
                  title: str) -> Path:
    """(c) RAIL-KD: fraction of runs (seeds) that drew each teacher layer in each epoch."""
    return heatmap(path, fraction, row_labels=epochs, col_labels=layers, row_name="epoch", col_name="teacher layer",
                   title=title, colorbar_label=f"fraction of runs that drew the layer (n = {n_runs})",
                   fmt=lambda v: f"{int(round(v * n_runs))}/{n_runs}", vmin=0.0, vmax=1.0, cmap="Blues")


def _errorband(ax, x, mean, std, colour, label, *, lw=1.6, marker="o"):
    x, mean, std = np.asarray(x, float), np.asarray(mean, float), np.asarray(std, float)
    ax.plot(x, mean, marker=marker, markersize=3.5, lw=lw, color=colour, label=label)
    ok = ~np.isnan(std)
    if ok.any():
        ax.fill_between(x[ok], (mean - std)[ok], (mean + std)[ok], color=colour, alpha=0.15, lw=0)


def _teacher_line(ax, score: float | None, scale: float, label: str) -> None:
    """The teacher's score as a dashed line, with headroom: autoscaling adds no margin above a
    horizontal line, so a teacher above every curve would sit on the top spine, unseen."""
    if score is None or math.isnan(score):
        return
    y = score * scale
    ax.axhline(y, color="0.3", ls="--", lw=1, label=label)
    lo, hi = ax.get_ylim()
    room = 0.06 * (max(hi, y) - lo)
    if y > hi - room:
        ax.set_ylim(lo, y + room)


def teacher_layer_scores(path: Path, series: Sequence[dict[str, Any]], *, metric: str, title: str,
                         teacher_score: float | None = None, scale: float = 100.0) -> Path:
    """(b) Dev score of the teacher's pseudo classifier on each layer.

    ``series``: dicts with ``label``, ``layers`` and ``mean`` (and optional ``std``, ``n``)."""
    fig = _figure(7.5, 3.8)
    ax = fig.add_subplot(1, 1, 1)
    matplotlib, _, _ = require_matplotlib()
    cmap = matplotlib.colormaps["tab10"]
    for i, s in enumerate(series):
        std = s.get("std") or [float("nan")] * len(s["layers"])
        label = s["label"] + (f" (n = {s['n']})" if s.get("n") else "")
        _errorband(ax, s["layers"], np.asarray(s["mean"]) * scale, np.asarray(std) * scale, cmap(i), label)
        for x, y in zip(s["layers"], s["mean"], strict=False):
            ax.annotate(f"{y * scale:.1f}", (x, y * scale), textcoords="offset points", xytext=(0, 6), ha="center",
                        fontsize=7)
    _teacher_line(ax, teacher_score, scale, "teacher (final classifier)")
    ax.set_xlabel("teacher layer")
    ax.set_ylabel(f"dev {metric}" + (" ×100" if scale == 100 else ""))
    layers = sorted({x for s in series for x in s["layers"]})
    ax.set_xticks(layers)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)  # never over the points
    return _save(fig, path)


def learning_curves(path: Path, curves: dict[str, dict[str, Any]], *, metric: str, title: str,
                    colours: dict[str, Any], teacher_score: float | None = None, baseline: str | None = None,
                    scale: float = 100.0) -> Path:
    """(d) Dev main metric against (fractional) epoch, mean over seeds with a ±1 std band, per method.

    ``curves``: method -> {``x``, ``mean``, ``std``, ``n``}."""
    fig = _figure(7.5, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    for m, c in curves.items():
        label = f"{m} (n = {c['n']})"
        _errorband(ax, c["x"], np.asarray(c["mean"]) * scale, np.asarray(c["std"]) * scale, colours.get(m), label,
                   lw=2.6 if m == baseline else 1.4)
    _teacher_line(ax, teacher_score, scale, "teacher")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"dev {metric}" + (" ×100" if scale == 100 else ""))
    from matplotlib.ticker import MaxNLocator  # noqa: PLC0415

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return _save(fig, path)


def score_vs_size(path: Path, series: dict[str, list[dict[str, Any]]], *, metric: str, title: str,
                  colours: dict[str, Any], teacher_score: float | None = None, scale: float = 100.0) -> Path:
    """(e) Best-epoch dev main metric (mean ± std over seeds) against student parameters (log x).

    ``series``: method -> list of {``params``, ``mean``, ``std``, ``label``} (one per student)."""
    fig = _figure(7.5, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    markers = "osD^v<>pP*X"
    all_params = sorted({p["params"] for pts in series.values() for p in pts})
    # spread the methods a little around each size so that error bars do not hide each other
    k = len(series)
    for i, (m, pts) in enumerate(series.items()):
        pts = sorted(pts, key=lambda p: p["params"])
        x = np.array([p["params"] for p in pts], dtype=float) * (1.0 + 0.03 * (i - (k - 1) / 2))
        y = np.array([p["mean"] for p in pts]) * scale
        e = np.array([0.0 if p["std"] is None or math.isnan(p["std"]) else p["std"] for p in pts]) * scale
        ax.errorbar(x, y, yerr=e, marker=markers[i % len(markers)], ms=5, capsize=3, lw=1.2, color=colours.get(m),
                    label=m)
    labels: dict[float, str] = {}
    for pts in series.values():
        for p in pts:
            labels.setdefault(p["params"], p.get("label", ""))
    ax.set_xscale("log")
    ticks, prev = [], None
    for p in sorted(all_params):  # students of nearly the same size: put every other label one line lower
        close = prev is not None and p / prev < 1.35 and not ticks[-1].startswith("\n\n")
        ticks.append(("\n\n" if close else "") + f"{labels[p]}\n{p / 1e6:.1f}M")
        prev = p
    ax.set_xticks(sorted(all_params), ticks)
    ax.minorticks_off()
    if len(all_params) == 1:
        ax.set_xlim(all_params[0] / 1.5, all_params[0] * 1.5)
    _teacher_line(ax, teacher_score, scale, "teacher")
    ax.set_xlabel("student parameters (log scale)")
    ax.set_ylabel(f"dev {metric} ×100, best epoch" if scale == 100 else f"dev {metric}, best epoch")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return _save(fig, path)

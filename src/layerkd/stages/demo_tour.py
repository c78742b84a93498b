"""What ``layerkd demo`` says and draws beside its table: the explanation and ``demo.png``.

The explanation (generated task only) says why ``ce`` and ``kd`` can sit at chance while the
layer-matching methods leave it early, with this run's own numbers: the first epoch in which each
run's validation score passed the majority rate by :data:`CHANCE_MARGIN` (``left_chance``, from
its ``results.json`` history) and its best dev score. What it claims about the teacher's layers was checked on the demo's teacher
(``docs/demo.md``: a linear probe on its ``[CLS]`` vectors per layer).

The figure (``demo.png``, matplotlib's Agg canvas through :mod:`layerkd.bench.figures`): a bar
chart of every method's best dev score (the teacher and the majority class as lines) and, when a
method recorded one (``alp``, else ``universal+alp`` …), the heatmap of its attention over the
teacher's layers (``results.json`` ``diagnostics.layer_attention``: mean over the validation rows).
Without matplotlib the figure is skipped with one line; the demo itself needs nothing more.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import numpy as np

FIGURE = "demo.png"
LAYER_METHODS = ("pkd", "alp", "rail", "ckd", "tinybert", "internal")  # match hidden states / layer vectors
OUTPUT_METHODS = ("ce", "kd")  # gold labels / the teacher's output distribution only
WIDTH = 110  # the explanation's line width
CHANCE_MARGIN = 0.1  # "left chance": validation score at least this far above the majority rate


def validation_curve(results: dict[str, Any], metric: str) -> list[float]:
    """The validation score at the end of each epoch, from a run's ``results.json`` history."""
    return [float(h[metric]) for h in results.get("history") or []
            if h.get("end_of_epoch") and isinstance(h.get(metric), (int, float))]


def left_chance(curve: list[float], majority: float) -> int | None:
    """The first epoch (1-based) whose validation score passed the majority rate by
    :data:`CHANCE_MARGIN`; None if none did."""
    return next((i + 1 for i, v in enumerate(curve) if v >= majority + CHANCE_MARGIN), None)


def majority_rate(dev_file: Path) -> float:
    """The share of the most frequent label in a ``sentence<TAB>label`` file (the chance level)."""
    labels = [ln.rsplit("\t", 1)[-1] for ln in Path(dev_file).read_text(encoding="utf-8").splitlines()[1:] if ln]
    return max(labels.count(v) for v in set(labels)) / len(labels) if labels else float("nan")


def _when(epoch: int | None) -> str:
    return "never" if epoch is None else f"epoch {epoch}"


def _left(rows: list[dict[str, Any]]) -> str:
    return ", ".join(f"{r['method']} {_when(r.get('left_chance'))}" for r in rows)


def _is_layer(method: str) -> bool:
    return any(part in LAYER_METHODS for part in method.split("+"))


def explain(rows: list[dict[str, Any]], majority: float) -> str:
    """The guided-tour text printed under the table (the generated task), from the demo's rows
    (``best``, ``left_chance``)."""
    students = [r for r in rows if r["method"] != "(teacher)"]
    out_rows = [r for r in students if r["method"] in OUTPUT_METHODS]
    layer_rows = [r for r in students if _is_layer(r["method"])]
    bar = f"{majority + CHANCE_MARGIN:.2f}"
    paras = [
        "How to read this. The generated task (layerkd.toy): a review such as \"the plot was not dull\" is positive when "
        "its adjective is positive and negated an even number of times (not, never, hardly). No word decides alone: the "
        "adjective by itself is right about 65% of the time; the student must combine it with the negators.",
    ]
    if out_rows:
        text = (f"- {' and '.join(r['method'] for r in out_rows)} learn from one answer per sentence (the gold label; kd: "
                "the teacher's output probabilities), which says nothing about which words lead to it. A randomly "
                "initialised student's [CLS] vector starts the same for every sentence, so that signal barely moves it at "
                f"first: it sits at chance (the majority class: {majority:.3f} of dev) until its attention finds the right "
                f"words. Validation accuracy first >= {bar}: {_left(out_rows)}.")
        stuck = [r["method"] for r in out_rows if r["best"] == r["best"] and r["best"] < majority + CHANCE_MARGIN / 2]
        moved = [r for r in out_rows if r["method"] not in stuck]
        if stuck:
            text += f" Here {' and '.join(stuck)} never left chance within the run (more epochs or another seed may)."
        if moved:
            text += " Here " + ", ".join(f"{r['method']} left it and reached {r['best']:.2f}" for r in moved) + " (dev)."
        paras.append(text)
    if layer_rows:
        text = (f"- {', '.join(r['method'] for r in layer_rows)} also match the student's per-layer vectors ([CLS] state or token mean) to the "
                "teacher's (a vector per layer and sentence). The teacher's first layer already holds, separately, the "
                "adjective's polarity and whether it is negated — what the label is built from, which its 2 logits do "
                "not show — so the student has a target for every sentence from the first step. Validation accuracy "
                f"first >= {bar}: {_left(layer_rows)}.")
        behind = [r for r in layer_rows if out_rows and r["best"] < max(o["best"] for o in out_rows) - 0.02]
        if behind:
            text += (f" Matching layers can also hold a student back: here {', '.join(r['method'] for r in behind)} ended "
                     f"below {'/'.join(r['method'] for r in out_rows)} (the figure: the teacher layers ALP followed).")
        paras.append(text)
    uni = [r for r in students if r["method"] == "universal"]
    if uni:
        paras.append("- universal matches the teacher's per-layer pseudo-classifier outputs (2 numbers per layer), closer "
                     f"to kd than to the layer vectors. Validation accuracy first >= {bar}: {_left(uni)}.")
    paras.append("One seed of a small generated task: a tour of the methods, not a ranking (layerkd bench and report, "
                 "with several seeds, for that).")
    return "\n".join(textwrap.fill(p, WIDTH, subsequent_indent="  " if p.startswith("- ") else "") for p in paras)


# ------------------------------------------------------------------------------------------ figure
def _attention(output_dir: Path, methods: list[str]) -> tuple[str, dict[str, Any]] | None:
    """(method, layer_attention entry) of ALP if it ran, else of the first method that recorded one."""
    order = sorted(methods, key=lambda m: (m != "alp", "alp" not in m.split("+"), methods.index(m)))
    for m in order:
        p = output_dir / "students" / m / "results.json"
        try:
            att = (json.loads(p.read_text(encoding="utf-8")).get("diagnostics") or {}).get("layer_attention") or {}
        except (OSError, ValueError):
            continue
        key = "alp" if "alp" in att else next(iter(att), None)
        if key is not None and isinstance(att[key].get("weights"), list):
            return f"{m} ({key})" if key != m else m, att[key]
    return None


def write_figure(output_dir: Path, rows: list[dict[str, Any]], *, majority: float | None = None) -> Path:
    """Draw ``demo.png`` in ``output_dir``; raises :class:`~layerkd.errors.ConfigError` without matplotlib."""
    from ..bench import figures as F  # noqa: PLC0415

    F.require_matplotlib()
    students = [r for r in rows if r["method"] != "(teacher)"]
    teacher = next((r for r in rows if r["method"] == "(teacher)"), None)
    metric = rows[0]["metric"] if rows else "score"
    att = _attention(output_dir, [r["method"] for r in students])
    fig = F._figure(11.0 if att else 6.0, 4.0)
    ax = fig.add_subplot(1, 2 if att else 1, 1)
    colours = F.method_colours([r["method"] for r in students])
    names = [r["method"] for r in students]
    vals = [r["best"] if r["best"] == r["best"] else 0.0 for r in students]
    bars = ax.bar(range(len(names)), vals, color=[colours[n] for n in names])
    for b, v in zip(bars, vals, strict=True):
        ax.text(b.get_x() + b.get_width() / 2, v + 0.01, f"{v:.2f}", ha="center", va="bottom", fontsize=8)
    if teacher is not None and teacher["best"] == teacher["best"]:
        ax.axhline(teacher["best"], color="black", ls="--", lw=1, label=f"teacher {teacher['best']:.2f}")
    if majority is not None and majority == majority:
        ax.axhline(majority, color="grey", ls=":", lw=1, label=f"majority class {majority:.2f}")
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_ylim(0.0, 1.25)  # room for the legend above the bars
    ax.set_ylabel(f"dev {metric} (best epoch)")
    ax.set_title("students (2 layers, random init) by method", fontsize=10)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", ncol=2, fontsize=8)
    if att:
        name, entry = att
        w = np.asarray(entry["weights"], dtype=np.float64)
        ax2 = fig.add_subplot(1, 2, 2)
        im = ax2.imshow(w, cmap="viridis", vmin=0.0, vmax=max(1e-9, float(w.max())), aspect="auto")
        cols = entry.get("teacher") if isinstance(entry.get("teacher"), list) else list(range(1, w.shape[1] + 1))
        rws = entry.get("student") if isinstance(entry.get("student"), list) else list(range(1, w.shape[0] + 1))
        ax2.set_xticks(range(w.shape[1]), [str(c) for c in cols])
        ax2.set_yticks(range(w.shape[0]), [str(c) for c in rws])
        ax2.set_xlabel("teacher layer")
        ax2.set_ylabel("student layer")
        ax2.set_title(f"{name}: attention over the teacher's layers\n(mean over validation sentences)", fontsize=10)
        F._annotate_cells(ax2, im, w, lambda v: f"{v:.2f}")
        fig.colorbar(im, ax=ax2).set_label("attention weight")
    return F._save(fig, output_dir / FIGURE)

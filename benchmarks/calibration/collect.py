"""Collect the calibration runs (benchmarks/calibration/run.sh) into
benchmarks/results/calibration.{json,md} and calibration-curves.png.

Every number in calibration.md comes from the runs' results.json (written by layerkd): the test
score is GLUE dev at the validation-selected epoch (``best``) and at the last epoch; the curves are
the per-epoch scores on the carved validation split (``history``).

Usage: python benchmarks/calibration/collect.py [--work DIR]   (default $LAYERKD_WORK or ../layerkd-work)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "benchmarks" / "results"
TASKS = ["sts-b", "mrpc", "rte", "cola", "sst-2"]
VARIANTS = [("pre", "cls"), ("pre", "mean"), ("cut", "cls"), ("cut", "mean")]
SHARED_EPOCHS = {"sst-2": 4}  # run.sh SEPOCHS: 8 epochs unless listed
INIT = {"pre": "pretrained encoder, bottom 2 blocks", "cut": "cut from the fine-tuned teacher (bottom:2)"}


def read_run(run: Path) -> dict | None:
    """One run folder's results.json: test scores (selected and last epoch) and the validation curve; None if absent."""
    f = run / "results.json"
    if not f.exists():
        return None
    r = json.loads(f.read_text())
    metric = r["main_metric"]
    curve = [h[metric] for h in r["history"] if h.get("end_of_epoch")]
    wall = run / "wall_seconds.txt"
    others = {k: v for k, v in r["best"].items() if k != metric and isinstance(v, float)}
    return {"metric": metric, "test_best": r["best"][metric], "test_last": r["last"][metric], "test_other": others,
            "best_epoch": r["best_epoch"], "epochs": r["epochs_run"], "val_curve": curve,
            "val_best": (r.get("selection") or {}).get("best", {}).get(metric),
            "selection": (r.get("selection") or {}).get("split"), "train_rows": r.get("train_rows"),
            "wall_seconds": float(wall.read_text()) if wall.exists() else None}


def _majority(task: str, glue: Path) -> float | None:
    from layerkd.data.readers import read_split  # noqa: PLC0415
    from layerkd.metrics import compute_metrics  # noqa: PLC0415
    from layerkd.tasks import get_task  # noqa: PLC0415

    t = get_task(task)
    if t.is_regression:
        return None
    y = np.asarray(read_split(t, "dev", data_dir=str(glue)).labels())
    pred = np.full_like(y, np.bincount(y).argmax())
    return float(compute_metrics(t.metrics, pred, y)[t.main_metric])


def _plateau(curve: list[float]) -> str:
    if len(curve) < 3:
        return "–"
    gain = curve[-1] - max(curve[:-2])
    return "yes" if gain < 0.005 else f"no (+{100 * gain:.1f} in the last 2 epochs)"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default=os.environ.get("LAYERKD_WORK", str(REPO.parent / "layerkd-work")))
    ap.add_argument("--shared", default=os.environ.get("LAYERKD_SHARED", str(REPO.parent / "shared")))
    ap.add_argument("--out", default=str(OUT), help="folder of calibration.{json,md} (default benchmarks/results)")
    ap.add_argument("--from-json", action="store_true",
                    help="only render calibration.md again from the committed calibration.json (e.g. after a new "
                         "teacher-reproduction record), without reading the work area's runs")
    a = ap.parse_args(argv)
    out = Path(a.out)
    if a.from_json:
        src = out / "calibration.json"
        if not src.is_file():
            print(f"{src}: missing (expected the calibration.json a full collect.py run wrote)", file=sys.stderr)
            raise SystemExit(2)
        data = json.loads(src.read_text())
        (out / "calibration.md").write_text(_markdown(data, out / "teacher-reproduction.json"))
        print(f"wrote {out / 'calibration.md'}")
        return
    work, glue = Path(a.work), Path(a.shared) / "data" / "glue"
    data: dict = {}
    from layerkd.bench.suite import teacher_hash  # noqa: PLC0415

    for t in TASKS:
        row = {"teacher": read_run(work / "teachers-v2" / t), "majority": _majority(t, glue), "students": {}}
        if row["teacher"]:  # so a rerun of the (deterministic) fine-tune can be checked bit for bit
            row["teacher"]["weights_sha256"] = teacher_hash(str(work / "teachers-v2" / t))
        for init, pool in VARIANTS:
            row["students"][f"{init}-{pool}"] = read_run(work / "calibration" / f"{t}-{init}-{pool}")
        for run in sorted((work / "calibration").glob(f"{t}-cut-mean-lr*-e*")):  # run.sh budget TASK LR EPOCHS
            row["students"][run.name[len(t) + 1:]] = read_run(run)
        data[t] = row
    (out / "calibration.json").write_text(json.dumps(data, indent=1, allow_nan=False, default=lambda x: None) + "\n")
    _figure(data, out)
    (out / "calibration.md").write_text(_markdown(data, out / "teacher-reproduction.json"))
    print(f"wrote {out / 'calibration.md'}")


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def _budget(parts: list[str], task: str) -> str:
    """``['lr3e', '5', 'e8']`` (the name's tail after ``cut-mean-``; the learning rate may hold a '-')
    -> 'lr 3e-5, 8 ep.'; no tail: the shared budget of run.sh."""
    if not parts:
        return f"lr 1e-4, {SHARED_EPOCHS.get(task, 8)} ep."
    tail = "-".join(parts)
    lr, _, ep = tail.rpartition("-e")
    return f"lr {lr.removeprefix('lr')}, {ep} ep."


def _markdown(data: dict, reproduction: Path | None = None) -> str:
    lines = [
        "# Calibration of the v2 setting (generated by benchmarks/calibration/collect.py)",
        "",
        "Commands: `bash benchmarks/calibration/run.sh teachers`, `… students-pre`, `… students-cut`, then",
        "`python benchmarks/calibration/collect.py`. Teacher: all-MiniLM-L6-v2 fine-tuned with `--pooling mean`",
        "(lr 5e-5, batch 32, max length 128, seed 42; epochs as in benchmarks/teachers.sh). Students: 2 blocks,",
        "`ce` only, lr 1e-4, batch 32, max length 128, seed 1, 8 epochs (SST-2: 4 epochs on its fixed 8,000-row",
        "subsample). Every run selects on the validation split carved from the training set (10 %, at most",
        "2,000 rows, seed 0); **test** = GLUE dev, scored once at the validation-selected epoch (and the last",
        "epoch). Scores ×100 (the task's main metric). One seed: a calibration, not a comparison.",
        "Versions: layerkd 0.1.0, torch 2.13.0+cpu, transformers 5.x; machine: 2 CPU cores shared with other",
        "jobs (wall times are not speed measurements).",
        "",
        "| task | metric | majority | teacher (test) | student | head | budget | test (selected) | test (last) | "
        "% of teacher | other test metrics | best epoch | val. plateaued | val. curve |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for t, row in data.items():
        teacher = row["teacher"]
        tscore = teacher["test_best"] if teacher else None
        for name, s in row["students"].items():
            init, pool, *budget = name.split("-")
            budget = _budget(budget, t)
            if s is None:
                lines.append(f"| {t} | | {_pct(row['majority'])} | {_pct(tscore)} | {init} | {pool} | {budget} | not run | | | | | | |")
                continue
            ratio = "–" if not tscore else f"{100 * s['test_best'] / tscore:.0f} %"
            if row["majority"] is not None and s["test_best"] <= row["majority"] + 0.005:
                ratio += " (at majority)"
            curve = " ".join(_pct(v) for v in s["val_curve"])
            other = ", ".join(f"{k} {_pct(v)}" for k, v in (s.get("test_other") or {}).items()) or "–"
            lines.append(f"| {t} | {s['metric']} | {_pct(row['majority'])} | {_pct(tscore)} | {init} | {pool} | {budget} | "
                         f"{_pct(s['test_best'])} | {_pct(s['test_last'])} | {ratio} | {other} | {s['best_epoch']} | "
                         f"{_plateau(s['val_curve'])} | {curve} |")
    best = []
    for t, row in data.items():
        done = {k: v for k, v in row["students"].items() if v}
        if done:
            k = max(done, key=lambda n: done[n]["test_best"])
            n_var = sum(f"{i}-{q}" in done for i, q in VARIANTS)
            maj = row["majority"]
            at_majority = maj is not None and done[k]["test_best"] <= maj + 0.005
            best.append(f"{t}: {k} ({_pct(done[k]['test_best'])}" + (", the majority-class score" if at_majority else "")
                        + f"; {n_var} of {len(VARIANTS)} variants run" + (f", {len(done) - n_var} more budgets" if len(done) > n_var else "")
                        + ")")
    lines += ["", "Best student variant per task (test at the selected epoch): " + "; ".join(best) + ".", *_caveats(data),
              "", "Students: pre = " + INIT["pre"] + "; cut = " + INIT["cut"] + ".",
              "Teacher validation curves: " + "; ".join(
                  f"{t} {' '.join(_pct(v) for v in row['teacher']['val_curve'])}" for t, row in data.items() if row["teacher"]),
              "Teacher test, other metrics: " + ("; ".join(
                  f"{t} " + ", ".join(f"{k} {_pct(v)}" for k, v in row["teacher"]["test_other"].items())
                  for t, row in data.items() if row["teacher"] and row["teacher"].get("test_other")) or "–"),
              "Teacher weights (SHA-256, first 12): " + "; ".join(
                  f"{t} {row['teacher']['weights_sha256'][:12]}" for t, row in data.items() if row["teacher"]),
              _reproduced(data, reproduction),
              "", "![validation curves](calibration-curves.png)", ""]
    return "\n".join(lines)


def _reproduced(data: dict, path: Path | None) -> str:
    """Which teachers a from-scratch rerun reproduced bit for bit (teacher-reproduction.json, written by
    reproduce.py); a record about other weights than the teacher's current ones is not counted."""
    records = json.loads(path.read_text()) if path is not None and path.is_file() else {}
    checked = [f"{t} {'bit-identical' if r['bit_identical'] else 'DIFFERENT'} ({r['checked_on']})"
               for t, r in sorted(records.items())
               if data.get(t, {}).get("teacher") and r["weights_sha256_original"] == data[t]["teacher"]["weights_sha256"]]
    return ("Teachers fine-tuned again from scratch (teacher-reproduction.md): " + "; ".join(checked or ["none yet"])
            + ". `LAYERKD_REPRO=<fresh folder> bash benchmarks/calibration/reproduce.sh TASK` checks another.")


#: a teacher less than this far above the majority class (in score units) cannot calibrate a student
NEAR_MAJORITY = 0.05


def _caveats(data: dict) -> list[str]:
    """Generated lines for what the table alone would let a reader miss."""
    out = []
    weak = [f"{t} (test {_pct(r['teacher']['test_best'])} at the selected epoch, {_pct(r['teacher']['test_last'])} at the "
            f"last; majority class {_pct(r['majority'])})" for t, r in data.items()
            if r["teacher"] and r["majority"] is not None and r["teacher"]["test_best"] - r["majority"] < NEAR_MAJORITY]
    if weak:
        out.append(f"Teachers less than {100 * NEAR_MAJORITY:.0f} points above the majority class on the main metric: "
                   + "; ".join(weak) + ". There the main metric's fraction of the teacher cannot show that a student "
                   "learned (read the other test metrics beside it), and no method can beat `ce` by more than the "
                   "teacher's own margin.")
    def ran(row: dict, init: str) -> bool:
        return any(row["students"].get(f"{init}-{q}") for _, q in VARIANTS)

    pre_skipped = [t for t, r in data.items() if ran(r, "cut") and not ran(r, "pre")]
    both = [t for t, r in data.items() if ran(r, "cut") and ran(r, "pre")]
    if pre_skipped and both:
        out.append(f"Pretrained-init (pre) students not run on {', '.join(pre_skipped)}: the initialisation was chosen "
                   f"on the tasks where both ran ({', '.join(both)}).")
    return out


def variant_colours(data: dict) -> dict[str, int]:
    """Variant name -> colour index, the same in every panel (in order of first appearance)."""
    names = dict.fromkeys(n for row in data.values() for n, s in row["students"].items() if s)
    return {n: i for i, n in enumerate(names)}


def _figure(data: dict, out: Path) -> None:
    try:
        import matplotlib  # noqa: PLC0415

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        return
    fig, axes = plt.subplots(1, len(data), figsize=(4 * len(data), 3.2), squeeze=False)
    # one colour per variant across all panels (a per-panel colour cycle would give the same colour to
    # different variants in panels where some did not run); mean heads solid, [CLS] heads dashed
    colour = {n: plt.get_cmap("tab10")(i % 10) for n, i in variant_colours(data).items()}
    for ax, (t, row) in zip(axes[0], data.items(), strict=True):
        for name, s in row["students"].items():
            if s:
                ax.plot(range(1, len(s["val_curve"]) + 1), s["val_curve"], marker="o", ms=3, color=colour[name],
                        ls="--" if "-cls" in name else "-", label=name)
        if row["teacher"]:
            ax.axhline(row["teacher"]["val_best"] or row["teacher"]["test_best"], color="k", lw=0.8, label="teacher")
        if row["majority"] is not None:
            ax.axhline(row["majority"], color="grey", lw=0.8, ls=":", label="majority (dev)")
        ax.set_title(t)
        ax.set_xlabel("epoch")
    axes[0][0].set_ylabel("validation score")
    for ax in axes[0]:  # every panel its own legend: the variants run differ by task
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out / "calibration-curves.png", dpi=110)


if __name__ == "__main__":
    main()

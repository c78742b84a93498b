"""Collect the fine-tuned teachers' dev scores into benchmarks/results/teachers.{md,json}.

Usage: python benchmarks/collect_teachers.py [--work ../layerkd-work]
Reads <work>/teachers/<task>/{results.json,config.yaml,wall_seconds.txt} written by
benchmarks/teachers.sh; tasks not finished yet are listed as missing. A task recorded in an earlier
teachers.json whose directory is gone now (a new work area) keeps its earlier row, marked as such,
and each row carries the hash of the weights it describes, so a retrained teacher is visible.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import yaml

from layerkd.bench.suite import teacher_hash  # the hash suite cells record as the teacher's fingerprint

TASKS = ["sst-2", "mrpc", "cola", "sts-b", "rte"]
HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=HERE.parent.parent / "layerkd-work")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args()
    previous = {}
    if (args.out / "teachers.json").exists():
        previous = {}
        for r in json.loads((args.out / "teachers.json").read_text())["teachers"]:
            previous.setdefault(r["task"], []).append(r)
    rows, missing = [], []
    for t in TASKS:
        d = args.work / "teachers" / t
        if not (d / "results.json").exists():
            if t in previous:
                rows += [{**p, "recorded_earlier": True} for p in previous[t]]
            else:
                missing.append(t)
            continue
        r = json.loads((d / "results.json").read_text())
        cfg = yaml.safe_load((d / "config.yaml").read_text())
        wall = float((d / "wall_seconds.txt").read_text()) if (d / "wall_seconds.txt").exists() else r.get("train_seconds")
        current_hash = teacher_hash(str(d)) or None
        # an earlier teacher of this task with other weights (retrained since) stays in the record, marked
        rows += [{**p, "recorded_earlier": True} for p in previous.get(t, [])
                 if p.get("weights_sha256") != current_hash]
        rows.append({"task": t, "main_metric": r["main_metric"], "best": r["best"], "last": r["last"],
                     "best_epoch": r["best_epoch"], "epochs": cfg["train"]["epochs"], "train_rows": r.get("train_rows"),
                     "train_subsample": cfg["data"]["train_subsample"], "lr": cfg["train"]["lr"],
                     "batch_size": cfg["train"]["batch_size"], "max_length": cfg["train"]["max_length"],
                     "seed": cfg["train"]["seed"], "precision": cfg["train"]["precision"], "wall_seconds": wall,
                     "environment": r.get("environment"), "weights_sha256": current_hash})
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "teachers.json").write_text(json.dumps({"teachers": rows, "missing": missing}, indent=1))
    env = rows[0]["environment"] if rows else {}
    lines = [
        "# Teachers: all-MiniLM-L6-v2 fine-tuned on each GLUE task",
        "",
        "Command: `bash benchmarks/teachers.sh` (then `python benchmarks/collect_teachers.py`). AdamW lr 5e-5, "
        "weight decay 0.01, batch 32, max length 128, 10 % warm-up then linear decay, fp32, seed 42; the best dev "
        "epoch is kept (both best- and last-epoch dev scores below). Dev = the GLUE dev set.",
        "",
        "| task | train rows | epochs | best epoch | best-epoch dev | last-epoch dev | wall time | weights (sha256) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        fmt = lambda m: ", ".join(f"{k} {v:.4f}" for k, v in m.items())  # noqa: E731
        sub = f" (subsample of {r['train_subsample']})" if r["train_subsample"] else ""
        lines.append(f"| {r['task']} | {r['train_rows']}{sub} | {r['epochs']} | {r['best_epoch']} | {fmt(r['best'])} | "
                     f"{fmt(r['last'])} | {r['wall_seconds'] / 60:.0f} min | "
                     f"{(r.get('weights_sha256') or 'not recorded')[:12]}{' (recorded earlier)' if r.get('recorded_earlier') else ''} |")
    if missing:
        lines += ["", f"Not finished: {', '.join(missing)}."]
    tf = sorted({(r.get("environment") or {}).get("transformers") or "?" for r in rows})
    lines += ["", f"Versions: layerkd {env.get('layerkd')}, torch {env.get('torch')}, transformers {' / '.join(tf)} "
              "(per row in teachers.json), "
              f"Python {env.get('python')}. Machine: {env.get('cpu_count')} CPU cores ({platform.processor() or 'x86_64'}), "
              "no GPU; wall times include evaluation and were measured while other jobs shared the CPU."]
    (args.out / "teachers.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""Collect the methods smoke check (issue 3) into benchmarks/results/methods-smoke.{md,json}.

Usage: python benchmarks/collect_smoke.py [--cells DIR ...]   (default: benchmarks/results/cells and cells-t2)

The smoke check is the `smoke` suite (configs/suites/smoke.yaml: every method once, seed 1, on
MRPC and RTE, MiniLM-L6 teacher → its bottom 2 layers, 4 epochs, lr 1e-4), run with
`layerkd bench configs/suites/smoke.yaml --results benchmarks/results/cells`. Its cells are
shared with the `ild` suite, so this script reads the result files of that directory and keeps
those that belong to the smoke grid (task, student label ``L2``, method label, seed 1 and the
suite's training settings); methods without a result are listed as not run. With several
directories (one per teacher generation: the first MRPC teacher's cells are in ``cells``, the retrained
one's in ``cells-t2``) a later directory's result wins, and each row names its teacher's weights hash.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
SUITE = HERE.parent / "configs" / "suites" / "smoke.yaml"


def _label(m) -> str:
    return m if isinstance(m, str) else m["label"]


def _fmt(metrics: dict | None) -> str:
    return ", ".join(f"{k} {100 * v:.2f}" for k, v in metrics.items()) if metrics else "—"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=Path, nargs="+",
                    default=[HERE / "results" / "cells", HERE / "results" / "cells-t2"])
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args()
    suite = yaml.safe_load(SUITE.read_text())
    methods = [_label(m) for m in suite["methods"]]
    train = suite["base"]["train"]
    found: dict[tuple[str, str], dict] = {}
    files = [f for d in args.cells if d.is_dir() for f in sorted(d.glob("*.json"))]
    for f in files:
        if f.name.endswith(".failed.json"):
            continue
        r = json.loads(f.read_text())
        c, t = r["cell"], r["config"]["train"]
        if (c["task"] in suite["tasks"] and c["student"] == "L2" and c["seed"] == 1 and c["method"] in methods
                and all(t[k] == v for k, v in train.items())):
            found[(c["task"], c["method"])] = {**r, "_file": str(f)}
    rows, missing = [], []
    for task in suite["tasks"]:
        for m in methods:
            r = found.get((task, m))
            if r is None:
                missing.append(f"{task}/{m}")
                continue
            res = r["result"]
            rows.append({"task": task, "method": m, "key": r["key"], "main_metric": res["main_metric"],
                         "best": res["best"], "last": res["last"], "best_epoch": res["best_epoch"],
                         "wall_seconds": r["wall_seconds"], "train_seconds": res["train_seconds"],
                         "resumed": bool(r.get("resumed")),
                         "teacher_fingerprint": (r.get("teacher") or {}).get("fingerprint"),
                         "results_dir": f"{Path(r['_file']).parent.name}",
                         "environment": res.get("environment"), "description": res.get("method_description")})
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "methods-smoke.json").write_text(json.dumps({"rows": rows, "missing": missing}, indent=1) + "\n")
    envs = {json.dumps(r["environment"], sort_keys=True) for r in rows if r["environment"]}
    lines = [
        "# Methods smoke check on real data (issue 3)",
        "",
        "Every method once (seed 1): MiniLM-L6 teacher fine-tuned by `benchmarks/teachers.sh` → a 2-layer student cut",
        "from the teacher's bottom layers (`bottom:2`), 4 epochs, lr 1e-4, batch 32, max length 128, fp32, the same for "
        "every method. A smoke check that everything runs on real data; the statistics (3 seeds, significance) are "
        "the `ild` suite's job (docs/results.md).",
        "",
        "Commands:",
        "",
        "```bash",
        "bash benchmarks/teachers.sh mrpc rte",
        "# first teachers: --results benchmarks/results/cells; retrained teachers: --results benchmarks/results/cells-t2",
        "layerkd bench configs/suites/smoke.yaml --results benchmarks/results/cells-t2 --var shared=../shared "
        "--var work=../layerkd-work",
        "python benchmarks/collect_smoke.py",
        "```",
        "",
        "Scores ×100 on the GLUE dev set; best = the best epoch by the task's main metric, last = the final epoch; "
        "wall = the whole cell (training, evaluation each epoch, the PAWS-Wiki evaluation of MRPC cells, teacher cache "
        "or pseudo-classifier fitting) on the 2-core machine, which other jobs (teacher fine-tuning, other cells) "
        "shared: the same cell took 4 to 40 minutes depending on that load, so wall times are not a speed comparison "
        "(benchmarks/results/speed.md is). A cell marked *resumed* was interrupted and finished from its last "
        "checkpoint; its wall time counts only the resumed part.",
        "",
    ]
    for task in suite["tasks"]:
        trs = [r for r in rows if r["task"] == task]
        lines += [f"## {task.upper()}", "",
                  "| method | best epoch | best-epoch dev | last-epoch dev | wall | teacher weights | result |",
                  "|---|---:|---|---|---:|---|---|"]
        lines += [f"| {r['method']} | {r['best_epoch']} | {_fmt(r['best'])} | {_fmt(r['last'])} | "
                  f"{r['wall_seconds'] / 60:.1f} min{' (resumed)' if r['resumed'] else ''} | "
                  f"{(r['teacher_fingerprint'] or '')[:8]} | "
                  f"{r['results_dir']}/{r['key']}.json |" for r in trs]
        teachers = sorted({(r["teacher_fingerprint"] or "")[:8] for r in trs})
        if len(teachers) > 1:
            lines += ["", f"Rows of this task come from {len(teachers)} teacher generations "
                      f"({', '.join(teachers)}; see the teacher weights column and docs/results.md): "
                      "compare scores only between rows with the same teacher."]
        lines.append("")
    lines.append(f"Not run: {', '.join(missing)}." if missing else "Every method ran on every task.")
    lines += ["", "Environment(s) recorded by the cells: " + "; ".join(sorted(envs)) if envs else ""]
    (args.out / "methods-smoke.md").write_text("\n".join(lines).rstrip() + "\n")
    print(f"{len(rows)} rows, {len(missing)} missing -> {args.out / 'methods-smoke.md'}")


if __name__ == "__main__":
    main()

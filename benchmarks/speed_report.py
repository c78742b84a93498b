#!/usr/bin/env python
"""The reports of ``benchmarks/speed.py``: targets, bounds, end-to-end ratios, Markdown — and the
paper-shaped section and the levers table collected into ``benchmarks/results/speed.md``.

**Bounds** come from counting layer passes. With a free teacher an epoch can at most lose the
teacher's forward pass, so a cached epoch can be at most ``(S + T) / S`` times faster than one with
a live teacher (TextBrewer runs it live too), ``S`` the student's step time (the ``ce`` row), ``T``
the teacher's forward time (the ``teacher`` row): the *measured bound*. Counting layers (a backward
pass ≈ two forwards, each block weighted by its FLOPs, so with equal widths plain layer counts):
``T/S = N / 3M`` for an N-layer teacher and an M-layer student — 2.0 at BERT-base → BERT-4, 3.0 at
BERT-2: the *layer bound*. A ``K``-epoch run (K = 4) pays the cache build (≈ one teacher pass) once
and the live teacher every epoch: end to end, live / cached ≤ ``K (S + T) / (T + K S)`` (1.6 at
BERT-4). The measured end-to-end ratio is ``K · live epoch / (build + K · cached epoch)``, the
build being the build round's measured seconds scaled to the rows one epoch covers.

**Targets** of a paper-shaped run (issue 22, fp32 on both sides): cached ILD epoch ≤ 1.10× the
student-only epoch; per epoch vs TextBrewer's ``pkd`` ≥ 1.8× at BERT-4 and ≥ 2.5× at BERT-2; end to
end vs the live teacher ≥ 1.5× at BERT-4. A run without ``--shape`` keeps issue 5's targets.

Collecting (after the runs of the "To run" note in speed.md)::

    python benchmarks/speed_report.py --paper benchmarks/results/speed-paper \\
        --levers benchmarks/results/levers.json --into benchmarks/results/speed.md
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed_rows import layer_flops  # noqa: E402
from timing import fmt as _f  # noqa: E402

E2E_EPOCHS = 4
ILD = ("pkd", "alp", "rail", "universal", "universal+rail", "universal+alp")
TARGET_ILD, TARGET_E2E = 1.10, 1.5
TARGET_PEER_PAPER = {2: 2.5, 4: 1.8}  # student layers -> TextBrewer epoch / cached pkd epoch (BERT-base teacher)
TARGET_RATIO, TARGET_PEER = 1.15, 2.0  # issue 5's targets (MiniLM teacher, no --shape)


def _med(rows: dict, row: str):
    return rows.get(row, {}).get("median_epoch_seconds")


def bounds(rep: dict) -> dict:
    """Measured and layer-count bounds on live/cached per epoch and end to end."""
    rows, dims = rep["rows"], rep["settings"].get("dims")
    s, t = _med(rows, "ce"), _med(rows, "teacher")
    out: dict = {"epochs": E2E_EPOCHS}
    if s and t:
        out["measured_epoch"] = round((s + t) / s, 3)
        out["measured_e2e"] = round(E2E_EPOCHS * (s + t) / (t + E2E_EPOCHS * s), 3)
        out["teacher_over_student"] = round(t / s, 3)
    if dims:
        length = rep["settings"]["max_length"]
        r = (dims["teacher"]["layers"] * layer_flops(dims["teacher"]["hidden"], dims["teacher"]["intermediate"], length)
             / (3 * dims["student"]["layers"] * layer_flops(dims["student"]["hidden"], dims["student"]["intermediate"], length)))
        out["layer_epoch"] = round(1 + r, 3)
        out["layer_e2e"] = round(E2E_EPOCHS * (1 + r) / (r + E2E_EPOCHS), 3)
    return out


def end_to_end(rep: dict) -> dict:
    """Per cached method with a live row: the K-epoch run's seconds, cached (build included) and live."""
    rows, st = rep["rows"], rep["settings"]
    out = {}
    for name, r in rows.items():
        if r.get("lever") or not r.get("cache") or r["method"] == "internal-all" or f"{name}-live" not in rows:
            continue
        cached, live, build = r["median_epoch_seconds"], _med(rows, f"{name}-live"), r.get("cache_build_seconds")
        train_rows = (r.get("build_round") or {}).get("train_rows")
        if not (cached and live and build is not None and train_rows):
            continue
        epoch_rows = min(train_rows, (r["steps_per_epoch"] or 0) * st["batch_size"]) or train_rows
        build_epoch = build * epoch_rows / train_rows
        c, lv = build_epoch + E2E_EPOCHS * cached, E2E_EPOCHS * live
        out[name] = {"build_s": round(build_epoch, 3), "cached_s": round(c, 3), "live_s": round(lv, 3),
                     "live_over_cached": round(lv / c, 3), "per_epoch_live_over_cached": round(live / cached, 3)}
    return out


def targets(rep: dict) -> list[dict]:
    rows = rep["rows"]
    dims = rep["settings"].get("dims")
    if not dims:
        return _targets_issue5(rows)
    b, e2e, m = rep.get("bounds") or bounds(rep), rep.get("end_to_end") or end_to_end(rep), dims["student"]["layers"]
    bert = dims["teacher"]["layers"] == 12 and dims["teacher"]["hidden"] == 768
    bound_txt = f"bound {b.get('measured_epoch', '—')} measured, {b.get('layer_epoch', '—')} by layer count"
    out = []
    for name, r in rows.items():
        if r.get("lever") or not r.get("cache") or r["ratio_to_ce"] is None or r["method"] == "internal-all":
            continue
        ild = name in ILD
        out.append({"target": f"cached {name} epoch ≤ {TARGET_ILD}× the student-only (ce) epoch"
                              + ("" if ild else " (context: not an ILD method)"),
                    "value": r["ratio_to_ce"], "met": (r["ratio_to_ce"] <= TARGET_ILD) if ild else None})
    if _med(rows, "textbrewer") and _med(rows, "pkd"):
        x = _med(rows, "textbrewer") / _med(rows, "pkd")
        goal = TARGET_PEER_PAPER.get(m) if bert else None
        out.append({"target": (f"≥ {goal}× faster per epoch than TextBrewer on the same pkd recipe" if goal else
                               "(context) TextBrewer epoch / our cached pkd epoch") + f" ({bound_txt})",
                    "value": round(x, 3), "met": (x >= goal) if goal else None})
    for name, e in e2e.items():
        goal = TARGET_E2E if bert and m == 4 else None
        txt = (f"end to end ({E2E_EPOCHS} epochs incl. the cache build) {name}: ≥ {goal}× faster than the live teacher"
               if goal else f"(context) end to end ({E2E_EPOCHS} epochs incl. the cache build) {name}: live / cached")
        out.append({"target": txt + f" (bound {b.get('measured_e2e', '—')} measured, {b.get('layer_e2e', '—')} by layer count)",
                    "value": e["live_over_cached"], "met": (e["live_over_cached"] >= goal) if goal else None})
    return out


def _targets_issue5(results: dict) -> list[dict]:
    out = []
    for row in ("kd", "alp", "rail", "universal"):
        if row in results and results[row]["ratio_to_ce"] is not None:
            ratio = results[row]["ratio_to_ce"]
            out.append({"target": f"cached {row} epoch ≤ {TARGET_RATIO}× the student-only (ce) epoch",
                        "value": ratio, "met": ratio <= TARGET_RATIO})
    if _med(results, "textbrewer") and _med(results, "pkd"):
        x = _med(results, "textbrewer") / _med(results, "pkd")
        out.append({"target": f"≥ {TARGET_PEER}× faster per epoch than TextBrewer on the same distillation (cached pkd)",
                    "value": round(x, 3), "met": x >= TARGET_PEER})
    if _med(results, "textbrewer") and _med(results, "pkd-live"):
        x = _med(results, "textbrewer") / _med(results, "pkd-live")
        out.append({"target": "(context) TextBrewer epoch / our live-teacher pkd epoch", "value": round(x, 3), "met": None})
    if _med(results, "rail") and _med(results, "alp"):
        x = _med(results, "rail") / _med(results, "alp")
        out.append({"target": "cached rail no slower than cached alp (ratio ≤ 1)", "value": round(x, 3), "met": x <= 1.0})
    for m in [r for r in results if f"{r}-live" in results]:
        if _med(results, m) and _med(results, f"{m}-live"):
            out.append({"target": f"(context) {m}: live-teacher epoch / cached epoch",
                        "value": round(_med(results, f"{m}-live") / _med(results, m), 3), "met": None})
    return out


def _mark(met) -> str:
    return "—" if met is None else ("**met**" if met else "**missed**")


def markdown(rep: dict) -> str:
    """One run's report (what speed.py writes to <out>.md)."""
    s, v, mach = rep["settings"], rep["versions"], rep["machine"]
    if rep.get("skipped"):
        return f"# Speed benchmark: skipped\n\nCommand: `{rep['command']}`  \n{rep['skipped']}\n"
    teacher = f"random `{s['shape']}`-shaped teacher" if s.get("shape") else f"teacher `{s['teacher']}`"
    lines = [
        "# Speed benchmark: distillation epoch vs the student's own epoch" + (" (smoke run)" if s.get("smoke") else ""),
        "",
        f"Command: `{rep['command']}`  ",
        f"Started {rep['started']}, wall {rep['wall_seconds'] / 60:.1f} min.  ",
        f"Task {s['task']} (train subsample {s['subsample']}, seed 0), {teacher}, student `{s['student']}`; "
        f"batch {s['batch_size']}, max length {s['max_length']}, steps/epoch {s['steps_per_epoch']}, precision {s['precision']}, "
        f"seed {s['seed']}, {s['repeats']} interleaved rounds.  ",
        f"Machine: {mach.get('cpu')}, {mach.get('logical_cores')} logical cores"
        f"{', affinity ' + str(mach['affinity_cores']) if 'affinity_cores' in mach else ''}; "
        f"load average at start {mach.get('load_average_at_start')}; torch threads per worker {s['worker_torch_threads']}; "
        f"GPU {v['cuda'] or 'none'}.  ",
        f"Versions: layerkd {v['layerkd']}, torch {v['torch']}, transformers {v['transformers']}, accelerate {v['accelerate']}, "
        f"numpy {v['numpy']}, TextBrewer {v['textbrewer']}.",
        "",
        "| row | method | teacher | median epoch (s) | × ce | epochs (s) | first epoch incl. cache build (s) | build (s) | cache MB / 1k ex. | peak RSS (MB) |",
        "|---|---|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    for name, r in rep["rows"].items():
        if r.get("lever"):
            continue
        size = r.get("cache_size", {}).get("mb_per_1000")
        lines.append(
            f"| {name} | {r['method']} | {r['teacher']} | {_f(r['median_epoch_seconds'])} | {_f(r['ratio_to_ce'], 2)} | "
            f"{', '.join(f'{x:.2f}' for x in r['epoch_seconds'])} | {_f(r.get('first_epoch_seconds'))} | "
            f"{_f(r.get('cache_build_seconds'))} | {_f(size, 3)} | {_f(r['peak_rss_mb'], 0)} |")
    levers = {n: r for n, r in rep["rows"].items() if r.get("lever")}
    if levers:
        lines += ["", "## Student-side levers (separate rows, not part of the fp32 comparison)", "",
                  "| row | lever | median epoch (s) | × the row without the lever | × ce | epochs (s) |", "|---|---|---:|---:|---:|---|"]
        for name, r in levers.items():
            base = _med(rep["rows"], r["base_row"])
            x = r["median_epoch_seconds"] / base if base and r["median_epoch_seconds"] else None
            lines.append(f"| {name} | {r['lever']} | {_f(r['median_epoch_seconds'])} | {_f(x, 2)} | {_f(r['ratio_to_ce'], 2)} | "
                         f"{', '.join(f'{x:.2f}' for x in r['epoch_seconds'])} |")
    b, e2e = rep.get("bounds") or {}, rep.get("end_to_end") or {}
    if b.get("measured_epoch") or b.get("layer_epoch"):
        lines += ["", "## Bounds (a free teacher removes at most the teacher's forward pass)", "",
                  f"- per epoch, live / cached ≤ {b.get('measured_epoch', '—')} measured "
                  f"(teacher forward {b.get('teacher_over_student', '—')}× the student's ce epoch), "
                  f"≤ {b.get('layer_epoch', '—')} by layer count",
                  f"- end to end over {E2E_EPOCHS} epochs with the cache build: ≤ {b.get('measured_e2e', '—')} measured, "
                  f"≤ {b.get('layer_e2e', '—')} by layer count"]
    if e2e:
        lines += ["", f"## End to end: a {E2E_EPOCHS}-epoch run, cache build included", "",
                  "| method | build, scaled to one epoch's rows (s) | cached run (s) | live run (s) | live / cached | per epoch live / cached |",
                  "|---|---:|---:|---:|---:|---:|"]
        for name, e in e2e.items():
            lines.append(f"| {name} | {_f(e['build_s'])} | {_f(e['cached_s'])} | {_f(e['live_s'])} | {_f(e['live_over_cached'], 3)} | "
                         f"{_f(e['per_epoch_live_over_cached'], 3)} |")
    lines += ["", "## Targets", ""]
    lines += [f"- {t['target']}: {t['value']} {_mark(t['met'])}" for t in rep["targets"]]
    sizes = {n: r["cache_size"]["per_field_mb_per_1000"] for n, r in rep["rows"].items() if r.get("cache_size")}
    if sizes:
        lines += ["", "Cache size per field (MB per 1,000 examples): "
                  + "; ".join(f"{n}: " + ", ".join(f"{k} {x}" for k, x in f.items()) for n, f in sizes.items())]
    lines += ["", "How measured: each number is one epoch in a fresh worker process built with the layerkd API "
              "(`layerkd.stages.distill.distill`), timed from the run's `epoch_start` record to its last `train` record "
              "(batching, teacher/cache, forward, backward, optimiser; not the end-of-epoch evaluation/checkpoint). "
              "TextBrewer's row times `GeneralDistiller.train` for one epoch over the same batches with its checkpoint "
              "save disabled; it runs our `pkd` recipe (hard-label CE 0.5, soft CE with weight 0.5·T² — gradient-equal "
              "to T²·KL — and its `pkd` [CLS] loss on the same layer pairs, weighted to equal ours). The `teacher` row "
              "times the teacher's forward pass alone over the same batches. Cached rows' first epoch (own empty cache) "
              "is the build round; the timed rounds read the cache. Peak RSS is the worker's `ru_maxrss` over the whole "
              "run (loading, tokenising, the epoch, final evaluation)."]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- collected sections
def paper_section(reports: list[dict]) -> str:
    """The paper-shaped section of speed.md: one line per run (shape, task, student)."""
    lines = ["## Paper shapes: random BERT-base / RoBERTa-large teachers, fp32", "",
             "Each line is one `speed.py --shape` run (ratios within that run; its own report beside the JSON). "
             f"Bounds: measured / by layer count; end to end = {E2E_EPOCHS} epochs with the cache build.", "",
             "| teacher | task | student | ce epoch (s) | teacher fwd / ce | worst cached ILD × ce | TextBrewer / cached pkd | bound | "
             "e2e live / cached (alp) | bound | targets |", "|---|---|---|---:|---:|---|---:|---|---:|---|---|"]
    for rep in reports:
        s = rep["settings"]
        if rep.get("skipped"):
            lines.append(f"| {s.get('shape')} | {s['task']} | {s['student']} | skipped: {rep['skipped']} |||||||| |")
            continue
        rows, b, e2e = rep["rows"], rep.get("bounds", {}), rep.get("end_to_end", {})
        ild = [(r["ratio_to_ce"], n) for n, r in rows.items() if n in ILD and not r.get("lever") and r["ratio_to_ce"]]
        worst = max(ild) if ild else None
        tb = _med(rows, "textbrewer") / _med(rows, "pkd") if _med(rows, "textbrewer") and _med(rows, "pkd") else None
        met = [t for t in rep["targets"] if t["met"] is not None]
        tally = f"{sum(t['met'] for t in met)}/{len(met)} met" + "".join(
            f"; missed: {t['target'].split(' (')[0]} ({t['value']})" for t in met if not t["met"])
        lines.append(f"| {s.get('shape')} | {s['task']} | {s['student']} | {_f(_med(rows, 'ce'))} | {_f(b.get('teacher_over_student'))} | "
                     f"{f'{worst[0]:.2f} ({worst[1]})' if worst else '—'} | {_f(tb)} | "
                     f"{_f(b.get('measured_epoch'))} / {_f(b.get('layer_epoch'))} | {_f(e2e.get('alp', {}).get('live_over_cached'))} | "
                     f"{_f(b.get('measured_e2e'))} / {_f(b.get('layer_e2e'))} | {tally} |")
    why = [w for rep in reports if not rep.get("skipped") for w in reasons(rep)]
    if why:
        lines += ["", "Where a target was missed, what the run's own rows show (ratios to that run's ce epoch):", ""] + why
    return "\n".join(lines) + "\n"


def reasons(rep: dict) -> list[str]:
    """One generated line per missed target of a run, decomposing it into the run's measured rows."""
    rows, s = rep["rows"], rep["settings"]
    ce, teacher = _med(rows, "ce"), _med(rows, "teacher")
    if not (ce and teacher):
        return []
    head = f"- {s.get('shape')} → {s['student']} ({s['task']}): "
    out = []
    for t in rep.get("targets", []):
        if t["met"] is not False:
            continue
        if "TextBrewer" in t["target"] and _med(rows, "textbrewer") and _med(rows, "pkd"):
            tb, pkd = _med(rows, "textbrewer") / ce, _med(rows, "pkd") / ce
            goal = float(t["target"].split("≥ ")[1].split("×")[0])
            live = _med(rows, "pkd-live")
            txt = (head + f"TextBrewer's live epoch is {tb:.2f}× ce (ce + teacher forward = {1 + teacher / ce:.2f}×)"
                   + (f", our live pkd {live / ce:.2f}×" if live else "") + f"; our cached pkd is {pkd:.3f}× ce")
            if tb / goal < 1:
                txt += (f": {goal}× would need a cached epoch faster than the student's own ({tb / goal:.3f}× ce), "
                        "so no cache can meet it at this shape and length (the teacher is too cheap here).")
            else:
                txt += (f", and {goal}× would need ≤ {tb / goal:.3f}×: the per-step pkd loss and cache read cost "
                        f"{100 * (pkd - 1):.1f} % of a student step.")
            out.append(txt)
        elif t["target"].startswith("end to end"):
            name = t["target"].split(") ")[1].split(":")[0]
            e = (rep.get("end_to_end") or {}).get(name)
            if not e:
                continue
            live, cached = _med(rows, f"{name}-live"), _med(rows, name)
            out.append(head + f"end to end {name}: cached epoch {cached / ce:.3f}× ce and a cache build of "
                       f"{e['build_s'] / teacher:.2f} teacher forwards per epoch of rows, against a live epoch of "
                       f"{live / ce:.2f}× ce (ce + teacher forward: {1 + teacher / ce:.2f}×); the measured bound "
                       "assumes 1.00× and 1.00.")
    return out


def merge_section(md_path: Path, name: str, text: str) -> None:
    """Put ``text`` between ``<!-- name:begin -->`` and ``<!-- name:end -->`` in ``md_path`` (appended
    at the end the first time); the rest of the file is left as it is."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    old = md_path.read_text() if md_path.exists() else ""
    block = f"{begin}\n{text.rstrip()}\n{end}"
    if begin in old and end in old:
        new = old[: old.index(begin)] + block + old[old.index(end) + len(end):]
    else:
        new = old.rstrip() + ("\n\n" if old else "") + block + "\n"
    tmp = md_path.with_suffix(md_path.suffix + ".tmp")
    tmp.write_text(new)
    tmp.replace(md_path)


def _reports(paths: list[str]) -> list[dict]:
    files = []
    for p in map(Path, paths):
        files += sorted(p.glob("*.json")) if p.is_dir() else [p]
    return [json.loads(f.read_text()) for f in files]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--paper", nargs="*", default=[], help="speed.py --shape reports (JSON files or folders of them)")
    p.add_argument("--levers", default=None, help="benchmarks/levers.py's JSON report")
    p.add_argument("--into", required=True, help="the Markdown file the sections are written into (speed.md)")
    args = p.parse_args(argv)
    into = Path(args.into)
    if args.paper:
        merge_section(into, "paper-shapes", paper_section(_reports(args.paper)))
    if args.levers:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from levers import levers_section  # noqa: PLC0415

        merge_section(into, "levers", levers_section(json.loads(Path(args.levers).read_text())))
    print(f"wrote {into}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Student-side throughput levers (issue 22 point 2): what each buys in speed and costs in quality.

Levers (``benchmarks/speed_rows.py``): ``bf16`` (autocast on the CPU, ``train.precision: bf16``),
``foreach`` / ``fused`` / ``forloop`` (torch's AdamW implementation, ``train.optimizer_impl``; on the
CPU torch's default is the for-loop) and ``frozen-emb`` (the student's word-embedding matrix
frozen: no dense 30k × d gradient, no Adam update over it).

**Quality and speed.** The 2-layer student (``--student``, default ``bottom:2`` of the teacher)
is trained with each ``--methods`` recipe without and with each lever on a fixed subsample
(default SST-2, 2,000 rows, 2 epochs) at each seed (default 1, 2, 3): every run a fresh worker
process (``speed_workers.worker_layerkd``, the real ``distill``), rounds by seed, the runs of a
round in an order rotated by the seed. Reported per (method, lever): the median epoch time over
all runs and epochs and its ratio to the baseline's, the dev metric of the last epoch (mean over
seeds) and its change against the baseline *at the same seed* (mean, min, max). A lever's quality
cost is called *nil* when the mean change is no larger than the baseline's own spread across seeds
(its standard deviation); layerkd keeps a lever as its default only then, or when the user asks
(``--precision bf16``, ``--var train.optimizer_impl=fused``). Defaults are not changed by this
script. Cached recipes read a teacher cache built once beforehand (not timed).

**Profiler** (``--profile``): ``torch.profiler`` over a few training steps of the student alone (ce;
forward, backward and AdamW labelled), the top operators by self CPU time and the parameter
count of the embedding matrix vs the blocks — what dominates a 2-layer student's step.

``--smoke``: tiny random shapes, toy data, one seed, 2 steps, in-process (``tests/test_speed_smoke.py``).

To run (after the SST-2 teacher of speed.md's notes exists; writes levers.json/.md)::

    python benchmarks/levers.py --teacher ../layerkd-work/teachers/sst-2-speed --data-dir ../shared/data/glue \\
        --task sst-2 --subsample 2000 --epochs 2 --seeds 1,2,3 --methods ce,alp \\
        --levers bf16,foreach,fused,frozen-emb --profile --threads 2 --out benchmarks/results/levers
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed_rows import LEVERS, parse_row  # noqa: E402
from speed_workers import worker_main as speed_worker  # noqa: E402
from timing import fmt, machine, run_worker, set_threads, versions, write_report  # noqa: E402


def worker_profile(spec: dict) -> dict:
    """torch.profiler over ``steps`` ce steps of the student (after 2 warm-up steps)."""
    import torch  # noqa: PLC0415
    from speed_workers import _splits  # noqa: PLC0415
    from torch.profiler import ProfilerActivity, profile, record_function  # noqa: PLC0415

    from layerkd.config import TrainConfig  # noqa: PLC0415
    from layerkd.data.batching import LengthGroupedBatchSampler  # noqa: PLC0415
    from layerkd.data.encoding import EncodedSplit  # noqa: PLC0415
    from layerkd.models.load import build_student, load_model  # noqa: PLC0415
    from layerkd.optim import build_adamw  # noqa: PLC0415
    from layerkd.tasks import task_from_config  # noqa: PLC0415

    a = spec["args"]
    task = task_from_config(a["task"])
    train, _ = _splits(a, task)
    teacher = load_model(a["teacher"], task, require_head=True)
    torch.manual_seed(a["seed"])
    student = build_student(a["student"], teacher, task)
    data = EncodedSplit(train, {"student": student.text_encoder}, a["max_length"])
    batches = LengthGroupedBatchSampler(data.lengths, a["batch_size"], seed=a["seed"], shuffle=True).batches(0)
    opt = build_adamw(student.named_parameters(), TrainConfig(lr=a["lr"]))
    student.train()

    def step(b):
        bt = data.batch(b)
        with record_function("forward"):
            logits = student(bt.inputs["student"]).logits
            loss = (torch.nn.functional.mse_loss(logits.view(-1), bt.labels.float().view(-1)) if task.is_regression
                    else torch.nn.functional.cross_entropy(logits, bt.labels))  # the ce objective's loss
        with record_function("backward"):
            loss.backward()
        with record_function("optimizer (AdamW)"):
            opt.step()
            opt.zero_grad(set_to_none=True)

    for b in batches[:2]:
        step(b)
    n = min(a["profile_steps"], max(1, len(batches) - 2))
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for b in batches[2:2 + n]:
            step(b)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) or 1
    labels = ("forward", "backward", "optimizer (AdamW)")
    top = sorted((e for e in events if e.key not in labels), key=lambda e: e.self_cpu_time_total, reverse=True)[:15]
    phases = {e.key: round(e.cpu_time_total / n / 1000, 2) for e in events if e.key in labels}
    emb = student.hf.get_input_embeddings().weight.numel()
    params = sum(p.numel() for p in student.parameters())
    return {"steps": n, "ms_per_step": phases,
            "top_ops": [{"op": e.key, "self_ms_per_step": round(e.self_cpu_time_total / n / 1000, 2),
                         "share": round(e.self_cpu_time_total / total, 3), "calls_per_step": round(e.count / n, 1)} for e in top],
            "params": {"total": params, "word_embeddings": emb, "share_word_embeddings": round(emb / params, 3)}}


def worker_main(spec: dict | str) -> dict:
    spec = spec if isinstance(spec, dict) else json.loads(Path(spec).read_text())
    if spec["kind"] != "profile":
        return speed_worker(spec)
    set_threads(spec["args"].get("threads"))
    res = worker_profile(spec)
    if spec.get("result"):
        Path(spec["result"]).write_text(json.dumps(res, indent=1))
    return res


def _runs(args) -> list[tuple[str, str | None]]:
    levers = [x for x in args.levers.split(",") if x]
    for lv in levers:
        if lv not in LEVERS:
            raise SystemExit(f"error: --levers: unknown lever {lv!r}; expected some of: {', '.join(LEVERS)}")
    return [(m, lv) for m in args.methods.split(",") if m for lv in [None, *levers]]


def orchestrate(args) -> dict:
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="layerkd-levers-"))
    work.mkdir(parents=True, exist_ok=True)
    say = (lambda m: print(m, flush=True)) if not args.quiet else (lambda m: None)
    seeds = [int(s) for s in args.seeds.split(",") if s]
    common = {k: getattr(args, k) for k in ("task", "subsample", "batch_size", "max_length", "lr", "precision", "student",
                                            "threads", "epochs")}
    common.update(teacher=str(Path(args.teacher).resolve()), data_dir=str(Path(args.data_dir).resolve()), steps=args.steps,
                  profile_steps=args.profile_steps)

    def call(spec, name):
        if args.smoke:
            t0 = time.time()
            return {**worker_main(spec), "wall_seconds": round(time.time() - t0, 1)}
        return run_worker(__file__, spec, work, name)

    def spec(method, lever, seed, steps=None):
        row = parse_row(f"{method}@{lever}" if lever else method)
        name = f"{method}{'@' + lever if lever else ''}-s{seed}"
        return {**row, "args": {**common, "seed": seed, **({"steps": steps} if steps else {})},
                "cache_dir": str(work / "cache"), "output_dir": str(work / f"run-{name}")}, name

    runs = _runs(args)
    built = set()
    for method, lever in runs:  # teacher caches built once, not timed (bf16 may key its own entries)
        key = (method, LEVERS.get(lever, {}).get("precision"))
        if parse_row(method)["cache"] and key not in built:
            built.add(key)
            s, name = spec(method, lever, seeds[0], steps=1)
            say(f"building the teacher cache for {method}{' @' + lever if lever else ''}")
            call({**s, "output_dir": str(work / f"build-{name}")}, f"build-{name}")
    results = {f"{m}{'@' + lv if lv else ''}": {"method": m, "lever": lv, "runs": {}} for m, lv in runs}
    for i, seed in enumerate(seeds):
        order = runs[i % len(runs):] + runs[: i % len(runs)]
        for method, lever in order:
            s, name = spec(method, lever, seed)
            res = call(s, name)
            shutil.rmtree(s["output_dir"], ignore_errors=True)
            key = f"{method}{'@' + lever if lever else ''}"
            results[key]["runs"][str(seed)] = {"epochs": [e["seconds"] for e in res["epochs"]], "dev": res.get("dev")}
            say(f"  seed {seed} {key:22s} epochs {', '.join(f'{x:.1f}' for x in results[key]['runs'][str(seed)]['epochs'])} s  "
                f"dev {res.get('dev')}")
    profile = None
    if args.profile:
        say("profiler pass (student alone, ce)")
        profile = call({"kind": "profile", "args": {**common, "seed": seeds[0]}}, "profile")
    summarise(results, args.metric)
    rep = {"benchmark": "layerkd student-side levers (issue 22 point 2)",
           "command": " ".join([Path(sys.executable).name, *sys.argv]), "settings": {**common, "seeds": seeds,
           "smoke": args.smoke}, "machine": machine(), "versions": versions(), "rows": results, "profile": profile}
    if not args.work_dir:
        shutil.rmtree(work, ignore_errors=True)
    return rep


def summarise(results: dict, metric: str | None) -> None:
    """Median epoch time, metric mean and the per-seed change against the same method's baseline."""
    for r in results.values():
        secs = [x for run in r["runs"].values() for x in run["epochs"]]
        r["median_epoch_seconds"] = round(statistics.median(secs), 3) if secs else None
        devs = {s: run["dev"] for s, run in r["runs"].items() if run.get("dev")}
        r["metric"] = metric or (next(iter(next(iter(devs.values())))) if devs else None)
        r["scores"] = {s: d.get(r["metric"]) for s, d in devs.items()}
        vals = [v for v in r["scores"].values() if v is not None]
        r["mean"] = statistics.mean(vals) if vals else None
        r["std"] = statistics.stdev(vals) if len(vals) > 1 else None
    for r in results.values():
        base = results[r["method"]]
        if r["lever"] is None:
            continue
        r["speedup"] = round(base["median_epoch_seconds"] / r["median_epoch_seconds"], 3) if r["median_epoch_seconds"] else None
        deltas = [r["scores"][s] - base["scores"][s] for s in r["scores"] if base["scores"].get(s) is not None
                  and r["scores"][s] is not None]
        r["deltas"] = deltas
        r["mean_delta"] = statistics.mean(deltas) if deltas else None
        noise = base["std"]
        r["quality_cost"] = (None if r["mean_delta"] is None or noise is None else
                             "nil" if abs(r["mean_delta"]) <= noise or r["mean_delta"] >= 0 else "costs")


def levers_section(rep: dict) -> str:
    """The levers table (levers.md, and the section speed_report.py merges into speed.md)."""
    s = rep["settings"]
    lines = ["## Student-side levers: speed and quality" + (" (smoke run)" if s.get("smoke") else ""), "",
             f"Command: `{rep['command']}`  ",
             f"Task {s['task']} (train subsample {s['subsample']}), student `{s['student']}`, {s['epochs']} epochs, batch "
             f"{s['batch_size']}, max length {s['max_length']}, seeds {s['seeds']}; each run a fresh worker, rounds by seed.", "",
             "| method | lever | median epoch (s) | speed-up | dev (mean over seeds) | Δ vs no lever, same seed (mean; min … max) | quality cost |",
             "|---|---|---:|---:|---:|---|---|"]
    for r in rep["rows"].values():
        d = r.get("deltas") or []
        delta = f"{100 * r['mean_delta']:+.2f} pt ({100 * min(d):+.2f} … {100 * max(d):+.2f})" if d else "—"
        mean = f"{r['metric']} {100 * r['mean']:.2f}" if r.get("mean") is not None else "—"
        lines.append(f"| {r['method']} | {r['lever'] or '(none: fp32, default AdamW)'} | {fmt(r['median_epoch_seconds'])} | "
                     f"{fmt(r.get('speedup'), 2) if r['lever'] else '1.00'} | {mean} | {delta if r['lever'] else '—'} | "
                     f"{r.get('quality_cost') or '—'} |")
    lines += ["", "Quality cost *nil*: the mean change is no larger than the baseline's standard deviation across seeds "
              "(or positive). layerkd's defaults stay fp32 and torch's AdamW default; a lever is a user's choice "
              "(`--precision bf16`, `--var train.optimizer_impl=fused`); `frozen-emb` is measured here only."]
    prof = rep.get("profile")
    if prof:
        lines += ["", f"Profiler (`torch.profiler`, {prof['steps']} ce steps of the student): ms per step "
                  + ", ".join(f"{k} {v}" for k, v in prof["ms_per_step"].items())
                  + f"; word embeddings {prof['params']['word_embeddings']:,} of {prof['params']['total']:,} parameters "
                  f"({100 * prof['params']['share_word_embeddings']:.0f} %).", "",
                  "| operator | self ms / step | share | calls / step |", "|---|---:|---:|---:|"]
        lines += [f"| `{o['op']}` | {o['self_ms_per_step']} | {100 * o['share']:.1f} % | {o['calls_per_step']} |"
                  for o in prof["top_ops"]]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--teacher")
    p.add_argument("--data-dir")
    p.add_argument("--task", default="sst-2")
    p.add_argument("--subsample", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--steps", type=int, default=None, help="cap each run at this many steps (smoke)")
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--methods", default="ce,alp")
    p.add_argument("--levers", default="bf16,foreach,fused,frozen-emb")
    p.add_argument("--metric", default=None, help="dev metric (default: the task's first)")
    p.add_argument("--student", default="bottom:2")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--precision", default="fp32", choices=["fp32"], help="the baseline (bf16 is a lever)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--profile", action="store_true", help="add the torch.profiler pass")
    p.add_argument("--profile-steps", type=int, default=5)
    p.add_argument("--smoke", action="store_true", help="tiny random shapes, toy data, 2 steps, in-process")
    p.add_argument("--out", default="benchmarks/results/levers", help="writes <out>.json and <out>.md")
    p.add_argument("--work-dir", default=None)
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    if args.worker:
        worker_main(args.worker)
        return
    tmp = None
    if args.smoke:
        from speed import smoke_data  # noqa: PLC0415
        from speed_rows import build_teacher  # noqa: PLC0415

        tmp = Path(tempfile.mkdtemp(prefix="layerkd-levers-smoke-"))
        args.data_dir, args.task = str(smoke_data(tmp / "glue")), "sst-2"
        args.teacher = str(build_teacher(tmp / "teacher", "tiny", None))
        args.subsample, args.steps, args.epochs, args.batch_size, args.max_length = 64, 2, 1, 16, 32
        args.seeds, args.profile_steps, args.threads, args.work_dir = "1,2", 2, args.threads or 1, str(tmp / "work")
    if not args.teacher or not args.data_dir:
        p.error("--teacher and --data-dir are required")
    try:
        rep = orchestrate(args)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    write_report(args.out, rep, levers_section(rep))


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Speed benchmark (issues 5 and 22): what does a distillation epoch cost next to training the student alone?

Rows, levers and shapes: see ``benchmarks/speed_rows.py`` (``--rows`` selects; default: ``ce``, the
cached methods ``kd pkd alp rail universal universal+rail``, each again ``-live``, ``internal``,
``textbrewer`` and ``teacher`` — the teacher's forward pass alone; ``--levers`` adds the
student-side lever rows, reported in their own table). Workers: ``benchmarks/speed_workers.py``.
Reports, bounds and targets: ``benchmarks/speed_report.py``.

How it measures. Every measurement is one epoch (or ``--steps`` steps) in a **fresh worker
process** that builds the row with the layerkd Python API (``layerkd.stages.distill.distill``:
the real Trainer, the real teacher provider); the epoch's time is read from the run's
``log.jsonl`` (from the ``epoch_start`` record to the epoch's last ``train`` record: the steps —
batching, teacher or cache, student forward/backward, optimiser — but not the end-of-epoch
evaluation or checkpoint, which TextBrewer's row does not time either). All rows use the same
seed, so the same length-grouped batches, the same student init, batch size, max length and
number of steps. Rows are interleaved: round r runs every row once, in an order rotated by r, so
a drift in machine load hits all rows alike; the table reports the median over rounds and the
ratio to the ``ce`` row's median. No training rows are held out for model selection
(``data.validation.source: eval``): the timing never sees that choice.

Cached rows first run a *build round* with an empty cache directory of their own: that epoch
includes computing the teacher outputs, and is reported separately (with the build's seconds
and the cache's size on disk per 1,000 training examples); the timed rounds then read that
cache, as every later epoch and run would. Peak RSS is the worker process's
``ru_maxrss`` (whole run: loading, tokenising, the epoch, final dev evaluation), max over rounds.

**Paper shapes** (``--shape bert-base`` or ``roberta-large``): a randomly initialised teacher of
that shape is built first (not timed; MiniLM's WordPiece vocabulary, ``--vocab``), the student is
``--student`` (``bottom:2/4/6``; for RoBERTa-large the DistilRoBERTa shape is the default), and
before anything runs a memory/time estimate is printed; a run that does not fit the memory or
``--time-budget-h`` is skipped with the reason written to its report (exit 0). The report adds
the bounds, the end-to-end ratios of a 4-epoch run including the cache build and issue 22's
targets (``speed_report.py``). ``--smoke``: tiny random shapes, toy data, 3 steps, every worker
in-process (``tests/test_speed_smoke.py``).

Example, the MiniLM setting recorded in benchmarks/results/speed.md::

    python benchmarks/speed.py --teacher ../layerkd-work/teachers/sst-2 --data-dir ../shared/data/glue \\
        --task sst-2 --subsample 8000 --batch-size 32 --max-length 64 --repeats 3

Paper-shaped runs (one per task × student; the full list and the collecting step are under
"To run" in benchmarks/results/speed.md)::

    python benchmarks/speed.py --shape bert-base --student bottom:4 --data-dir ../shared/data/glue --task mrpc \\
        --subsample 320 --steps 10 --batch-size 32 --max-length 128 --repeats 3 --threads 2 --levers \\
        --out benchmarks/results/speed-paper/bert-base-mrpc-bottom4
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

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/timing.py, also when loaded by a test
import speed_report  # noqa: E402
from speed_rows import (  # noqa: E402
    ALL_ROWS,
    LEVER_ROWS,
    SHAPES,
    build_teacher,
    estimate,
    parse_row,
    probe_gflops,
    student_shape,
)
from speed_workers import worker_main  # noqa: E402
from timing import machine as _machine  # noqa: E402
from timing import run_worker, versions, write_report  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VOCAB = REPO.parent / "shared" / "models" / "all-MiniLM-L6-v2" / "vocab.txt"
row_spec = parse_row  # the name earlier callers used
markdown = speed_report.markdown


def _versions() -> dict:
    return versions(("layerkd", "torch", "transformers", "accelerate", "numpy", "textbrewer"))


def _cache_size(cache_dir: Path, rows: int) -> dict:
    total, fields = 0, {}
    for meta_path in sorted((cache_dir / "teacher").glob("*/meta.json")):
        meta = json.loads(meta_path.read_text())
        if meta.get("rows") != rows or meta.get("split") not in (None, "train"):
            continue  # dev entries built for the end-of-run diagnostics
        size = sum(f.stat().st_size for f in meta_path.parent.iterdir() if f.is_file())
        total += size
        name = meta["field"] + (f":{meta['pooling']}" if meta.get("pooling") else "")
        fields[name] = round(size / rows * 1000 / 1e6, 4)
    return {"bytes": total, "mb_per_1000": round(total / rows * 1000 / 1e6, 4) if rows else None, "per_field_mb_per_1000": fields}


def smoke_data(out: Path) -> Path:
    """Toy rows in the GLUE layout: SST-2 (sentences) and MRPC (sentence pairs)."""
    from layerkd import toy  # noqa: PLC0415

    train, dev = toy.write_sentiment_data(out / "toy", n_train=96, n_dev=32, seed=0)
    (out / "SST-2").mkdir(parents=True, exist_ok=True)
    for src, name in ((train, "train.tsv"), (dev, "dev.tsv")):
        (out / "SST-2" / name).write_text(Path(src).read_text())
    (out / "MRPC").mkdir(parents=True, exist_ok=True)
    for name, n, seed in (("train.tsv", 96, 0), ("dev.tsv", 32, 1)):
        rows = ["Quality\t#1 ID\t#2 ID\t#1 String\t#2 String"]
        rows += [f"{y}\t{i}\t{i + 1}\t{a}\t{b}" for i, (a, b, y) in enumerate(toy.pair_examples(n, seed))]
        (out / "MRPC" / name).write_text("\n".join(rows) + "\n")
    return out


def _tokens_per_row(args: argparse.Namespace) -> int:
    """The padded length a length-grouped batch has on average: the training rows' mean token count
    (WordPiece, truncated at --max-length) plus 15 % padding; --max-length when it cannot tell."""
    from layerkd.config import DataConfig, ValidationConfig  # noqa: PLC0415
    from layerkd.stages.common import load_data  # noqa: PLC0415
    from layerkd.tasks import task_from_config  # noqa: PLC0415

    if args.smoke or not Path(args.vocab).is_file():
        return args.max_length
    from transformers import BertTokenizer  # noqa: PLC0415

    tok = BertTokenizer(str(args.vocab), do_lower_case=True)
    train = load_data(DataConfig(data_dir=args.data_dir, train_subsample=args.subsample,
                                 validation=ValidationConfig(source="eval")), task_from_config(args.task)).train
    texts = [(ex.text_a, ex.text_b) for ex in train.examples[:2000]]
    lens = [min(len(tok(a, b)["input_ids"]) if b else len(tok(a)["input_ids"]), args.max_length) for a, b in texts]
    return min(args.max_length, round(1.15 * sum(lens) / max(1, len(lens))))


def plan_shape(args: argparse.Namespace, work: Path, rows: list[str], say) -> str | None:
    """Build the random teacher of ``--shape`` and print the estimate; the reason to skip, if any."""
    shape = SHAPES[args.shape]
    if not args.student:
        args.student = next(iter(shape["students"].values())) if args.shape != "bert-base" else "bottom:4"
    st = student_shape(args.student, shape)
    args._dims = {"teacher": {k: shape[k] for k in ("layers", "hidden", "intermediate", "heads")}, "student": st,
                  "shape": args.shape}
    from layerkd.models.memory import available_memory  # noqa: PLC0415

    if args.threads:
        import torch  # noqa: PLC0415

        torch.set_num_threads(args.threads)
    length = _tokens_per_row(args)
    est = estimate(shape, st, batch=args.batch_size, length=length, steps=args.steps or 10, rows=rows,
                   rounds=args.repeats, gflops=probe_gflops(0.1 if args.smoke else 0.5), available=available_memory())
    args._estimate = est
    need, avail = est["memory_need_bytes"], est["memory_available_bytes"]
    say(f"estimate for {args.shape} → {args.student} (padded length ~{length}, {est['gflops']} GFLOP/s "
        f"measured): teacher forward {est['teacher_forward_s_per_step']} s/step, student step {est['student_step_s_per_step']} "
        f"s/step; epochs {est['total_epochs_s'] / 60:.1f} min in all (+ loading and end-of-run evaluation, often as much "
        f"again); memory per worker ~{need / 2**30:.1f} GiB of {(avail or 0) / 2**30:.1f} GiB available")
    if avail is not None and need > avail:
        return f"does not fit: about {need / 2**30:.1f} GiB needed, {avail / 2**30:.1f} GiB available"
    if args.estimate_only:
        raise SystemExit(0)
    if est["total_epochs_s"] / 3600 > args.time_budget_h:
        return (f"does not fit the time budget: the epochs alone are estimated at {est['total_epochs_s'] / 3600:.1f} h "
                f"> --time-budget-h {args.time_budget_h}")
    vocab = None if args.smoke else Path(args.vocab)
    if vocab is not None and not vocab.is_file():
        raise SystemExit(f"error: --vocab {vocab}: no such WordPiece vocabulary file (MiniLM's vocab.txt in ../shared)")
    args.teacher = str(build_teacher(work / f"teacher-{args.shape}", args.shape, vocab))
    return None


def orchestrate(args: argparse.Namespace) -> dict:
    rows = [r.strip() for r in args.rows.split(",") if r.strip()] if args.rows else list(ALL_ROWS)
    if args.levers:
        rows += [r for r in LEVER_ROWS if r not in rows]
    specs = {r: parse_row(r) for r in rows}
    if "textbrewer" in rows:
        try:
            import textbrewer  # noqa: F401,PLC0415
        except ImportError:
            raise SystemExit("the textbrewer row needs TextBrewer: pip install 'layerkd[bench]' (or drop it from --rows)") from None
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="layerkd-speed-"))
    work.mkdir(parents=True, exist_ok=True)
    say = (lambda m: print(m, flush=True)) if not args.quiet else (lambda m: None)
    say(f"work directory: {work}")
    skipped = plan_shape(args, work, rows, say) if args.shape else None
    common = {k: getattr(args, k) for k in ("teacher", "data_dir", "task", "subsample", "steps", "batch_size",
                                            "max_length", "seed", "lr", "precision", "student", "threads")}
    common["teacher"] = str(Path(args.teacher).resolve()) if args.teacher else None
    common["data_dir"] = str(Path(args.data_dir).resolve())
    settings = {**common, "repeats": args.repeats, "rows": rows, "shape": args.shape, "smoke": args.smoke,
                "dims": getattr(args, "_dims", None), "estimate": getattr(args, "_estimate", None)}
    head = {"benchmark": "layerkd speed (issues 5 and 22)", "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "machine": _machine(), "versions": _versions(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(args._t0))}
    if skipped:
        say(f"skipped: {skipped}")
        return {**head, "settings": settings, "skipped": skipped, "rows": {}, "targets": [], "wall_seconds": 0.0}

    def _run_worker(spec: dict, name: str) -> dict:
        if not args.smoke:
            return run_worker(__file__, spec, work, name)
        t0 = time.time()  # --smoke: in-process (the code path, not a measurement)
        return {**worker_main(spec), "wall_seconds": round(time.time() - t0, 1)}

    heads_dir = None
    if any("universal" in specs[r]["method"] for r in rows):
        heads_dir = str(work / "heads")
        say("preparing: fitting the teacher's pseudo classifiers once (not timed)")
        _run_worker({"kind": "heads", "args": common, "cache_dir": str(work / "cache-prepare"),
                     "output_dir": str(work / "heads-run"), "heads": heads_dir}, "prepare-heads")

    def spec_for(row: str, rnd: int) -> dict:
        s = specs[row]
        return {**s, "args": common, "cache_dir": str(work / f"cache-{row}"), "output_dir": str(work / f"run-{row}-r{rnd}"),
                "heads": heads_dir if "universal" in s["method"] else None}

    results: dict[str, dict] = {r: {"row": r, **specs[r], "rounds": []} for r in rows}

    def run(row: str, rnd: int) -> dict:
        spec = spec_for(row, rnd)
        res = _run_worker(spec, f"{row}-r{rnd}")
        shutil.rmtree(spec["output_dir"], ignore_errors=True)  # the trained student: not needed
        secs = [e["seconds"] for e in res["epochs"]]
        say(f"  round {rnd}  {row:20s} epoch {', '.join(f'{s:.2f}' for s in secs)} s  "
            f"({res['epochs'][0]['steps'] if res['epochs'] else '?'} steps, peak RSS {res['peak_rss_mb']:.0f} MB, "
            f"worker {res['wall_seconds']:.0f} s)")
        return res

    build_rows = [r for r in rows if specs[r]["kind"] == "layerkd" and specs[r]["cache"] and specs[r]["method"] != "internal-all"]
    if build_rows:
        say(f"build round (empty caches): {', '.join(build_rows)}")
        for row in build_rows:
            shutil.rmtree(work / f"cache-{row}", ignore_errors=True)
            res = run(row, 0)
            train_dec = [d for d in res["teacher_source"] if d.get("split") == "train" and d.get("mode") == "cache"]
            results[row]["first_epoch_seconds"] = res["epochs"][0]["seconds"] if res["epochs"] else None
            results[row]["cache_build_seconds"] = round(sum(d.get("seconds", 0.0) for d in train_dec), 3)
            results[row]["cache_entries_built"] = sum(len(d.get("built", [])) for d in train_dec)
            results[row]["cache_size"] = _cache_size(work / f"cache-{row}", res["train_rows"])
            results[row]["build_round"] = res
    for rnd in range(1, args.repeats + 1):
        order = rows[(rnd - 1) % len(rows):] + rows[: (rnd - 1) % len(rows)]
        say(f"round {rnd}/{args.repeats}: {', '.join(order)}")
        for row in order:
            results[row]["rounds"].append(run(row, rnd))

    for row, r in results.items():
        secs = [e["seconds"] for res in r["rounds"] for e in res["epochs"]]
        r["epoch_seconds"] = [round(s, 3) for s in secs]
        r["median_epoch_seconds"] = round(statistics.median(secs), 3) if secs else None
        r["steps_per_epoch"] = r["rounds"][0]["epochs"][0]["steps"] if r["rounds"] and r["rounds"][0]["epochs"] else None
        r["peak_rss_mb"] = max([res["peak_rss_mb"] for res in r["rounds"]] + [r.get("build_round", {}).get("peak_rss_mb", 0)])
        if row == "textbrewer" and r["rounds"]:
            r["textbrewer_version"] = r["rounds"][0]["textbrewer"]
            r["layer_pairs"] = r["rounds"][0]["layer_pairs"]
        if r["rounds"]:
            src = r["rounds"][-1].get("teacher_source") or []
            r["teacher_source_modes"] = sorted({d["mode"] for d in src if d.get("split") == "train"})
            if r["rounds"][-1].get("frozen_embeddings"):
                r["frozen_embeddings"] = r["rounds"][-1]["frozen_embeddings"]
    base = results.get("ce", {}).get("median_epoch_seconds")
    for r in results.values():
        med = r["median_epoch_seconds"]
        r["ratio_to_ce"] = round(med / base, 3) if base and med else None
    steps = {r["steps_per_epoch"] for r in results.values() if r["steps_per_epoch"] is not None}
    threads = {res.get("torch_threads") for r in results.values() for res in r["rounds"]}
    settings.update(steps_per_epoch=sorted(steps), worker_torch_threads=sorted(t for t in threads if t is not None),
                    timing="median over rounds of one epoch each, fresh worker process per measurement, interleaved"
                    + (" (smoke: in-process, not a measurement)" if args.smoke else ""))
    report = {**head, "settings": settings, "wall_seconds": round(time.time() - args._t0, 1), "rows": results}
    report["bounds"] = speed_report.bounds(report)
    report["end_to_end"] = speed_report.end_to_end(report)
    report["targets"] = speed_report.targets(report)
    if not args.keep_work and not args.work_dir:
        shutil.rmtree(work, ignore_errors=True)
    return report


def smoke_args(args: argparse.Namespace, work: Path) -> None:
    """--smoke: tiny random shapes on toy data, a few steps, every worker in-process."""
    args.shape = args.shape if args.shape in ("tiny", "tiny-roberta") else "tiny"
    args.data_dir = str(smoke_data(work / "glue"))
    args.task = args.task if args.task in ("sst-2", "mrpc") else "mrpc"
    args.subsample, args.steps, args.repeats, args.batch_size, args.max_length = 64, 3, 1, 16, 32
    args.threads = args.threads or 1
    args.work_dir = str(work / "speed-work")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--teacher", help="fine-tuned teacher directory (e.g. the fine-tuned MiniLM-L6); not with --shape")
    p.add_argument("--shape", choices=sorted(SHAPES), default=None,
                   help="a randomly initialised teacher of the papers' shape instead of --teacher (speed_rows.py)")
    p.add_argument("--vocab", default=str(DEFAULT_VOCAB), help="WordPiece vocabulary of the --shape teacher")
    p.add_argument("--estimate-only", action="store_true", help="--shape: print the memory/time estimate and stop")
    p.add_argument("--time-budget-h", type=float, default=10.0, help="--shape: skip when the estimate exceeds this")
    p.add_argument("--data-dir", help="GLUE directory in the classic layout")
    p.add_argument("--task", default="sst-2")
    p.add_argument("--subsample", type=int, default=8000, help="fixed random subset of training rows (seed 0)")
    p.add_argument("--steps", type=int, default=None, help="cap every measured epoch at this many steps (all rows alike)")
    p.add_argument("--repeats", "--epochs", type=int, default=3, dest="repeats",
                   help="timed epochs per row (one per interleaved round, each in a fresh process)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--student", default=None, help="student spec (default: bottom:2; --shape bert-base: bottom:4)")
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads in the workers (default: torch's)")
    p.add_argument("--rows", default=None, help=f"comma-separated rows (default all): {','.join(ALL_ROWS)}")
    p.add_argument("--levers", action="store_true", help=f"add the lever rows: {','.join(LEVER_ROWS)}")
    p.add_argument("--smoke", action="store_true", help="tiny random shapes, toy data, 3 steps, in-process (a test)")
    p.add_argument("--out", default="benchmarks/results/speed", help="writes <out>.json and <out>.md")
    p.add_argument("--work-dir", default=None, help="runs and caches (default: a temporary directory, removed at the end)")
    p.add_argument("--keep-work", action="store_true", help="keep the temporary work directory")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    if args.worker:
        worker_main(args.worker)
        return
    tmp = None
    if args.smoke:
        tmp = Path(tempfile.mkdtemp(prefix="layerkd-speed-smoke-"))
        smoke_args(args, tmp)
    if args.shape and args.teacher:
        p.error("--shape builds its own random teacher; give --shape or --teacher, not both")
    if not (args.teacher or args.shape) or not args.data_dir:
        p.error("--teacher (or --shape) and --data-dir are required")
    args.student = args.student or (None if args.shape else "bottom:2")
    if args.rows and "ce" not in args.rows.split(","):
        print("note: without the ce row there is no floor to compare with; ratios will be empty", file=sys.stderr)
    args._t0 = time.time()
    try:
        rep = orchestrate(args)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    write_report(args.out, rep, markdown(rep))


if __name__ == "__main__":
    main()

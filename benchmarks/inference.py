#!/usr/bin/env python
"""Inference benchmark (issue 22 point 3): how much faster does the student answer than the teacher?

For every ``--model NAME=RUN_DIR`` (a ``layerkd finetune``/``distill`` output directory: the
teacher, 2- and 3-layer transformer students, BiLSTM, CNN …) and every backend:

* **latency at batch 1** — one dev example per call, in dataset order, p50 and p95 over
  ``--latency-calls`` calls (milliseconds), after ``--warmup`` untimed calls;
* **throughput at batch 32** — ``--throughput-batches`` consecutive batches of 32 dev examples,
  each padded to its longest row (examples per second);

backends: ``torch`` (fp32, ``torch.inference_mode``) and, when ``layerkd export`` exists, ONNX
Runtime on the exported ``model.onnx`` (``onnx-fp32``) and its dynamic int8 quantisation
(``onnx-int8``), exported once per model before timing (``layerkd export RUN_DIR --format onnx
--quantize int8``). Where the command is missing the ONNX rows are left out with a note.

Next to each row: its dev metric, read from ``RUN_DIR/metrics.json`` (the run's recorded best,
main metric named by ``results.json``), and its size on disk (the weight files a deployment ships:
``*.safetensors``/``*.bin``/``*.pt`` for torch, the ``.onnx`` file for ONNX).

How it measures. Each (model, backend) measurement runs in a **fresh worker process**
(``benchmarks/timing.py``, as ``speed.py`` does), which loads the model, tokenises the dev rows
at ``--max-length`` and times batch 1 then batch 32; ``--repeats`` rounds are interleaved (round r
runs every measurement once, in an order rotated by r) and the table gives the median over rounds.
Every worker uses ``--threads`` intra-op threads (torch and ONNX Runtime alike). Inputs are the
same token ids for every backend.

The recorded table (do not run it on a shared, busy machine: the numbers would measure the load)::

    python benchmarks/inference.py --task mrpc --data-dir ../shared/data/glue --max-length 128 \\
        --threads 1 --repeats 3 \\
        --model teacher=../layerkd-work/teachers-v2/mrpc \\
        --model L2=RUNS/mrpc-L2-alp --model L3=RUNS/mrpc-L3-alp \\
        --model bilstm=RUNS/mrpc-bilstm-kd --model cnn=RUNS/mrpc-cnn-kd \\
        --out benchmarks/results/inference

(``RUNS/…``: student run directories kept with ``layerkd bench --keep-runs`` or trained with
``layerkd distill``; the cross-arch suite's students are ``bilstm:layers=2,hidden=300`` and
``cnn:layers=4,channels=256,kernels=3-5``.) ``--smoke`` builds tiny random models of each kind on
toy data and measures a few calls, in this process (the test; seconds, numbers meaningless; one
model, L2, also through ONNX when ``layerkd export`` exists).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/timing.py, also when loaded by a test
from timing import fmt, machine, peak_rss_mb, run_worker, set_threads, versions, write_report  # noqa: E402

BACKENDS = ("torch", "onnx-fp32", "onnx-int8")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")


# =============================================================================== the worker side


def _dev_split(spec: dict, model):
    from layerkd.data.encoding import EncodedSplit  # noqa: PLC0415
    from layerkd.data.readers import read_file, read_split  # noqa: PLC0415
    from layerkd.tasks import task_from_config  # noqa: PLC0415

    task = task_from_config(spec["task"])
    d = spec["data"]
    rows = read_file(task, d["file"], None, split="dev") if d.get("file") else read_split(task, d["split"], data_dir=d["data_dir"])
    return task, EncodedSplit(rows, {"student": model.text_encoder}, spec["max_length"])


def _percentile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def _time_calls(call, batches: list, warmup: int) -> list[float]:
    for b in batches[:warmup]:
        call(b)
    out = []
    for b in batches:
        t0 = time.perf_counter()
        call(b)
        out.append(time.perf_counter() - t0)
    return out


def worker_main(spec_path: str) -> None:
    import numpy as np  # noqa: PLC0415
    import torch  # noqa: PLC0415

    from layerkd.models.load import load_model  # noqa: PLC0415

    spec = json.loads(Path(spec_path).read_text())
    if not spec.get("in_process"):
        set_threads(spec["threads"])
    model = load_model(spec["run_dir"]).eval()
    task, data = _dev_split(spec, model)
    n = len(data)
    single = [data.batch([i % n]).inputs["student"] for i in range(spec["latency_calls"])]
    big = [data.batch([(k * 32 + j) % n for j in range(32)]).inputs["student"] for k in range(spec["throughput_batches"])]
    backend = spec["backend"]
    if backend == "torch":
        def call(inputs):
            with torch.inference_mode():
                return model(inputs).logits
    else:
        import onnxruntime as ort  # noqa: PLC0415

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = spec["threads"] or 0
        opts.inter_op_num_threads = 1
        session = ort.InferenceSession(spec["onnx_file"], opts, providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]

        def call(inputs):
            return session.run(None, {k: inputs[k].numpy().astype(np.int64) for k in names})
    lat = _time_calls(call, single, spec["warmup"])
    thr = _time_calls(call, big, min(spec["warmup"], len(big)))
    result = {"p50_ms": _percentile(lat, 0.5) * 1e3, "p95_ms": _percentile(lat, 0.95) * 1e3,
              "examples_per_s": 32 * len(thr) / sum(thr), "calls": len(lat), "batches": len(thr),
              "params": sum(p.numel() for p in model.parameters()), "dev_rows": n,
              "torch_threads": torch.get_num_threads(), "peak_rss_mb": round(peak_rss_mb(), 1)}
    Path(spec["result"]).write_text(json.dumps(result))


# =============================================================================== the orchestrator


def export_available() -> bool:
    """Whether this layerkd has the ``export`` command (it was built alongside this benchmark)."""
    from layerkd.cli import app  # noqa: PLC0415

    return any((c.name or getattr(c.callback, "__name__", "")) == "export" for c in app.registered_commands)


def run_in_process(script, spec: dict, work: Path, name: str) -> dict:
    """``--smoke``: the worker's code in this process (seconds instead of a process start per row)."""
    spec_path = work / f"{name}.spec.json"
    spec["result"] = str(work / f"{name}.result.json")
    spec_path.write_text(json.dumps(spec))
    t0 = time.time()
    worker_main(str(spec_path))
    return {**json.loads(Path(spec["result"]).read_text()), "wall_seconds": round(time.time() - t0, 1)}


def export_onnx(run_dir: Path, out: Path, verify: list[str], py: str = sys.executable) -> dict[str, Path]:
    """Export once (not timed), verified by ``layerkd export`` on ``verify`` (its data options); the
    fp32 and int8 graphs."""
    cmd = [py, "-m", "layerkd.cli", "export", str(run_dir), "--format", "onnx", "--quantize", "int8", "--output", str(out),
           *verify]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"layerkd export failed for {run_dir} (exit {p.returncode}):\n{(p.stdout + p.stderr)[-2000:]}")
    return {"onnx-fp32": out / "model.onnx", "onnx-int8": out / "model_int8.onnx"}


def recorded_metric(run_dir: Path) -> dict:
    """The run's recorded dev score: metrics.json (best epoch), main metric from results.json."""
    try:
        metrics = json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return {"metric": None, "value": None}
    try:
        main = json.loads((run_dir / "results.json").read_text()).get("main_metric")
    except (OSError, ValueError):
        main = None
    if main is None:
        main = next((k for k, v in metrics.items() if isinstance(v, (int, float)) and not k.endswith("epoch")
                     and k != "best_step"), None)
    return {"metric": main, "value": metrics.get(main), "split": metrics.get("split")}


def graph_metric(export_dir: Path, backend: str, metric: str | None) -> float | None:
    """The exported graph's score in ``export.json`` (verification: ``onnx`` fp32, ``onnx_int8``)."""
    try:
        ver = json.loads((export_dir / "export.json").read_text())["verification"]
    except (OSError, ValueError, KeyError):
        return None
    scores = ver.get("metrics", {}).get("onnx_int8" if backend == "onnx-int8" else "onnx", {})
    return scores.get(metric or ver.get("main_metric"))


def size_mb(paths: list[Path]) -> float:
    return round(sum(p.stat().st_size for p in paths if p.is_file()) / 1e6, 2)


def weight_files(run_dir: Path) -> list[Path]:
    return sorted(p for p in run_dir.iterdir() if p.suffix in WEIGHT_SUFFIXES)


def orchestrate(args: argparse.Namespace, models: dict[str, Path], data: dict, task) -> dict:
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="layerkd-inference-"))
    work.mkdir(parents=True, exist_ok=True)
    say = (lambda m: print(m, flush=True)) if not args.quiet else (lambda m: None)
    notes = ["smoke run: tiny random models on toy data, measured in this process; the numbers mean nothing"] if args.smoke else []
    onnx: dict[str, dict[str, Path]] = {}
    if args.no_onnx:
        notes.append("ONNX rows not measured (--no-onnx)")
    elif not export_available():
        notes.append("ONNX Runtime rows left out: this layerkd has no `layerkd export` command yet")
    else:
        verify = ["--max-length", str(args.max_length)]
        if data.get("data_dir"):
            verify += ["--task", task, "--data-dir", data["data_dir"], "--split", data["split"]]
        for name, run_dir in models.items():
            if args.onnx_models and name not in args.onnx_models:
                continue
            say(f"exporting {name} (not timed)")
            onnx[name] = export_onnx(run_dir, work / f"onnx-{name}", verify)
    cells = [(name, b) for name in models for b in BACKENDS if b == "torch" or name in onnx]
    rows = {f"{name}/{b}": {"model": name, "backend": b, "rounds": []} for name, b in cells}
    common = {"task": task, "data": data, "max_length": args.max_length, "threads": args.threads, "warmup": args.warmup,
              "latency_calls": args.latency_calls, "throughput_batches": args.throughput_batches, "in_process": args.smoke}
    for rnd in range(1, args.repeats + 1):
        k = (rnd - 1) % len(cells)
        for name, b in cells[k:] + cells[:k]:
            spec = {**common, "backend": b, "run_dir": str(models[name]),
                    "onnx_file": str(onnx[name][b]) if b != "torch" else None}
            res = (run_in_process if args.smoke else run_worker)(__file__, spec, work, f"{name}-{b}-r{rnd}")
            say(f"  round {rnd} {name:12s} {b:9s} p50 {res['p50_ms']:.2f} ms  p95 {res['p95_ms']:.2f} ms  "
                f"{res['examples_per_s']:.0f} ex/s")
            rows[f"{name}/{b}"]["rounds"].append(res)
    for r in rows.values():
        rr, run_dir = r["rounds"], models[r["model"]]
        for key in ("p50_ms", "p95_ms", "examples_per_s"):
            r[key] = round(statistics.median(x[key] for x in rr), 3)
        r["params"] = rr[0]["params"]
        r["dev"] = recorded_metric(run_dir)
        r["size_mb"] = size_mb(weight_files(run_dir) if r["backend"] == "torch" else [onnx[r["model"]][r["backend"]]])
        if r["backend"] != "torch":  # the graph's own score on the rows `layerkd export` verified it on
            r["graph_metric"] = graph_metric(onnx[r["model"]][r["backend"]].parent, r["backend"], r["dev"]["metric"])
    teacher = rows.get(f"{args.reference}/torch")
    for r in rows.values():
        r["speedup_p50"] = round(teacher["p50_ms"] / r["p50_ms"], 2) if teacher else None
        r["speedup_throughput"] = round(r["examples_per_s"] / teacher["examples_per_s"], 2) if teacher else None
    report = {"benchmark": "layerkd inference (issue 22)", "command": " ".join([Path(sys.executable).name, *sys.argv]),
              "settings": {**common, "repeats": args.repeats, "reference": args.reference,
                           "models": {n: _rel(p) for n, p in models.items()}},
              "machine": machine(), "versions": versions(("layerkd", "torch", "transformers", "onnx", "onnxruntime", "numpy")),
              "notes": notes, "rows": rows}
    if not args.work_dir:
        import shutil  # noqa: PLC0415

        shutil.rmtree(work, ignore_errors=True)
    return report


def _rel(p: Path) -> str:
    try:
        return str(Path(p).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return Path(p).name  # a results file carries no absolute path of the machine


def markdown(rep: dict) -> str:
    s, v, m = rep["settings"], rep["versions"], rep["machine"]
    lines = ["# Inference benchmark: teacher vs students", "", f"Command: `{rep['command']}`  ",
             f"Task {s['task'] if isinstance(s['task'], str) else s['task'].get('name')}, max length {s['max_length']}, "
             f"{s['threads'] or 'default'} intra-op thread(s), {s['repeats']} interleaved round(s), batch 1: "
             f"{s['latency_calls']} calls after {s['warmup']} warm-up, batch 32: {s['throughput_batches']} batches.  ",
             f"Machine: {m.get('cpu')}, {m.get('logical_cores')} logical cores; load average at start "
             f"{m.get('load_average_at_start')}.  ",
             "Versions: " + ", ".join(f"{k} {v.get(k)}" for k in ("layerkd", "torch", "transformers", "onnx", "onnxruntime",
                                                                 "numpy")) + ".", ""]
    lines += [f"Note: {n}." for n in rep["notes"]] + ([""] if rep["notes"] else [])
    lines += [f"| model | backend | params | size on disk (MB) | dev metric | p50 batch 1 (ms) | p95 batch 1 (ms) | "
              f"× {s['reference']} (p50) | batch 32 (ex/s) | × {s['reference']} (throughput) |",
              "|---|---|---:|---:|---|---:|---:|---:|---:|---:|"]
    for r in rep["rows"].values():
        d = r["dev"]
        dev = f"{d['metric']} {d['value']:.4f}" if d.get("value") is not None else "—"
        if r.get("graph_metric") is not None:
            dev += f" (graph {r['graph_metric']:.4f})"
        lines.append(f"| {r['model']} | {r['backend']} | {r['params'] / 1e6:.2f} M | {fmt(r['size_mb'])} | {dev} | "
                     f"{fmt(r['p50_ms'])} | {fmt(r['p95_ms'])} | {fmt(r['speedup_p50'])} | {fmt(r['examples_per_s'], 0)} | "
                     f"{fmt(r['speedup_throughput'])} |")
    lines += ["", "Each (model, backend) is measured in a fresh worker process per round (benchmarks/timing.py), "
              "the same token ids for every backend; medians over rounds. Dev metric: the run's recorded best "
              "(metrics.json); for ONNX rows, in brackets, the graph's own score on the rows `layerkd export` verified "
              "it on (export.json). Size: the weight files (torch) or the .onnx graph."]
    return "\n".join(lines) + "\n"


def smoke_models(work: Path) -> tuple[dict[str, Path], dict, dict]:
    """Tiny random models of every kind on toy data (the test's setting; numbers are meaningless)."""
    from layerkd import toy  # noqa: PLC0415
    from layerkd.models.load import build_student, load_model  # noqa: PLC0415
    from layerkd.tasks import task_from_config  # noqa: PLC0415

    train, dev = toy.write_sentiment_data(work / "data", n_train=64, n_dev=40, seed=0)
    t_dir = toy.write_tiny_bert(work / "teacher", layers=4, hidden=32, heads=4, intermediate=64)
    cfg = json.loads((t_dir / "config.json").read_text())
    cfg["architectures"] = ["BertForSequenceClassification"]  # a random head, taken as fine-tuned: timing only
    (t_dir / "config.json").write_text(json.dumps(cfg))
    task = task_from_config(toy.TOY_TASK)
    teacher = load_model(str(t_dir), task, require_head=True)
    models = {"teacher": t_dir}
    for name, spec in (("L2", "bottom:2"), ("L3", "bottom:3"), ("bilstm", "bilstm:layers=1,hidden=16"),
                       ("cnn", "cnn:layers=1,channels=16,kernels=3")):
        student = build_student(spec, teacher, task, train_texts=[t for t, _ in toy.sentiment_examples(64, seed=0)])
        student.save_pretrained(work / name)
        models[name] = work / name
    import yaml  # noqa: PLC0415

    for i, d in enumerate(models.values()):
        # what `layerkd export` reads to verify the graph: the run's task and data
        run_cfg = {"task": toy.TOY_TASK, "data": {"train_file": str(train), "dev_file": str(dev)}, "model": str(d),
                   "train": {"max_length": 32}, "output_dir": str(d)}
        (d / "config.yaml").write_text(yaml.safe_dump(run_cfg))
        (d / "metrics.json").write_text(json.dumps({"task": "toy-sentiment", "split": "dev", "accuracy": 0.5 + 0.05 * i}))
        (d / "results.json").write_text(json.dumps({"main_metric": "accuracy"}))
    return models, {"file": str(dev)}, toy.TOY_TASK


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--model", action="append", default=[], metavar="NAME=RUN_DIR", help="a model to measure (repeatable)")
    p.add_argument("--reference", default="teacher", help="the model the speed-ups are relative to (its torch row)")
    p.add_argument("--task", default="mrpc")
    p.add_argument("--data-dir", help="GLUE directory (the rows come from --split)")
    p.add_argument("--split", default="dev")
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--threads", type=int, default=1, help="intra-op threads per worker, torch and ONNX Runtime (0: default)")
    p.add_argument("--repeats", type=int, default=3, help="interleaved rounds, each measurement in a fresh process")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--latency-calls", type=int, default=200)
    p.add_argument("--throughput-batches", type=int, default=20)
    p.add_argument("--no-onnx", action="store_true", help="torch rows only")
    p.add_argument("--onnx-models", nargs="*", default=None, metavar="NAME", help="ONNX rows for these models only")
    p.add_argument("--smoke", action="store_true", help="tiny random models of every kind, toy data, a few calls")
    p.add_argument("--out", default="benchmarks/results/inference", help="writes <out>.json and <out>.md")
    p.add_argument("--work-dir", default=None)
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    if args.worker:
        worker_main(args.worker)
        return
    if args.smoke:
        work = Path(tempfile.mkdtemp(prefix="layerkd-inference-smoke-"))
        models, data, task = smoke_models(work)
        args.max_length, args.repeats, args.warmup, args.latency_calls, args.throughput_batches = 32, 1, 2, 8, 2
        args.onnx_models = args.onnx_models or ["L2"]  # one export: the ONNX path without a minute of exports
    else:
        if not args.model or not args.data_dir:
            p.error("give --model NAME=RUN_DIR (repeatable) and --data-dir, or --smoke")
        models = {}
        for item in args.model:
            name, sep, path = item.partition("=")
            if not sep or not (Path(path) / "config.json").exists() and not list(Path(path).glob("*.safetensors")):
                p.error(f"--model {item!r}: expected NAME=RUN_DIR with a saved model")
            models[name] = Path(path)
        data, task = {"data_dir": args.data_dir, "split": args.split}, args.task
    rep = orchestrate(args, models, data, task)
    write_report(args.out, rep, markdown(rep))


if __name__ == "__main__":
    main()

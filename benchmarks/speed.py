#!/usr/bin/env python
"""Speed benchmark (issue 5): what does a distillation epoch cost next to training the student alone?

Rows (``--rows`` selects; default all):

* ``ce`` — the student's own fine-tuning on gold labels: the floor;
* ``kd pkd alp rail universal universal+alp`` — distillation with the teacher-output cache;
* ``<method>-live`` — the same with ``cache.enabled: false`` (``--no-cache``: teacher run live);
* ``internal`` — internal KD (the ``internal-all`` preset: attention KL + [CLS] cosine on every
  layer), whose attention maps cannot be cached: the teacher runs live by necessity;
* ``textbrewer`` — TextBrewer's ``GeneralDistiller`` doing our ``pkd`` recipe on the same teacher,
  student and batches: 0.5·hard-label CE + 0.5·T²·soft CE (gradient-equal to T²·KL) + its ``pkd``
  loss (L2-normalised [CLS] MSE) on the same layer pairs, weighted to equal ours.

How it measures. Every measurement is one epoch (or ``--steps`` steps) in a **fresh worker
process** that builds the row with the layerkd Python API (``layerkd.stages.distill.distill``:
the real Trainer, the real teacher provider); the epoch's time is read from the run's
``log.jsonl`` (from the ``epoch_start`` record to the epoch's last ``train`` record: the steps —
batching, teacher or cache, student forward/backward, optimiser — but not the end-of-epoch
evaluation or checkpoint, which TextBrewer's row does not time either). All rows use the same
seed, so the same length-grouped batches, the same student init, batch size, max length and
number of steps. Rows are interleaved: round r runs every row once, in an order rotated by r, so
a drift in machine load hits all rows alike; the table reports the median over rounds and the
ratio to the ``ce`` row's median.

Cached rows first run a *build round* with an empty cache directory of their own: that epoch
includes computing the teacher outputs, and is reported separately (with the build's seconds
and the cache's size on disk per 1,000 training examples); the timed rounds then read that
cache, as every later epoch and run would. Peak RSS is the worker process's
``ru_maxrss`` (whole run: loading, tokenising, the epoch, final dev evaluation), max over rounds.

Example (see benchmarks/results/speed.md for the recorded command)::

    python benchmarks/speed.py --teacher ../layerkd-work/teachers/sst-2 --data-dir ../shared/data/glue \\
        --task sst-2 --subsample 8000 --batch-size 32 --max-length 64 --repeats 3
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
from timing import fmt as _f  # noqa: E402
from timing import machine as _machine  # noqa: E402
from timing import peak_rss_mb as _peak_rss_mb  # noqa: E402
from timing import run_worker, versions  # noqa: E402
from timing import set_threads as _threads  # noqa: E402

CACHED = ["kd", "pkd", "alp", "rail", "universal", "universal+alp"]
ALL_ROWS = ["ce", *CACHED, *(f"{m}-live" for m in CACHED), "internal", "textbrewer"]
TARGET_RATIO = 1.15  # cached kd/alp/rail/universal epoch vs the student-only epoch
TARGET_PEER = 2.0  # TextBrewer epoch / our cached pkd epoch


def row_spec(row: str) -> dict:
    if row == "ce":
        return {"kind": "layerkd", "method": "ce", "cache": False, "teacher": "none"}
    if row == "internal":
        return {"kind": "layerkd", "method": "internal-all", "cache": True, "teacher": "live (attention maps)",
                "epochs_budget": 12}
    if row == "textbrewer":
        return {"kind": "textbrewer", "method": "pkd (TextBrewer GeneralDistiller)", "cache": False, "teacher": "live"}
    if row.endswith("-live") and row[:-5] in CACHED:
        return {"kind": "layerkd", "method": row[:-5], "cache": False, "teacher": "live (--no-cache)"}
    if row in CACHED:
        return {"kind": "layerkd", "method": row, "cache": True, "teacher": "cache"}
    raise SystemExit(f"unknown row {row!r}; expected some of: {', '.join(ALL_ROWS)}")


# =============================================================================== the worker side


def _epoch_times(log_path: Path) -> list[dict]:
    rows = [json.loads(x) for x in log_path.read_text().splitlines() if x.strip()]
    out = []
    starts = {r["epoch"]: r for r in rows if r["event"] == "epoch_start"}
    for e, start in sorted(starts.items()):
        trains = [r for r in rows if r["event"] == "train" and r["epoch"] == e]
        if trains:
            out.append({"epoch": e, "seconds": trains[-1]["time"] - start["time"],
                        "steps": trains[-1]["step"] - start["step"]})
    return out


def _run_config(spec: dict) -> dict:
    a = spec["args"]
    cfg = {
        "task": a["task"],
        "data": {"data_dir": a["data_dir"], "train_subsample": a["subsample"], "subsample_seed": 0},
        "teacher": {"path": a["teacher"]},
        "student": a["student"],
        "method": spec["method"],
        "train": {"epochs": 1, "batch_size": a["batch_size"], "max_length": a["max_length"], "seed": a["seed"],
                  "lr": a["lr"], "precision": a["precision"], "log_every_steps": 10},
        "cache": {"enabled": spec["cache"], "dir": spec["cache_dir"]},
        "output_dir": spec["output_dir"],
    }
    if a["steps"]:
        cfg["train"]["max_steps"] = a["steps"]
    if spec.get("epochs_budget"):
        # a scheduled recipe (internal-all: m stage epochs, then soft labels) needs a multi-epoch
        # budget to be valid; max_steps stops it after the first (live, attention-map) epoch
        cfg["train"]["epochs"] = spec["epochs_budget"]
        cfg["train"]["max_steps"] = a["steps"] or _steps_per_epoch(spec)
    if spec.get("heads"):
        cfg["teacher"]["heads"] = spec["heads"]
    return cfg


def _steps_per_epoch(spec: dict) -> int:
    from layerkd.config import DataConfig  # noqa: PLC0415
    from layerkd.stages.common import load_data  # noqa: PLC0415
    from layerkd.tasks import task_from_config  # noqa: PLC0415

    a = spec["args"]
    train, _, _ = load_data(DataConfig(data_dir=a["data_dir"], train_subsample=a["subsample"]), task_from_config(a["task"]))
    return -(-len(train) // a["batch_size"])


def worker_layerkd(spec: dict) -> dict:
    from layerkd.config import validate_run_config  # noqa: PLC0415
    from layerkd.stages.distill import distill  # noqa: PLC0415

    out = Path(spec["output_dir"])
    res = distill(validate_run_config(_run_config(spec)), progress=False)
    epochs = _epoch_times(out / "log.jsonl")
    decisions = res.get("diagnostics", {}).get("teacher_source", [])
    return {"epochs": epochs, "teacher_source": decisions, "train_rows": res.get("train_rows"),
            "dev": res.get("last"), "precision": res.get("precision")}


def worker_heads(spec: dict) -> dict:
    """Fit the teacher's pseudo classifiers once (all universal rows then load them)."""
    from layerkd.config import DataConfig, HeadsFitConfig  # noqa: PLC0415
    from layerkd.data.encoding import EncodedSplit  # noqa: PLC0415
    from layerkd.models.fingerprint import model_fingerprint  # noqa: PLC0415
    from layerkd.models.load import load_model  # noqa: PLC0415
    from layerkd.stages.common import load_data  # noqa: PLC0415
    from layerkd.stages.heads import fit_teacher_heads  # noqa: PLC0415
    from layerkd.tasks import task_from_config  # noqa: PLC0415
    from layerkd.teacher_cache import TeacherCache  # noqa: PLC0415

    a = spec["args"]
    task = task_from_config(a["task"])
    train, dev, _ = load_data(DataConfig(data_dir=a["data_dir"], train_subsample=a["subsample"]), task)
    teacher = load_model(a["teacher"], task, require_head=True)
    enc = {"student": teacher.text_encoder, "teacher": teacher.text_encoder}
    tr, dv = EncodedSplit(train, enc, a["max_length"]), EncodedSplit(dev, enc, a["max_length"])
    root = Path(spec["cache_dir"])
    heads, report = fit_teacher_heads(teacher=teacher, task=task, train=tr, dev=dv, cfg=HeadsFitConfig(), seed=a["seed"],
                                      max_length=a["max_length"], work_dir=Path(spec["output_dir"]), cache_root=root,
                                      teacher_fp=model_fingerprint(teacher), cache=TeacherCache(root))
    heads.save(spec["heads"], extra=report)
    return {"heads": spec["heads"], "dev_scores": report["dev_scores"]}


def worker_textbrewer(spec: dict) -> dict:
    import textbrewer  # noqa: PLC0415
    import torch  # noqa: PLC0415
    from textbrewer import DistillationConfig, GeneralDistiller, TrainingConfig  # noqa: PLC0415

    from layerkd import layer_maps  # noqa: PLC0415
    from layerkd.config import DataConfig, TrainConfig  # noqa: PLC0415
    from layerkd.data.batching import LengthGroupedBatchSampler  # noqa: PLC0415
    from layerkd.data.encoding import EncodedSplit  # noqa: PLC0415
    from layerkd.methods import resolve_method  # noqa: PLC0415
    from layerkd.models.load import build_student, load_model  # noqa: PLC0415
    from layerkd.stages.common import load_data, seed_everything  # noqa: PLC0415
    from layerkd.tasks import task_from_config  # noqa: PLC0415

    a = spec["args"]
    tc = TrainConfig(batch_size=a["batch_size"], max_length=a["max_length"], seed=a["seed"], lr=a["lr"])
    task = task_from_config(a["task"])
    train, _, _ = load_data(DataConfig(data_dir=a["data_dir"], train_subsample=a["subsample"], subsample_seed=0), task)
    teacher = load_model(a["teacher"], task, require_head=True)
    seed_everything(tc.seed)  # as layerkd's distill does before building the student: the same init
    student = build_student(a["student"], teacher, task)
    data = EncodedSplit(train, {"student": student.text_encoder, "teacher": teacher.text_encoder}, tc.max_length,
                        length_role="student")
    if data.role_key["student"] != data.role_key["teacher"]:
        raise SystemExit("textbrewer row: teacher and student must share a tokenizer")
    # the same batches as the Trainer's first epoch (same sampler, seed and epoch)
    batches = LengthGroupedBatchSampler(data.lengths, tc.batch_size, seed=tc.seed, shuffle=True,
                                        group_by_length=tc.group_by_length).batches(0)
    if a["steps"]:
        batches = batches[: a["steps"]]
    device = "cuda" if torch.cuda.is_available() else "cpu"

    class Loader:
        def __len__(self):
            return len(batches)

        def __iter__(self):
            for b in batches:
                bt = data.batch(b)
                yield {**bt.inputs["student"], "labels": bt.labels}

    # our pkd preset, term by term
    recipe = {o.name: o for o in resolve_method("pkd").recipe.objectives}
    temp = float(recipe["kd"].options.get("temperature", 2.0))
    pkd_opts = recipe["pkd"].options
    n, m = teacher.info.num_layers, student.info.num_layers
    s_layers = list(range(1, m))
    t_layers = layer_maps.resolve(pkd_opts.get("mapping", "skip"), n, m)
    d = teacher.info.hidden_size
    # ours: weight · mean over (k layers × d) of the squared normalised difference; TextBrewer's
    # pkd loss: sum over d, mean over the batch, per layer pair
    match_w = recipe["pkd"].weight / (len(s_layers) * d)
    matches = [{"layer_T": t, "layer_S": s, "feature": "hidden", "loss": "pkd", "weight": match_w}
               for s, t in zip(s_layers, t_layers, strict=True)]
    dcfg = DistillationConfig(temperature=temp, kd_loss_type="ce", kd_loss_weight=recipe["kd"].weight * temp * temp,
                              hard_label_weight=recipe["ce"].weight, intermediate_matches=matches)
    out_dir = Path(spec["output_dir"])
    tcfg = TrainingConfig(device=device, output_dir=str(out_dir), log_dir=None)

    def adaptor_t(batch, out):
        return {"logits": out.logits, "hidden": out.hidden_states}

    def adaptor_s(batch, out):
        return {"logits": out.logits, "hidden": out.hidden_states, "losses": out.loss}

    t_hf, s_hf = teacher.hf.to(device).eval(), student.hf.to(device).train()
    for p in t_hf.parameters():
        p.requires_grad_(False)
    decay = [p for nme, p in s_hf.named_parameters() if not (nme.endswith("bias") or "LayerNorm" in nme)]
    no_decay = [p for nme, p in s_hf.named_parameters() if nme.endswith("bias") or "LayerNorm" in nme]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": tc.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=tc.lr, eps=tc.adam_eps)
    total, warm = len(batches), int(tc.warmup_ratio * len(batches))

    def factor(step):
        return (step + 1) / max(1, warm) if step < warm else max(0.0, (total - step) / max(1, total - warm))

    distiller = GeneralDistiller(train_config=tcfg, distill_config=dcfg, model_T=t_hf, model_S=s_hf,
                                 adaptor_T=adaptor_t, adaptor_S=adaptor_s)
    distiller.save_and_callback = lambda *args, **kw: None  # no checkpoint inside the timed epoch (ours: none either)
    t0 = time.perf_counter()
    distiller.train(optimizer, Loader(), num_epochs=1, scheduler_class=torch.optim.lr_scheduler.LambdaLR,
                    scheduler_args={"lr_lambda": factor}, max_grad_norm=tc.max_grad_norm, output_hidden_states=True)
    seconds = time.perf_counter() - t0
    return {"epochs": [{"epoch": 0, "seconds": seconds, "steps": len(batches)}], "train_rows": len(data),
            "textbrewer": textbrewer.__version__, "layer_pairs": list(zip(s_layers, t_layers, strict=True)),
            "match_weight": match_w, "kd_loss_weight": dcfg.kd_loss_weight}


def worker_main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    _threads(spec["args"].get("threads"))
    fn = {"layerkd": worker_layerkd, "textbrewer": worker_textbrewer, "heads": worker_heads}[spec["kind"]]
    result = fn(spec)
    import torch  # noqa: PLC0415

    result["peak_rss_mb"] = round(_peak_rss_mb(), 1)
    result["torch_threads"] = torch.get_num_threads()
    Path(spec["result"]).write_text(json.dumps(result, indent=1, default=str))


# =============================================================================== the orchestrator


def _versions() -> dict:
    return versions(("layerkd", "torch", "transformers", "accelerate", "numpy", "textbrewer"))


def _run_worker(spec: dict, work: Path, name: str) -> dict:
    return run_worker(__file__, spec, work, name)


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


def orchestrate(args: argparse.Namespace) -> dict:
    rows = [r.strip() for r in args.rows.split(",") if r.strip()] if args.rows else list(ALL_ROWS)
    specs = {r: row_spec(r) for r in rows}
    if "textbrewer" in rows:
        try:
            import textbrewer  # noqa: F401,PLC0415
        except ImportError:
            raise SystemExit("the textbrewer row needs TextBrewer: pip install 'layerkd[bench]' (or drop it from --rows)") from None
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="layerkd-speed-"))
    work.mkdir(parents=True, exist_ok=True)
    common = {k: getattr(args, k) for k in ("teacher", "data_dir", "task", "subsample", "steps", "batch_size",
                                            "max_length", "seed", "lr", "precision", "student", "threads")}
    common["teacher"] = str(Path(args.teacher).resolve())
    common["data_dir"] = str(Path(args.data_dir).resolve())
    say = (lambda m: print(m, flush=True)) if not args.quiet else (lambda m: None)
    say(f"work directory: {work}")

    heads_dir = None
    if any("universal" in r for r in rows):
        heads_dir = str(work / "heads")
        say("preparing: fitting the teacher's pseudo classifiers once (not timed)")
        _run_worker({"kind": "heads", "args": common, "cache_dir": str(work / "cache-prepare"),
                     "output_dir": str(work / "heads-run"), "heads": heads_dir}, work, "prepare-heads")

    def spec_for(row: str, rnd: int) -> dict:
        s = specs[row]
        return {**s, "args": common, "cache_dir": str(work / f"cache-{row}"), "output_dir": str(work / f"run-{row}-r{rnd}"),
                "heads": heads_dir if "universal" in s["method"] else None}

    results: dict[str, dict] = {r: {"row": r, **specs[r], "rounds": []} for r in rows}

    def run(row: str, rnd: int) -> dict:
        spec = spec_for(row, rnd)
        res = _run_worker(spec, work, f"{row}-r{rnd}")
        shutil.rmtree(spec["output_dir"], ignore_errors=True)  # the trained student: not needed
        secs = [e["seconds"] for e in res["epochs"]]
        say(f"  round {rnd}  {row:20s} epoch {', '.join(f'{s:.2f}' for s in secs)} s  "
            f"({res['epochs'][0]['steps'] if res['epochs'] else '?'} steps, peak RSS {res['peak_rss_mb']:.0f} MB, "
            f"worker {res['wall_seconds']:.0f} s)")
        return res

    build_rows = [r for r in rows if specs[r]["kind"] == "layerkd" and specs[r]["cache"] and r != "internal"]
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
    base = results.get("ce", {}).get("median_epoch_seconds")
    for r in results.values():
        med = r["median_epoch_seconds"]
        r["ratio_to_ce"] = round(med / base, 3) if base and med else None
    steps = {r["steps_per_epoch"] for r in results.values() if r["steps_per_epoch"] is not None}
    threads = {res.get("torch_threads") for r in results.values() for res in r["rounds"]}
    report = {
        "benchmark": "layerkd speed (issue 5)",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "settings": {**common, "repeats": args.repeats, "rows": rows, "steps_per_epoch": sorted(steps),
                     "worker_torch_threads": sorted(t for t in threads if t is not None),
                     "timing": "median over rounds of one epoch each, fresh worker process per measurement, interleaved"},
        "machine": _machine(),
        "versions": _versions(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(args._t0)),
        "wall_seconds": round(time.time() - args._t0, 1),
        "rows": results,
        "targets": targets(results),
    }
    if not args.keep_work and not args.work_dir:
        shutil.rmtree(work, ignore_errors=True)
    return report


def targets(results: dict) -> list[dict]:
    out = []

    def med(r):
        return results.get(r, {}).get("median_epoch_seconds")

    for row in ("kd", "alp", "rail", "universal"):
        if row in results and results[row]["ratio_to_ce"] is not None:
            ratio = results[row]["ratio_to_ce"]
            out.append({"target": f"cached {row} epoch ≤ {TARGET_RATIO}× the student-only (ce) epoch",
                        "value": ratio, "met": ratio <= TARGET_RATIO})
    if med("textbrewer") and med("pkd"):
        x = med("textbrewer") / med("pkd")
        out.append({"target": f"≥ {TARGET_PEER}× faster per epoch than TextBrewer on the same distillation (cached pkd)",
                    "value": round(x, 3), "met": x >= TARGET_PEER})
    if med("textbrewer") and med("pkd-live"):
        x = med("textbrewer") / med("pkd-live")
        out.append({"target": "(context) TextBrewer epoch / our live-teacher pkd epoch", "value": round(x, 3), "met": None})
    if med("rail") and med("alp"):
        x = med("rail") / med("alp")
        out.append({"target": "cached rail no slower than cached alp (ratio ≤ 1)", "value": round(x, 3), "met": x <= 1.0})
    for m in CACHED:
        if med(m) and med(f"{m}-live"):
            out.append({"target": f"(context) {m}: live-teacher epoch / cached epoch",
                        "value": round(med(f"{m}-live") / med(m), 3), "met": None})
    return out


def markdown(rep: dict) -> str:
    s, v, mach = rep["settings"], rep["versions"], rep["machine"]
    lines = [
        "# Speed benchmark: distillation epoch vs the student's own epoch",
        "",
        f"Command: `{rep['command']}`  ",
        f"Started {rep['started']}, wall {rep['wall_seconds'] / 60:.1f} min.  ",
        f"Task {s['task']} (train subsample {s['subsample']}, seed 0), teacher `{s['teacher']}`, student `{s['student']}`; "
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
        size = r.get("cache_size", {}).get("mb_per_1000")
        lines.append(
            f"| {name} | {r['method']} | {r['teacher']} | {_f(r['median_epoch_seconds'])} | {_f(r['ratio_to_ce'], 2)} | "
            f"{', '.join(f'{x:.2f}' for x in r['epoch_seconds'])} | {_f(r.get('first_epoch_seconds'))} | "
            f"{_f(r.get('cache_build_seconds'))} | {_f(size, 3)} | {_f(r['peak_rss_mb'], 0)} |")
    lines += ["", "## Targets", ""]
    for t in rep["targets"]:
        mark = "—" if t["met"] is None else ("**met**" if t["met"] else "**missed**")
        lines.append(f"- {t['target']}: {t['value']} {mark}")
    sizes = {n: r["cache_size"]["per_field_mb_per_1000"] for n, r in rep["rows"].items() if r.get("cache_size")}
    if sizes:
        lines += ["", "Cache size per field (MB per 1,000 examples): "
                  + "; ".join(f"{n}: " + ", ".join(f"{k} {x}" for k, x in f.items()) for n, f in sizes.items())]
    lines += [
        "",
        "How measured: each number is one epoch in a fresh worker process built with the layerkd API "
        "(`layerkd.stages.distill.distill`), timed from the run's `epoch_start` record to its last `train` record "
        "(batching, teacher/cache, forward, backward, optimiser; not the end-of-epoch evaluation/checkpoint). "
        "TextBrewer's row times `GeneralDistiller.train` for one epoch over the same batches with its checkpoint "
        "save disabled; it runs our `pkd` recipe (hard-label CE 0.5, soft CE with weight 0.5·T² — gradient-equal "
        "to T²·KL — and its `pkd` [CLS] loss on the same layer pairs, weighted to equal ours). Cached rows' first "
        "epoch (own empty cache) is the build round; the timed rounds read the cache. Peak RSS is the worker's "
        "`ru_maxrss` over the whole run (loading, tokenising, the epoch, final evaluation).",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--teacher", help="fine-tuned teacher directory (e.g. the fine-tuned MiniLM-L6)")
    p.add_argument("--data-dir", help="GLUE directory in the classic layout")
    p.add_argument("--task", default="sst-2")
    p.add_argument("--subsample", type=int, default=8000, help="fixed random subset of training rows (seed 0)")
    p.add_argument("--steps", type=int, default=None, help="cap every measured epoch at this many steps (all rows alike)")
    p.add_argument("--repeats", "--epochs", type=int, default=3, dest="repeats",
                   help="timed epochs per row (one per interleaved round, each in a fresh process)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--student", default="bottom:2", help="student spec (default: the teacher's bottom 2 layers)")
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads in the workers (default: torch's)")
    p.add_argument("--rows", default=None, help=f"comma-separated rows (default all): {','.join(ALL_ROWS)}")
    p.add_argument("--out", default="benchmarks/results/speed", help="writes <out>.json and <out>.md")
    p.add_argument("--work-dir", default=None, help="runs and caches (default: a temporary directory, removed at the end)")
    p.add_argument("--keep-work", action="store_true", help="keep the temporary work directory")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    if args.worker:
        worker_main(args.worker)
        return
    if not args.teacher or not args.data_dir:
        p.error("--teacher and --data-dir are required")
    if args.rows and "ce" not in args.rows.split(","):
        print("note: without the ce row there is no floor to compare with; ratios will be empty", file=sys.stderr)
    args._t0 = time.time()
    rep = orchestrate(args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(rep, indent=1, default=str))
    out.with_suffix(".md").write_text(markdown(rep))
    print(markdown(rep))


if __name__ == "__main__":
    main()

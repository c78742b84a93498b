#!/usr/bin/env python
"""The GPU check (issue 22 point 5), run by ``benchmarks/gpu_check.sh``; writes ``benchmarks/results/gpu.md``.

Three steps, each a subprocess with its own time limit (the whole check stays under 8 minutes):

a. **device tests** — ``pytest -m device`` (``tests/test_device.py``: bf16 and fp16 training, the
   teacher cache and evaluation on the GPU; the trainer's Accelerator takes CUDA whenever torch
   sees it);
b. **speed rows with bf16 autocast** — ``benchmarks/speed.py`` rows ``ce``, ``kd`` (cached), ``alp``
   (cached and live) and ``textbrewer`` (when TextBrewer is installed; it runs in fp32, speed.py
   does not autocast it) at the papers' shapes: a randomly initialised BERT-base-shaped teacher
   (12 layers × 768, 12 heads, FFN 3072, MiniLM's 30,522-token vocabulary) built here, since
   speed.py has no paper-shape option of its own, and its ``bottom:4`` student on MRPC
   (max length 128, batch 32);
c. **a 1-epoch distillation on real data** — MiniLM-L6 fine-tuned on MRPC for 1 epoch, then ``alp``
   into its bottom 2 layers for 1 epoch (both bf16), dev scores read from ``results.json``.

``--dry-run`` runs the same steps on the CPU with tiny shapes and a few steps: a random 4 × 32
BERT, toy data from :mod:`layerkd.toy` (no ``../shared`` needed), device tests only collected,
the report written to a temporary file (or ``--out``) instead of gpu.md. Nothing needs the network.
Exit code 0 when every step passed, 1 otherwise (the report is written either way), 2 when run
without ``--dry-run`` on a machine without CUDA.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import fmt, machine, versions  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SPEED_ROWS = ["ce", "kd", "alp", "alp-live", "textbrewer"]
DRY_SPEED_ROWS = ["ce", "alp"]  # the cached path with its build round; each row is a fresh worker
#: per-step limits (seconds) on the GPU machine; the whole check stays under 8 minutes
LIMITS = {"tests": 120, "speed": 210, "distill": 120}


def _tail(text: str, n: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-n:])


def run_step(cmd: list[str], limit: float, env: dict) -> dict:
    t0 = time.time()
    try:
        p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=limit)
        rc, out = p.returncode, p.stdout + p.stderr
    except subprocess.TimeoutExpired as exc:
        rc, out = "timeout", ((exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or ""))
    return {"command": shlex.join(cmd), "rc": rc, "ok": rc == 0, "seconds": round(time.time() - t0, 1), "tail": _tail(out)}


# ------------------------------------------------------------------------------------------ inputs
def random_teacher(out: Path, *, dry: bool, shared: Path) -> Path:
    """A randomly initialised classifier saved as if fine-tuned (timing depends on shapes only)."""
    import torch  # noqa: PLC0415
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer  # noqa: PLC0415

    from layerkd import toy  # noqa: PLC0415
    from layerkd.models.transformer import _quiet_transformers  # noqa: PLC0415

    _quiet_transformers()
    out.mkdir(parents=True, exist_ok=True)
    if dry:
        tok = toy.write_tokenizer(out)
        shape = {"hidden_size": 32, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 64}
    else:
        tok = BertTokenizer(str(shared / "models" / "all-MiniLM-L6-v2" / "vocab.txt"), do_lower_case=True)
        tok.save_pretrained(str(out))
        shape = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072}
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(tok), max_position_embeddings=512, num_labels=2, **shape)
    BertForSequenceClassification(cfg).save_pretrained(str(out), safe_serialization=True)
    return out


def toy_glue(out: Path) -> Path:
    """Toy sentiment rows in the GLUE SST-2 layout (what speed.py reads)."""
    from layerkd import toy  # noqa: PLC0415

    train, dev = toy.write_sentiment_data(out / "toy", n_train=160, n_dev=48, seed=0)
    (out / "SST-2").mkdir(parents=True, exist_ok=True)
    for src, name in ((train, "train.tsv"), (dev, "dev.tsv")):
        (out / "SST-2" / name).write_text(Path(src).read_text())
    return out


def run_configs(work: Path, *, dry: bool, shared: Path) -> tuple[dict, dict]:
    """The step-c teacher fine-tuning and distillation configs."""
    from layerkd import toy  # noqa: PLC0415

    if dry:
        train, dev = toy.write_sentiment_data(work / "toy-c", n_train=200, n_dev=64, seed=1)
        base = {"task": toy.TOY_TASK, "data": {"train_file": str(train), "dev_file": str(dev)}}
        model = str(toy.write_tiny_bert(work / "tiny-bert", layers=4, hidden=32, heads=4, intermediate=64))
        train_cfg = {"epochs": 1, "batch_size": 16, "max_length": 32, "lr": 3e-3, "seed": 0, "precision": "bf16"}
    else:
        base = {"task": "mrpc", "data": {"data_dir": str(shared / "data" / "glue")}}
        model = str(shared / "models" / "all-MiniLM-L6-v2")
        train_cfg = {"epochs": 1, "batch_size": 32, "max_length": 128, "lr": 1e-4, "seed": 0, "precision": "bf16"}
    teacher = {**base, "model": model, "train": train_cfg, "output_dir": str(work / "teacher")}
    student = {**base, "teacher": {"path": str(work / "teacher")}, "student": "bottom:2", "method": "alp",
               "train": train_cfg, "cache": {"dir": str(work / "cache")}, "output_dir": str(work / "student")}
    return teacher, student


# ------------------------------------------------------------------------------------------- steps
def step_tests(py: str, dry: bool, env: dict) -> dict:
    cmd = [py, "-m", "pytest", "-q", "-m", "device", "-p", "no:cacheprovider", "tests"]
    if dry:  # the selection only, from the file that holds them (collecting every test file takes long)
        cmd[4:4] = ["--collect-only"]
        cmd[-1] = "tests/test_device.py"
    r = run_step(cmd, LIMITS["tests"], env)
    last = [ln for ln in r["tail"].splitlines() if ln.strip()][-1:] or [""]
    r["summary"] = ("collected only (dry run): " if dry else "") + last[0].strip("= ")
    return r


def step_speed(py: str, dry: bool, env: dict, work: Path, shared: Path) -> dict:
    teacher = random_teacher(work / "speed-teacher", dry=dry, shared=shared)
    notes = ["speed.py has no paper-shape option: the check builds a random BERT-base-shaped teacher and passes it "
             "as --teacher" if not dry else
             f"dry run: random 4 × 32 teacher, toy data, 3 steps per epoch, rows {', '.join(DRY_SPEED_ROWS)} "
             f"(the GPU run: {', '.join(SPEED_ROWS)})"]
    rows = list(DRY_SPEED_ROWS if dry else SPEED_ROWS)
    if "textbrewer" in rows and subprocess.run([py, "-c", "import textbrewer"], capture_output=True).returncode != 0:
        rows.remove("textbrewer")
        notes.append("TextBrewer is not installed (pip install 'layerkd[bench]'): its row is left out")
    if "textbrewer" in rows:
        notes.append("the TextBrewer row runs in fp32 (speed.py does not autocast it); the layerkd rows in bf16")
    if dry:
        args = ["--data-dir", str(toy_glue(work / "glue")), "--task", "sst-2", "--student", "bottom:2", "--subsample", "64",
                "--steps", "3", "--max-length", "32", "--batch-size", "16", "--threads", "1"]
    else:
        args = ["--data-dir", str(shared / "data" / "glue"), "--task", "mrpc", "--student", "bottom:4",
                "--subsample", "1280", "--steps", "30", "--max-length", "128", "--batch-size", "32"]
    out = work / "speed"
    cmd = [py, "benchmarks/speed.py", "--teacher", str(teacher), *args, "--precision", "bf16", "--repeats", "1",
           "--rows", ",".join(rows), "--out", str(out), "--work-dir", str(work / "speed-work"), "--quiet"]
    r = run_step(cmd, LIMITS["speed"], env)
    r["notes"] = notes
    if r["ok"]:
        rep = json.loads(out.with_suffix(".json").read_text())
        r["rows"] = {n: {"median": x["median_epoch_seconds"], "ratio": x["ratio_to_ce"], "steps": x["steps_per_epoch"],
                         "build": x.get("cache_build_seconds")} for n, x in rep["rows"].items()}
        r["summary"] = ", ".join(f"{n} {fmt(x['median'])} s ({fmt(x['ratio'])}× ce)" for n, x in r["rows"].items())
    else:
        r["summary"] = "failed"
    return r


def step_distill(py: str, dry: bool, env: dict, work: Path, shared: Path) -> dict:
    import yaml  # noqa: PLC0415

    teacher_cfg, student_cfg = run_configs(work, dry=dry, shared=shared)
    out = {"parts": []}
    t0 = time.time()
    for name, stage, cfg in (("teacher", "finetune", teacher_cfg), ("student", "distill", student_cfg)):
        path = work / f"{name}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        left = LIMITS["distill"] - (time.time() - t0)
        r = run_step([py, "-m", "layerkd.cli", stage, "--config", str(path)], max(left, 1), env)
        if r["ok"]:
            res = json.loads((Path(cfg["output_dir"]) / "results.json").read_text())
            m = res["main_metric"]
            r["summary"] = f"{name} ({stage}, 1 epoch): dev {m} {res['best'][m]:.4f}"
        out["parts"].append(r)
        if not r["ok"]:
            break
    parts = out["parts"]
    return {"ok": all(p["ok"] for p in parts) and len(parts) == 2, "seconds": round(time.time() - t0, 1),
            "summary": "; ".join(p.get("summary", f"{p['command']} failed") for p in parts), "parts": parts,
            "command": " && ".join(p["command"] for p in parts), "tail": parts[-1]["tail"]}


# ------------------------------------------------------------------------------------------ report
def markdown(rep: dict) -> str:
    v = rep["versions"]
    lines = ["# GPU check" + (" (dry run on CPU)" if rep["dry_run"] else ""), "",
             f"Command: `{rep['command']}`  ", f"Started {rep['started']}, wall {rep['wall_seconds']:.0f} s.", "",
             "## Environment", "",
             f"- device: {rep['device']}",
             "- versions: " + ", ".join(f"{k} {v[k]}" for k in ("layerkd", "torch", "transformers", "accelerate", "numpy",
                                                                  "textbrewer")),
             f"- machine: {rep['machine'].get('cpu')}, {rep['machine'].get('logical_cores')} logical cores, "
             f"{rep['machine'].get('platform')}, Python {rep['machine'].get('python')}", "",
             "| step | result | time (s) | |", "|---|---|---:|---|"]
    titles = {"tests": "a. Device tests", "speed": "b. Speed rows (bf16)", "distill": "c. Distillation on real data"}
    for key, s in rep["steps"].items():
        lines.append(f"| {titles[key]} | {s.get('summary', '')} | {s['seconds']:.1f} | {'ok' if s['ok'] else '**FAILED**'} |")
    for key, s in rep["steps"].items():
        lines += ["", f"## {titles[key]}", "", f"Command: `{s['command']}`  ",
                  f"Result: {'ok' if s['ok'] else 'FAILED'} in {s['seconds']:.1f} s — {s.get('summary', '')}"]
        for n in s.get("notes", []):
            lines.append(f"- note: {n}")
        if s.get("rows"):
            lines += ["", "| row | median epoch (s) | × ce | steps | cache build (s) |", "|---|---:|---:|---:|---:|"]
            for n, x in s["rows"].items():
                lines.append(f"| {n} | {fmt(x['median'], 3)} | {fmt(x['ratio'])} | {x['steps']} | {fmt(x['build'])} |")
        if not s["ok"]:
            lines += ["", "```", s["tail"], "```"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dry-run", action="store_true", help="on the CPU, tiny shapes, a few steps, toy data")
    p.add_argument("--out", default=None, help="report file (default benchmarks/results/gpu.md; --dry-run: a temporary file)")
    p.add_argument("--shared", default=os.environ.get("LAYERKD_SHARED") or str(REPO.parent / "shared"),
                   help="GLUE data and MiniLM models (../shared)")
    p.add_argument("--keep-work", action="store_true")
    args = p.parse_args(argv)
    import torch  # noqa: PLC0415

    if not args.dry_run and not torch.cuda.is_available():
        print("error: gpu_check: torch sees no CUDA device; run it on the GPU machine, or use --dry-run on a CPU",
              file=sys.stderr)
        return 2
    t0 = time.time()
    work = Path(tempfile.mkdtemp(prefix="layerkd-gpu-check-"))
    out = Path(args.out) if args.out else (work.parent / f"{work.name}.md" if args.dry_run else REPO / "benchmarks/results/gpu.md")
    shared = Path(args.shared)
    py = sys.executable
    env = {**os.environ, "LAYERKD_CACHE": str(work / "cache"), "PYTHONUNBUFFERED": "1"}
    if args.dry_run:
        env.update(OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")  # the CPU path, even on a GPU machine
    steps: dict = {}
    say = lambda m: print(m, flush=True)  # noqa: E731
    say(f"gpu check{' (dry run)' if args.dry_run else ''}: work directory {work}")
    steps["tests"] = step_tests(py, args.dry_run, env)
    say(f"a. device tests: {steps['tests']['summary']} ({steps['tests']['seconds']} s)")
    steps["speed"] = step_speed(py, args.dry_run, env, work, shared)
    say(f"b. speed rows: {steps['speed']['summary']} ({steps['speed']['seconds']} s)")
    steps["distill"] = step_distill(py, args.dry_run, env, work, shared)
    say(f"c. distillation: {steps['distill']['summary']} ({steps['distill']['seconds']} s)")
    rep = {"dry_run": args.dry_run, "command": shlex.join(["bash", "benchmarks/gpu_check.sh", *(argv or sys.argv[1:])]),
           "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t0)), "wall_seconds": time.time() - t0,
           "device": "cpu (dry run)" if args.dry_run else torch.cuda.get_device_name(0),
           "versions": versions(("layerkd", "torch", "transformers", "accelerate", "numpy", "textbrewer")),
           "machine": machine(), "steps": steps}
    out.parent.mkdir(parents=True, exist_ok=True)
    # the report is committed: no absolute path of this machine in it
    paths = ((str(work), "$WORK"), (str(shared.resolve()), "../shared"), (str(shared), "../shared"), (str(REPO) + "/", ""))

    def clean(text: str) -> str:
        for a, b in paths:
            text = text.replace(a, b)
        return text

    out.write_text(clean(markdown(rep)))
    out.with_suffix(".json").write_text(clean(json.dumps(rep, indent=1, default=str)))
    say(f"report: {out}")
    if not args.keep_work:
        import shutil  # noqa: PLC0415

        shutil.rmtree(work, ignore_errors=True)
    return 0 if all(s["ok"] for s in steps.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

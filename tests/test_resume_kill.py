"""Crash safety end to end: real ``layerkd distill`` processes are SIGKILLed at named points —
mid-step, mid-evaluation, mid-checkpoint-write, mid-replacement of a checkpoint directory, while
writing the final outputs, before the first checkpoint — and resumed with ``--resume``; the final
weights, metrics, dev predictions and the whole metrics log must equal an uninterrupted run's.

The kills use the test-only fault hook ``LAYERKD_FAULT=<point>:<n>`` (see
:mod:`layerkd.faults`): the process sends itself SIGKILL the n-th time it reaches the point, so
nothing (no ``finally``, no ``atexit``) runs — exactly like ``kill -9`` or the OOM killer.

Two recipes with state beyond the weights:

* ``rail`` with a per-batch re-draw (the generator state and the draw are checkpointed) plus
  ``kd`` and ``ce``; one chain of five kills, one of them after a checkpoint was corrupted on disk
  (the previous checkpoint must be used, with a message);
* ``annealing`` (two phases: annealed logit regression, then gold-label fine-tuning): killed
  before any checkpoint exists (the resume starts from scratch) and inside the second phase.

Each chain is a sequence of processes on one output directory: run, killed, resumed (and killed
again) … until a run completes. The two chains run side by side (one thread each).
Set ``LAYERKD_RELIABILITY_OUT=<dir>`` to get the kill/resume matrix as JSON (used by
``benchmarks/reliability.sh``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from layerkd import toy

TRAIN = {"epochs": 3, "lr": 3e-3, "batch_size": 16, "max_length": 32, "seed": 0, "warmup_ratio": 0.0,
         "eval_every_steps": 3, "checkpoint_every_steps": 2, "keep_checkpoints": 2, "log_every_steps": 1,
         "eval_batch_size": 16, "keep_final_checkpoints": True}  # the comparison reads checkpoints/best

RECIPES = {
    "rail": {"recipe": {"objectives": [
        {"name": "ce", "weight": 0.5}, {"name": "kd", "weight": 0.5, "temperature": 2.0},
        {"name": "rail", "weight": 1.0, "resample": "batch", "proj_dim": 16}]}},
    "annealing": {"method": "annealing", "train": {"epochs": 4}},
}

# (fault for this process, what to do to the output directory before starting it); None: run to the end
CHAINS = {
    "rail": [("step:7", None), ("swap:1", "corrupt-newest"), ("eval:1", None), ("checkpoint:1", None),
             ("outputs:1", None), (None, None)],
    "annealing": [("step:1", None), ("step:15", None), (None, None)],
}

WHERE = {
    "step": "mid-step (after backward, before the optimiser step)",
    "eval": "mid-evaluation (after the first dev batch)",
    "checkpoint": "mid-checkpoint-write (weights written, no manifest, not renamed)",
    "swap": "mid-replacement of a checkpoint directory (old moved aside, new not yet in place)",
    "outputs": "writing the final outputs (model saved, metrics not)",
}


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    d = tmp_path_factory.mktemp("kill-data")
    for name, n, seed in (("train", 64, 11), ("dev", 32, 12)):
        rows = toy.sentiment_examples(n, seed=seed, noise=0.0, max_extra_clauses=0)
        (d / f"{name}.tsv").write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows))
    return d / "train.tsv", d / "dev.tsv"


def _write_config(path: Path, recipe: str, teacher: Path, data, cache: Path) -> Path:
    cfg = {"task": toy.TOY_TASK, "data": {"train_file": str(data[0]), "dev_file": str(data[1])},
           "teacher": {"path": str(teacher)}, "student": "bottom:2", "cache": {"dir": str(cache)},
           "train": dict(TRAIN)}
    extra = RECIPES[recipe]
    cfg.update({k: v for k, v in extra.items() if k != "train"})
    cfg["train"].update(extra.get("train", {}))
    path.write_text(yaml.safe_dump(cfg))
    return path


def _env(fault: str | None) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    env.pop("LAYERKD_FAULT", None)
    if fault:
        env["LAYERKD_FAULT"] = fault
    return env


def _corrupt_newest(out: Path) -> str:
    steps = sorted(p for p in (out / "checkpoints").iterdir() if p.name.startswith("step-"))
    victim = steps[-1] / "objectives.safetensors"
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])  # truncated, as after a crash of the storage layer
    return steps[-1].name


def _run_chain(recipe: str, config: Path, out: Path) -> list[dict]:
    links = []
    for i, (fault, action) in enumerate(CHAINS[recipe]):
        note = None
        if action == "corrupt-newest":
            note = f"truncated {_corrupt_newest(out)}/objectives.safetensors before resuming"
        cmd = [sys.executable, "-m", "layerkd.cli", "distill", "--config", str(config), "--output-dir", str(out)]
        if i:
            cmd.append("--resume")
        t0 = time.time()
        proc = subprocess.run(cmd, env=_env(fault), capture_output=True, text=True, timeout=300)
        links.append({"recipe": recipe, "fault": fault, "note": note, "rc": proc.returncode, "stderr": proc.stderr,
                      "stdout": proc.stdout, "seconds": round(time.time() - t0, 1), "resume": bool(i),
                      "command": " ".join(["layerkd", *cmd[3:]]) + (f"  (LAYERKD_FAULT={fault})" if fault else "")})
        if fault is None or proc.returncode != -signal.SIGKILL:
            break
    return links


def _log_records(out: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "time"} for r in map(json.loads, (out / "log.jsonl").read_text().splitlines())]


def _same_tensors(a: Path, b: Path) -> list[str]:
    ta, tb = load_file(str(a)), load_file(str(b))
    assert ta.keys() == tb.keys()
    return [k for k in ta if not torch.equal(ta[k], tb[k])]


def _compare(ref: Path, cut: Path) -> dict:
    ra, rb = (json.loads((p / "results.json").read_text()) for p in (ref, cut))
    keys = ("best", "last", "history", "best_step", "best_epoch", "steps", "epochs_run", "dev_predictions", "extra_eval")
    return {
        "weights_differ": _same_tensors(ref / "model.safetensors", cut / "model.safetensors"),
        "best_differs": _same_tensors(ref / "checkpoints/best/module.safetensors", cut / "checkpoints/best/module.safetensors"),
        "results_differ": [k for k in keys if ra.get(k) != rb.get(k)],
        "log_identical": _log_records(ref) == _log_records(cut),
        "metrics": {"ref": ra["best"], "resumed": rb["best"], "ref_last": ra["last"], "resumed_last": rb["last"]},
    }


def test_sigkill_anywhere_then_resume_matches_an_uninterrupted_run(tiny_teacher_dir, small_data, tmp_path):
    from layerkd.cli import build_config
    from layerkd.stages.distill import distill

    t_start = time.time()
    configs, refs = {}, {}
    for recipe in CHAINS:
        configs[recipe] = _write_config(tmp_path / f"{recipe}.yaml", recipe, tiny_teacher_dir, small_data, tmp_path / "cache")
        refs[recipe] = tmp_path / f"ref-{recipe}"
        # the uninterrupted reference, in this process (same single-thread CPU arithmetic)
        distill(build_config(configs[recipe], {"output_dir": str(refs[recipe])}), progress=False)
    with ThreadPoolExecutor(max_workers=len(CHAINS)) as pool:
        futures = {r: pool.submit(_run_chain, r, configs[r], tmp_path / f"cut-{r}") for r in CHAINS}
        chains = {r: f.result() for r, f in futures.items()}

    report = {"chains": {}, "seconds": None}
    for recipe, links in chains.items():
        planned = CHAINS[recipe]
        for link, (fault, _) in zip(links, planned, strict=False):
            if fault is None:
                assert link["rc"] == 0, f"{recipe}: the final resume failed:\n{link['stderr'][-3000:]}"
            else:
                assert link["rc"] == -signal.SIGKILL, (
                    f"{recipe}: expected the run to be killed at {fault}, exit code {link['rc']}:\n{link['stderr'][-3000:]}")
            assert "Traceback" not in link["stderr"], link["stderr"][-3000:]
        assert len(links) == len(planned), f"{recipe}: chain stopped early"
        cmp = _compare(refs[recipe], tmp_path / f"cut-{recipe}")
        report["chains"][recipe] = {"links": [{k: v for k, v in lk.items() if k not in ("stderr", "stdout")} |
                                              {"resumed_from": _resumed_from(lk["stderr"]),
                                               "messages": [ln for ln in lk["stderr"].splitlines()
                                                            if "corrupted" in ln or "restored" in ln or "scratch" in ln]}
                                              for lk in links], "comparison": cmp}
        assert not cmp["weights_differ"], f"{recipe}: final weights differ: {cmp['weights_differ'][:5]}"
        assert not cmp["best_differs"], f"{recipe}: best checkpoints differ"
        assert not cmp["results_differ"], f"{recipe}: results differ in {cmp['results_differ']}"
        assert cmp["log_identical"], f"{recipe}: the metrics logs differ"
        # the out-of-order leftovers of the kills are gone
        ck = tmp_path / f"cut-{recipe}" / "checkpoints"
        assert not [p.name for p in ck.iterdir() if p.name.endswith((".tmp", ".old"))]

    rail = chains["rail"]
    corrupted = next(lk for lk in rail if lk["note"])
    assert "is corrupted (objectives.safetensors truncated" in corrupted["stderr"]
    assert "falling back to the previous one" in corrupted["stderr"]
    annealing = chains["annealing"]
    assert "starting from scratch" in annealing[1]["stderr"]  # killed before its first checkpoint
    report["seconds"] = round(time.time() - t_start, 1)
    dest = os.environ.get("LAYERKD_RELIABILITY_OUT")
    if dest:
        Path(dest).mkdir(parents=True, exist_ok=True)
        (Path(dest) / "kill_resume.json").write_text(json.dumps(report, indent=1))


def _resumed_from(stderr: str) -> str | None:
    for line in stderr.splitlines():
        if line.startswith("resumed from"):
            return line
        if "starting from scratch" in line:
            return "no checkpoint: started from scratch"
    return None


def test_interrupted_replacement_restores_the_previous_directory(tmp_path):
    """A kill between moving the old directory aside and renaming the new one in: the old one is
    put back (the next run's recovery), never a missing checkpoint."""
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from layerkd.checkpoint import write_dir_atomically\n"
        "final = Path(sys.argv[1])\n"
        "write_dir_atomically(final, lambda d: (d / 'x.txt').write_text('first'))\n"
        "write_dir_atomically(final, lambda d: (d / 'x.txt').write_text('second'))\n"
    )
    final = tmp_path / "best"
    proc = subprocess.run([sys.executable, "-c", script, str(final)], env=_env("swap:1"), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert not final.exists() and (tmp_path / ".best.old").is_dir()  # the window the kill hit
    from layerkd.checkpoint import recover_dir, verify_dir

    messages: list[str] = []
    recover_dir(final, warn=messages.append)
    assert (final / "x.txt").read_text() == "first" and verify_dir(final) is None
    assert messages and "restored the previous version" in messages[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]

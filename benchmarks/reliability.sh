#!/usr/bin/env bash
# Reliability benchmark (issues 7 and 19): runs the crash-safety, bad-input, safety, multi-process
# and fuzz-corpus tests and writes benchmarks/results/reliability.md with
#   * the kill-and-resume matrix (where killed, resumed OK, metrics/weights identical),
#   * the bad-input catalogue (docs/errors.md): entries and how many pass,
#   * checkpoint-integrity and safety tests,
#   * the multi-process parity numbers (2 CPU processes, gloo) and a 2-process kill/resume,
#   * the fuzz corpus (tests/test_fuzz_corpus.py): hostile and valid inputs across every command,
#     counted by outcome (tried / exit 2 clean / valid / traceback / silently wrong / deleted),
# each with its command, plus versions and the machine. CPU only, about 5-10 minutes.
#
# Usage: bash benchmarks/reliability.sh
set -uo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
py="${LAYERKD_PYTHON:-$repo/.venv/bin/python}"
work="$(mktemp -d "${TMPDIR:-/tmp}/layerkd-reliability.XXXXXX")"
trap 'rm -rf "$work"' EXIT
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false
export LAYERKD_RELIABILITY_OUT="$work/out" LAYERKD_SLOW_TESTS=1
cd "$repo"

run() {  # name, pytest args...
  local name=$1; shift
  local t0=$(date +%s)
  "$py" -m pytest -p no:cacheprovider -q "$@" --junitxml="$work/$name.xml" >"$work/$name.log" 2>&1
  echo "$?" >"$work/$name.rc"
  echo "$(( $(date +%s) - t0 ))" >"$work/$name.seconds"
  echo "[$name] exit $(cat "$work/$name.rc") in $(cat "$work/$name.seconds") s"
}

run kill tests/test_resume_kill.py
run catalogue tests/test_errors_catalogue.py
run checkpoint tests/test_checkpoint_safety.py
run safety tests/test_safety.py
run multiprocess tests/test_multiprocess.py
run fuzz tests/test_fuzz_corpus.py

"$py" - "$work" "$repo/benchmarks/results/reliability.md" <<'EOF'
import json, os, platform, re, sys, xml.etree.ElementTree as ET
from pathlib import Path

work, dest = Path(sys.argv[1]), Path(sys.argv[2])
out = work / "out"


def junit(name):
    root = ET.parse(work / f"{name}.xml").getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    cases = []
    for c in suite.iter("testcase"):
        status = "failed" if c.find("failure") is not None or c.find("error") is not None else (
            "skipped" if c.find("skipped") is not None else "passed")
        cases.append((c.get("name"), status, float(c.get("time", 0))))
    return cases


def fmt(metrics):
    return ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())


def summary(name):
    cases = junit(name)
    n = {s: sum(1 for _, st, _ in cases if st == s) for s in ("passed", "failed", "skipped")}
    secs = (work / f"{name}.seconds").read_text().strip()
    return n, secs, cases


import torch, transformers, accelerate, layerkd
lines = ["# Reliability (issues 7 and 19)", "",
         "Written by `bash benchmarks/reliability.sh`, which runs the tests below with",
         "`LAYERKD_RELIABILITY_OUT` set so that they record what they measured. Everything runs on the CPU with one thread",
         "per process (`OMP_NUM_THREADS=1`). Timings are wall-clock on a shared machine: other jobs (training runs,",
         "other engineers' tests) ran beside it, so they are slower than on an idle one (load average below).", "",
         f"- layerkd {layerkd.__version__}, torch {torch.__version__}, transformers {transformers.__version__}, "
         f"accelerate {accelerate.__version__}, Python {platform.python_version()}",
         f"- {platform.platform()}, {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), load average "
         f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} at the end", ""]

# ------------------------------------------------------------------ kill and resume
n, secs, _ = summary("kill")
lines += ["## 1. Kill and resume", "",
          "Command: `.venv/bin/python -m pytest tests/test_resume_kill.py` "
          f"({n['passed']} passed, {n['failed']} failed, {secs} s)", "",
          "Real `layerkd distill` processes on the toy task (teacher: the tiny 4-layer BERT fine-tuned on it; student: its",
          "bottom 2 layers; 64 training and 32 dev rows, batch 16, checkpoints every 2 steps, evaluations every 3).",
          "Each process kills itself with SIGKILL at the named point (`LAYERKD_FAULT=<point>:<n>`, test-only) and the next",
          "one resumes with `--resume`. The chain continues until a run completes. The finished run is then compared with an",
          "uninterrupted run of the same config: the final weights, the best checkpoint, `results.json` (best/last metrics,",
          "evaluation history, dev predictions) and every record of `log.jsonl` apart from timestamps.", ""]
kr = json.loads((out / "kill_resume.json").read_text()) if (out / "kill_resume.json").exists() else None
WHERE = {
    "step": "mid-step (after backward, before the optimiser step)",
    "eval": "mid-evaluation (after the first dev batch)",
    "checkpoint": "mid-checkpoint-write (weights written; no manifest, not renamed)",
    "swap": "mid-replacement of a checkpoint directory (old one moved aside, new one not yet renamed)",
    "outputs": "writing the final outputs (model saved, metrics not)",
}
if kr:
    lines += ["| recipe | # | killed where | before this run | the run started from | killed (SIGKILL) |",
              "|---|---|---|---|---|---|"]
    for recipe, chain in kr["chains"].items():
        for i, lk in enumerate(chain["links"]):
            f = lk["fault"]
            where = f"`{f}`: " + WHERE[f.split(':')[0]] if f else "— (runs to the end)"
            start = lk["resumed_from"] or "fresh start"
            msgs = "; ".join(m for m in lk["messages"] if "corrupted" in m)
            before = lk["note"] or ""
            if msgs:
                before += f" → message: *{msgs}*"
            killed = "yes (-9)" if lk["rc"] == -9 else f"no, exit {lk['rc']}"
            lines.append(f"| {recipe} | {i + 1} | {where} | {before} | {start} | {killed} |")
    lines += ["", "| recipe | resumed OK | final weights identical | best checkpoint identical | results identical | log identical | best metric (uninterrupted / resumed) |",
              "|---|---|---|---|---|---|---|"]
    for recipe, chain in kr["chains"].items():
        c = chain["comparison"]
        ok = all(lk["rc"] == -9 for lk in chain["links"][:-1]) and chain["links"][-1]["rc"] == 0
        m = c["metrics"]
        lines.append(f"| {recipe} | {'yes' if ok else 'NO'} | {'yes' if not c['weights_differ'] else 'NO'} | "
                     f"{'yes' if not c['best_differs'] else 'NO'} | {'yes' if not c['results_differ'] else 'NO: ' + ', '.join(c['results_differ'])} | "
                     f"{'yes' if c['log_identical'] else 'NO'} | {fmt(m['ref'])} / {fmt(m['resumed'])} |")
    lines += ["", "Recipes: `rail` = `ce` 0.5 + `kd` 0.5 + `rail` (per-batch re-draw, so the generator and the draw are state);",
              "`annealing` = the two-phase preset (annealed logit regression, then gold-label fine-tuning) over 4 epochs.",
              "The `annealing` chain's first kill happens before any checkpoint exists. Its resume starts from scratch and drops",
              "the killed run's log lines. Its second kill happens inside the second phase, after a mid-phase checkpoint.",
              "`tests/test_resume_kill.py::test_interrupted_replacement_restores_the_previous_directory` also kills a process",
              "between the two renames that replace a directory, and checks that the previous version is put back.", ""]
else:
    lines += ["(the kill/resume test did not record its matrix: see the test log)", ""]

# ------------------------------------------------------------------ catalogue
n, secs, cases = summary("catalogue")
entries = [c for c in cases if c[0].startswith("test_catalogue_entry")]
ok = sum(1 for c in entries if c[1] == "passed")
doc_ids = re.findall(r"^\|\s*`([a-z0-9-]+)`\s*\|", (Path("docs/errors.md")).read_text(), flags=re.M)
lines += ["## 2. Bad input, catalogued", "",
          "Command: `.venv/bin/python -m pytest tests/test_errors_catalogue.py` "
          f"({n['passed']} passed, {n['failed']} failed, {secs} s)", "",
          f"**{len(doc_ids)} catalogue entries in [docs/errors.md](../../docs/errors.md), {ok} of {len(entries)} tests passing.**",
          "Each test runs the CLI and checks four things: exit code 2, exactly one `error:` line matching the documented",
          "message (it names the file and line, or the config field), no traceback, and no file created or changed under the",
          "working directory. `test_the_catalogue_and_its_tests_agree` "
          + ("passes" if any(c[0] == "test_the_catalogue_and_its_tests_agree" and c[1] == "passed" for c in cases) else "FAILS")
          + ": every documented id has a test, and every test a documented id.", "",
          "| entry | result |", "|---|---|"]
for name, status, t in entries:
    lines.append(f"| `{name.split('[', 1)[1].rstrip(']')}` | {status} |")
lines.append("")

# ------------------------------------------------------------------ checkpoint integrity, safety
for key, title, cmd in (("checkpoint", "3. Checkpoint integrity and a full disk", "tests/test_checkpoint_safety.py"),
                        ("safety", "4. Safety (configs are data, weights-only loading, trust_remote_code)", "tests/test_safety.py")):
    n, secs, cases = summary(key)
    lines += [f"## {title}", "", f"Command: `.venv/bin/python -m pytest {cmd}` ({n['passed']} passed, {n['failed']} failed, {secs} s)", ""]
    lines += [f"- `{name}`: {status}" for name, status, _ in cases] + [""]

# ------------------------------------------------------------------ multi-process
n, secs, cases = summary("multiprocess")
lines += ["## 5. Multi-process parity (2 CPU processes, gloo)", "",
          "Command: `LAYERKD_SLOW_TESTS=1 .venv/bin/python -m pytest tests/test_multiprocess.py` "
          f"({n['passed']} passed, {n['failed']} failed, {n['skipped']} skipped, {secs} s)", ""]
mp = json.loads((out / "multiprocess.json").read_text()) if (out / "multiprocess.json").exists() else None
if mp:
    lines += [f"Launch: `{mp['command']}`", "",
              f"Toy task, `ce`+`kd`+`rail` recipe, {mp['train_rows']} training rows, global batch {mp['global_batch']}",
              f"(the last batch of 5 splits 3 + 2), {mp['dev_rows']} dev rows in evaluation batches of {mp['eval_batch']} (3 + 2",
              "batches per process), dropout off (a 1-process and a 2-process run cannot draw the same dropout masks).", "",
              "| | 1 process | 2 processes |", "|---|---|---|",
              f"| best dev accuracy | {mp['one']['best']['accuracy']:.4f} | {mp['two']['best']['accuracy']:.4f} |",
              f"| last dev accuracy | {mp['one']['last']['accuracy']:.4f} | {mp['two']['last']['accuracy']:.4f} |",
              f"| wall seconds (1 process: in the test process; 2: incl. start-up) | {mp['one']['seconds']} | {mp['two']['seconds']} |", "",
              f"- Largest relative difference in a logged step loss over {mp['steps']} steps: {mp['max_rel_loss_diff']:.1e}.",
              f"- Dev predictions: {mp['dev_predictions']} of {mp['dev_rows']} examples, each exactly once. Agreement with the",
              f"  1-process run: {mp['dev_prediction_agreement']:.0%}.",
              "- Only the main process wrote: the same files as the 1-process run, each step logged once, one report on stdout.",
              "- The teacher cache was built once, by one process, and shared.", ""]
mr = json.loads((out / "multiprocess_resume.json").read_text()) if (out / "multiprocess_resume.json").exists() else None
if mr:
    lines += [f"2-process kill and resume (dropout on): killed at {mr['killed_at']}. It was resumed from {mr['resumed_from']}",
              "with the same launch command plus `--resume`. Final weights "
              + ("identical" if mr["weights_identical"] else "DIFFERENT")
              + f" to an uninterrupted 2-process run. Best metric {fmt(mr['metrics']['ref'])} / {fmt(mr['metrics']['resumed'])} ({mr['seconds']} s).", ""]
lines += [f"- `{name}`: {status}" for name, status, _ in cases] + [""]

# ------------------------------------------------------------------ fuzz corpus (issue 19)
n, secs, _ = summary("fuzz")
lines += ["## 6. Fuzz corpus (issue 19)", "",
          "Command: `.venv/bin/python -m pytest tests/test_fuzz_corpus.py` "
          f"({n['passed']} passed, {n['failed']} failed, {secs} s)", "",
          "Every hostile input we know of, as a careless user types it, through the CLI (in-process) of finetune, distill,",
          "evaluate, bench, report, cache, export, fit-heads, demo and `--config`: the whole bad-input catalogue of section 2",
          "plus issue 19's cases (`tests/fuzz_cases.py`: outputs over, around or at the inputs, `.` and `~` with",
          "`--overwrite`, a second writer under the lock, duplicate TSV/CSV/JSONL columns, YAML duplicate keys and alias",
          "bombs, non-finite and mistyped numbers, truncated/huge-header safetensors, huge seeds, `--columns` with",
          "`--data-dir`, repeated spec keys, zero-width text, `--resume` after the data changed, usage errors …) and inputs",
          "that are actually valid (`tests/fuzz_valid.py`). Each case runs in a fresh work directory that holds every",
          "input; every file, directory and symlink there is hashed before and after.", "",
          "- **exit 2 clean**: exit code 2, exactly one `error:` line matching the case's message, no traceback, nothing",
          "  created, changed or deleted (no output directory either);",
          "- **valid**: the documented exit code (0; 1 for a bench whose cell failed), no traceback, no `error:` line, the",
          "  result checked to be right, nothing changed outside where the case may write;",
          "- **traceback**; **silently wrong**: exit 0 where an error belongs, or a valid input's result wrong; **deleted or",
          "  changed an input**: a file or directory that was there before is gone or different; **left files behind**: a",
          "  new file outside the case's output; **other**: another exit code, or another message.", ""]
fz = [json.loads(ln) for ln in (out / "fuzz_corpus.jsonl").read_text().splitlines()] if (out / "fuzz_corpus.jsonl").exists() else []
if fz:
    kinds = ["exit 2 clean", "valid", "traceback", "silently wrong", "deleted or changed an input", "left files behind", "other"]
    count = lambda rows, k: sum(r["outcome"] == k for r in rows)  # noqa: E731
    lines += ["| tried | " + " | ".join(kinds) + " |", "|---" * (len(kinds) + 1) + "|",
              f"| {len(fz)} | " + " | ".join(str(count(fz, k)) for k in kinds) + " |", "",
              f"Traceback {count(fz, 'traceback')}, silently wrong {count(fz, 'silently wrong')}, deleted or changed an input "
              f"{count(fz, 'deleted or changed an input')} (each must be 0).", "",
              "| command | tried | exit 2 clean | valid | anything else |", "|---|---|---|---|---|"]
    for area in sorted({r["area"] for r in fz}, key=lambda a: (-sum(r["area"] == a for r in fz), a)):
        rows = [r for r in fz if r["area"] == area]
        rest = len(rows) - count(rows, "exit 2 clean") - count(rows, "valid")
        lines.append(f"| `{area}` | {len(rows)} | {count(rows, 'exit 2 clean')} | {count(rows, 'valid')} | {rest} |")
    lines += ["", "Valid inputs (each checked): " + ", ".join(f"`{r['case']}`" for r in fz if r["outcome"] == "valid") + "."]
    bad = [r for r in fz if r["outcome"] not in ("exit 2 clean", "valid")]
    if bad:
        lines += ["", "Cases that did not end as they should:", ""]
        lines += [f"- `{r['case']}` ({r['area']}): {r['outcome']}, exit {r['exit']}" for r in bad]
    lines.append("")
else:
    lines += ["(the fuzz corpus did not record its outcomes: see the test log)", ""]
dest.write_text("\n".join(lines))
print(f"wrote {dest}")
EOF
status=0
for n in kill catalogue checkpoint safety multiprocess fuzz; do [ "$(cat "$work/$n.rc")" = 0 ] || { status=1; echo "[$n] failed: see below"; tail -40 "$work/$n.log"; }; done
exit $status

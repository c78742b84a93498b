"""What the benchmarks share (``speed.py``, ``inference.py``): a fresh worker process per
measurement, and the record of the machine and the versions a table was measured with.

A *worker* is the benchmark script itself started again as ``python SCRIPT --worker SPEC.json``:
:func:`run_worker` writes the spec (a JSON object; ``spec["result"]`` is set to the file the
worker must write its JSON result to), runs the worker with stdout/stderr in ``NAME.log`` and
returns the result with the worker's wall time. Nothing a measurement loads or allocates (model
weights, allocator pools, thread pools, JIT caches) survives into the next one.

The benchmark scripts are run as files (``python benchmarks/speed.py``), not as a package; each
puts its own directory on ``sys.path`` before ``import timing``, so a test that loads a script with
``importlib`` gets the same module.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB (``ru_maxrss``; KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def set_threads(n: int | None) -> None:
    """torch intra-op threads (None: torch's default)."""
    import torch  # noqa: PLC0415

    if n:
        torch.set_num_threads(n)


def machine() -> dict:
    """CPU model, cores (logical and those this process may use) and the load when measuring began."""
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "logical_cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    try:
        info["affinity_cores"] = len(os.sched_getaffinity(0))
    except AttributeError:
        pass
    try:
        info["load_average_at_start"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    return info


def versions(packages: tuple[str, ...] = ("layerkd", "torch", "transformers", "accelerate", "numpy")) -> dict:
    """Installed versions of ``packages`` (None when absent), torch's default thread count and the GPU."""
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    out: dict = {}
    for pkg in packages:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    import torch  # noqa: PLC0415

    out["torch_threads_default"] = torch.get_num_threads()
    out["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return out


def run_worker(script: str | Path, spec: dict, work: Path, name: str) -> dict:
    """Run ``python SCRIPT --worker SPEC`` in a fresh process and return its JSON result (plus
    ``wall_seconds``); a failing worker stops the benchmark with the tail of its log."""
    spec_path = work / f"{name}.spec.json"
    spec["result"] = str(work / f"{name}.result.json")
    spec_path.write_text(json.dumps(spec))
    log_path = work / f"{name}.log"
    t0 = time.time()
    with open(log_path, "w") as log:
        proc = subprocess.run([sys.executable, str(Path(script).resolve()), "--worker", str(spec_path)],
                              stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        tail = log_path.read_text()[-3000:]
        raise SystemExit(f"worker {name} failed (exit {proc.returncode}); log {log_path}:\n{tail}")
    res = json.loads(Path(spec["result"]).read_text())
    res["wall_seconds"] = round(time.time() - t0, 1)
    return res


def fmt(x, nd: int = 2) -> str:
    """A number for a Markdown table (``—`` for None)."""
    return "—" if x is None else f"{x:.{nd}f}"


def machine_paths() -> dict[str, str]:
    """The absolute folders a report may name, as placeholders: ``${shared}``, ``${work}`` (the
    ``LAYERKD_SHARED``/``LAYERKD_WORK`` folders, default beside the checkout), ``${repo}``, ``${tmp}``."""
    repo = Path(__file__).resolve().parents[1]
    return {"shared": str(Path(os.environ.get("LAYERKD_SHARED", repo.parent / "shared")).resolve()),
            "work": str(Path(os.environ.get("LAYERKD_WORK", repo.parent / "layerkd-work")).resolve()),
            "repo": str(repo), "tmp": str(Path(tempfile.gettempdir()).resolve())}


def write_report(out: str | Path, rep: dict, markdown: str) -> None:
    """``OUT.json`` (the measurements) and ``OUT.md`` (their table) side by side; the table is printed too.
    Absolute paths of this machine are written as placeholders (:func:`machine_paths`): committed
    results name no machine's folders."""
    from layerkd.bench.suite import unsubstitute  # noqa: PLC0415

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    names = machine_paths()
    rep = unsubstitute(json.loads(json.dumps(rep, default=str)), names)
    markdown = unsubstitute(markdown, names)
    out.with_suffix(".json").write_text(json.dumps(rep, indent=1))
    out.with_suffix(".md").write_text(markdown)
    print(markdown)

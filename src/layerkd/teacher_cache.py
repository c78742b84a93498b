"""The teacher-output cache: student-independent teacher signals computed once, memory-mapped.

What is cached: final logits, pooled per-layer vectors (one entry per pooling) and pseudo-
classifier logits — everything ``kd``, ``pkd``, ``ckd``, ``alp``, ``rail``, ``universal``,
``dih`` and the heads stage read from the teacher. All-token hidden states and attention maps are
never cached (≈ 13 GB for SST-2 at width 256); recipes that need them run the teacher live.

Layout: ``<root>/teacher/<key>/`` holds ``data.npy`` (a NumPy array, opened with
``mmap_mode="r"``) and ``meta.json``. The key is a SHA-256 over the teacher's weights, config and
tokenizer (its fingerprint), the heads' weights (for head logits), the dataset's content
fingerprint, the max length, the field, the pooling and the dtype — change any of them and a new
entry is built. One entry per field, so a recipe that needs ``cls`` and ``mean`` vectors reuses
an existing ``cls`` entry and builds only ``mean`` (all missing fields in one teacher pass).

Safety: entries are built in a temporary directory and renamed into place (never read half-
written), under an exclusive file lock so concurrent processes (Accelerate ranks, parallel runs)
build once and the others wait and read; ``meta.json`` records the file size and SHA-256, checked
when an entry is opened — a truncated or corrupted entry is reported and rebuilt.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from .checkpoint import sha256_file
from .data.batching import LengthGroupedBatchSampler, collate
from .data.encoding import EncodedSplit
from .models.fingerprint import model_fingerprint, module_fingerprint
from .models.trace import Trace
from .objectives.base import Needs
from .teacher import LiveTeacher

log = logging.getLogger("layerkd")

FORMAT_VERSION = 1
CACHEABLE = ("logits", "layer_vectors", "head_logits")


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


class CachedTeacher:
    """Serves a batch's teacher Trace from memory-mapped arrays by example index."""

    def __init__(self, arrays: dict[tuple[str, str | None], np.ndarray], head_layers: tuple[int, ...]):
        self.arrays = arrays
        self.head_layers = head_layers

    def _get(self, field: str, pooling: str | None, index: np.ndarray, device) -> torch.Tensor:
        arr = self.arrays[(field, pooling)]
        return torch.from_numpy(np.ascontiguousarray(arr[index])).to(device=device, dtype=torch.float32)

    def trace(self, batch, needs: Needs) -> Trace:
        idx = batch.index.cpu().numpy()
        dev = batch.index.device
        want = needs.teacher
        return Trace(
            logits=self._get("logits", None, idx, dev) if "logits" in want else None,
            pooled={p: self._get("layer_vectors", p, idx, dev) for p in needs.teacher_poolings} if "layer_vectors" in want else {},
            head_logits=self._get("head_logits", None, idx, dev) if "head_logits" in want else None,
            head_layers=self.head_layers if "head_logits" in want else (),
            source="teacher (cache)",
        )


class TeacherCache:
    def __init__(self, root: str | Path, *, dtype: str = "fp16", max_length: int = 128):
        self.root = Path(root)
        self.dir = self.root / "teacher"
        self.dtype = {"fp16": np.float16, "fp32": np.float32}[dtype]
        self.dtype_name = dtype
        self.max_length = max_length
        self._fp_memo: dict[int, str] = {}
        self.built: list[str] = []  # keys built by this process (for reports)
        self.build_seconds = 0.0

    # ------------------------------------------------------------------ keys
    def _teacher_fp(self, model) -> str:
        k = id(model)
        if k not in self._fp_memo:
            self._fp_memo[k] = model_fingerprint(model)
        return self._fp_memo[k]

    def key(self, model, heads, data: EncodedSplit, field: str, pooling: str | None) -> tuple[str, dict]:
        meta = {
            "version": FORMAT_VERSION,
            "teacher": self._teacher_fp(model),
            "heads": module_fingerprint(heads) if field == "head_logits" and heads is not None else None,
            "data": data.fingerprint,
            "data_source": data.split.source,
            "rows": len(data),
            "max_length": data.max_length,
            "field": field,
            "pooling": pooling,
            "dtype": self.dtype_name,
        }
        ident = {k: v for k, v in meta.items() if k not in ("data_source",)}
        return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:24], meta

    # ------------------------------------------------------------------ entries
    def _open(self, key: str) -> np.ndarray | None:
        """The entry's array if it is present and intact; None if absent; rebuild-worthy → removed."""
        d = self.dir / key
        meta_path, data_path = d / "meta.json", d / "data.npy"
        if not d.exists():
            return None
        problem = None
        try:
            meta = json.loads(meta_path.read_text())
            if not data_path.exists():
                problem = "data file missing"
            elif data_path.stat().st_size != meta["bytes"]:
                problem = f"data file truncated ({data_path.stat().st_size} of {meta['bytes']} bytes)"
            elif sha256_file(data_path) != meta["sha256"]:
                problem = "checksum mismatch"
        except (OSError, ValueError, KeyError) as exc:
            problem = f"unreadable metadata ({exc.__class__.__name__})"
        if problem:
            log.warning("teacher cache entry %s is corrupted (%s); rebuilding it", key, problem)
            shutil.rmtree(d, ignore_errors=True)
            return None
        return np.load(data_path, mmap_mode="r")

    def _write(self, key: str, meta: dict, array: np.ndarray) -> None:
        final = self.dir / key
        tmp = self.dir / f".{key}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            path = tmp / "data.npy"
            np.save(path, array)
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
            meta = dict(meta, shape=list(array.shape), bytes=path.stat().st_size, sha256=sha256_file(path),
                        created=time.strftime("%Y-%m-%dT%H:%M:%S"))
            (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
            with open(tmp / "meta.json", "rb") as fh:
                os.fsync(fh.fileno())
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    # ------------------------------------------------------------------ the source
    def source(self, model, heads, data: EncodedSplit, needs: Needs, device) -> CachedTeacher:
        wanted: list[tuple[str, str | None]] = []
        if "logits" in needs.teacher:
            wanted.append(("logits", None))
        if "layer_vectors" in needs.teacher:
            wanted += [("layer_vectors", p) for p in sorted(needs.teacher_poolings)]
        if "head_logits" in needs.teacher:
            wanted.append(("head_logits", None))
        keys = {w: self.key(model, heads, data, *w) for w in wanted}
        arrays: dict[tuple[str, str | None], np.ndarray] = {}
        lock = self.dir / f".{hashlib.sha256(''.join(k for k, _ in keys.values()).encode()).hexdigest()[:16]}.lock"
        with _locked(lock):
            missing = []
            for w, (k, _) in keys.items():
                arr = self._open(k)
                if arr is None:
                    missing.append(w)
                else:
                    arrays[w] = arr
            if missing:
                built = self._build(model, heads, data, missing, device)
                for w in missing:
                    k, meta = keys[w]
                    self._write(k, meta, built[w])
                    self.built.append(k)
                    arrays[w] = self._open(k)
        return CachedTeacher(arrays, heads.layers if heads is not None else ())

    @torch.no_grad()
    def _build(self, model, heads, data: EncodedSplit, fields, device) -> dict[tuple[str, str | None], np.ndarray]:
        t0 = time.time()
        names = ", ".join(f if p is None else f"{f}:{p}" for f, p in fields)
        log.info("teacher cache: computing %s for %d rows of %s", names, len(data), data.split.source)
        live = LiveTeacher(model, heads).to(device)
        needs = Needs(teacher=frozenset(f for f, _ in fields),
                      teacher_poolings=frozenset(p for f, p in fields if p is not None))
        out: dict[tuple[str, str | None], np.ndarray] = {}
        for b in LengthGroupedBatchSampler(data.lengths, 128, shuffle=False).batches():
            batch = collate([data[i] for i in b]).to(device)
            tr = live.trace(batch, needs)
            idx = batch.index.cpu().numpy()
            for f, p in fields:
                value = {"logits": tr.logits, "head_logits": tr.head_logits}.get(f) if p is None else tr.pooled[p]
                v = value.float().cpu().numpy()
                if (f, p) not in out:
                    out[(f, p)] = np.zeros((len(data), *v.shape[1:]), dtype=self.dtype)
                out[(f, p)][idx] = v
        for k, arr in out.items():
            if not np.isfinite(arr).all():
                raise RuntimeError(f"teacher cache: {k[0]} overflows {self.dtype_name}; set cache.dtype: fp32")
        self.build_seconds += time.time() - t0
        return out

    # ------------------------------------------------------------------ management (layerkd cache ls/clear)
    def entries(self) -> list[dict]:
        rows = []
        if not self.dir.exists():
            return rows
        for d in sorted(self.dir.iterdir()):
            if not d.is_dir() or d.name.startswith("."):
                continue
            try:
                meta = json.loads((d / "meta.json").read_text())
            except (OSError, ValueError):
                meta = {}
            size = sum(f.stat().st_size for f in d.iterdir() if f.is_file())
            rows.append({"key": d.name, "bytes": size, **meta})
        return rows

    def clear(self, keys: list[str] | None = None) -> int:
        n = 0
        for e in self.entries():
            if keys is None or e["key"] in keys:
                shutil.rmtree(self.dir / e["key"], ignore_errors=True)
                n += 1
        return n

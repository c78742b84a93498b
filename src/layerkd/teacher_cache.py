"""The teacher-output cache: student-independent teacher signals computed once, memory-mapped.

What is cached: final logits, pooled per-layer vectors (one entry per pooling) and pseudo-
classifier logits — everything ``kd``, ``pkd``, ``ckd``, ``alp``, ``rail``, ``universal``,
``dih`` and the heads stage read from the teacher. All-token hidden states and attention maps are
never cached (≈ 13 GB for SST-2 at width 256); recipes that need them run the teacher live.

Layout: ``<root>/teacher/<key>/`` holds ``data.npy`` (a NumPy array, opened with
``mmap_mode="r"``) and ``meta.json``. The key is a SHA-256 over the teacher's weights, config and
tokenizer (its fingerprint), the heads' weights, layers and pooling (for head logits), the
dataset's content fingerprint *and* a hash of the exact teacher token ids of every row (which
also catches a changed column mapping, tokenizer setting or row order), the max length, the
field, the pooling and the dtype — change any of them and a new entry is built. One entry per
field, so a recipe that needs ``cls`` and ``mean`` vectors reuses an existing ``cls`` entry and
builds only ``mean`` (all missing fields in one teacher pass).

Safety: entries are built in a temporary directory and renamed into place (never read half-
written; leftovers of a crashed build are removed by the next builder), under one exclusive file
lock per entry (``filelock``, taken in key order, so overlapping recipes never deadlock) —
concurrent processes (Accelerate ranks, parallel runs) build an entry once and the others wait
and read it; ``meta.json`` records the file size and SHA-256, checked when an entry is opened — a
truncated or corrupted entry is reported and rebuilt.

What is an entry (``layerkd cache ls`` / ``clear``): a directory of ``<root>/teacher/`` whose
name is a key (24 hex digits) and whose ``meta.json`` is the cache's own metadata (it names a
cached field and the data's SHA-256). Anything else found there — a folder the user put in a
directory they passed as ``--cache-dir``, a model's ``checkpoints/`` — is never listed or
removed, only named in a warning. The cache root defaults to ``$LAYERKD_CACHE`` or
``~/.cache/layerkd`` (:func:`default_cache_dir`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import time
import weakref
from contextlib import ExitStack, contextmanager
from itertools import chain
from pathlib import Path

import numpy as np
import torch
from filelock import FileLock

from . import jsonio
from .checkpoint import sha256_file
from .data.batching import ordered_batches
from .data.encoding import EncodedSplit
from .errors import ConfigError
from .models.fingerprint import model_fingerprint, module_fingerprint
from .models.trace import Trace
from .objectives.base import Needs
from .progress import track
from .teacher import LiveTeacher

log = logging.getLogger("layerkd")

FORMAT_VERSION = 2
CACHEABLE = ("logits", "layer_vectors", "head_logits")


KEY_PATTERN = re.compile(r"[0-9a-f]{24}")


def default_cache_dir() -> Path:
    """``$LAYERKD_CACHE``, else ``~/.cache/layerkd``."""
    return Path(os.environ.get("LAYERKD_CACHE") or Path.home() / ".cache" / "layerkd")


@contextmanager
def _locked(path: Path):
    """An exclusive inter-process lock on ``path`` (blocking)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path)):
        yield


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _versions(model) -> tuple[int, ...]:
    """In-place updates of any parameter or buffer bump these counters (cheap change detection)."""
    return tuple(t._version for t in chain(model.parameters(), model.buffers()))


def inputs_fingerprint(data: EncodedSplit, role: str = "teacher") -> str:
    """SHA-256 of the exact token ids (and token types) the teacher sees, row by row."""
    fields = data.encodings[data.role_key[role]]
    h = hashlib.sha256(f"rows={len(data)}".encode())
    for name in sorted(fields):
        seqs = fields[name]
        lengths = np.fromiter((len(x) for x in seqs), dtype=np.int64, count=len(seqs))
        h.update(name.encode())
        h.update(lengths.tobytes())
        if len(seqs):
            h.update(np.concatenate(seqs).astype(np.int64, copy=False).tobytes())
    return h.hexdigest()


class CachedTeacher:
    """Serves a batch's teacher Trace from memory-mapped arrays by example index."""

    def __init__(self, arrays: dict[tuple[str, str | None], np.ndarray], head_layers: tuple[int, ...]):
        self.arrays = arrays
        self.head_layers = head_layers

    def _get(self, field: str, pooling: str | None, index: np.ndarray, device) -> torch.Tensor:
        arr = self.arrays[(field, pooling)]
        return torch.from_numpy(np.ascontiguousarray(arr[index])).to(device=device, dtype=torch.float32)

    def trace(self, batch, needs: Needs) -> Trace:
        host = getattr(batch, "host_index", None)  # the CPU copy: no device→host sync per step
        idx = (host if host is not None else batch.index.cpu()).numpy()
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
        # fingerprints memoised per live object (weak: a new model at a recycled id() is never
        # mistaken for an old one) and re-computed when a parameter was changed in place
        self._fp_memo: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._inputs_memo: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self.built: list[str] = []  # keys built by this process (for reports)
        self.build_seconds = 0.0

    # ------------------------------------------------------------------ keys
    def _teacher_fp(self, model) -> str:
        versions = _versions(model)
        hit = self._fp_memo.get(model)
        if hit is None or hit[0] != versions:
            hit = (versions, model_fingerprint(model))
            self._fp_memo[model] = hit
        return hit[1]

    def _heads_fp(self, heads) -> str:
        return module_fingerprint(heads, extra=json.dumps(heads.config_dict(), sort_keys=True))

    def _inputs_fp(self, data: EncodedSplit) -> str:
        fp = self._inputs_memo.get(data)
        if fp is None:
            fp = self._inputs_memo[data] = inputs_fingerprint(data)
        return fp

    def key(self, model, heads, data: EncodedSplit, field: str, pooling: str | None) -> tuple[str, dict]:
        meta = {
            "version": FORMAT_VERSION,
            "teacher": self._teacher_fp(model),
            "heads": self._heads_fp(heads) if field == "head_logits" and heads is not None else None,
            "data": data.fingerprint,
            "inputs": self._inputs_fp(data),
            "data_source": data.split.source,
            "split": data.split.name,
            "rows": len(data),
            "max_length": data.max_length,
            "field": field,
            "pooling": pooling,
            "dtype": self.dtype_name,
        }
        ident = {k: v for k, v in meta.items() if k not in ("data_source", "split")}
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
        arr = None
        if not problem:
            try:
                arr = np.load(data_path, mmap_mode="r")
                if list(arr.shape) != list(meta.get("shape", arr.shape)) or arr.dtype != self.dtype:
                    problem = f"unexpected array {arr.dtype}{list(arr.shape)}"
            except (OSError, ValueError) as exc:
                problem = f"unreadable array ({exc.__class__.__name__})"
        if problem:
            log.warning("teacher cache entry %s is corrupted (%s); rebuilding it", key, problem)
            arr = None
            shutil.rmtree(d, ignore_errors=True)
            return None
        return arr

    def _remove_leftovers(self, key: str) -> None:
        """Temporary directories of builds of ``key`` that died (called with the key's lock held,
        so no live builder owns them)."""
        for tmp in self.dir.glob(f".{key}.tmp-*"):
            log.info("teacher cache: removing %s left by an interrupted build", tmp.name)
            shutil.rmtree(tmp, ignore_errors=True)

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
            (tmp / "meta.json").write_text(jsonio.dumps(meta, indent=1))
            with open(tmp / "meta.json", "rb") as fh:
                os.fsync(fh.fileno())
            _fsync_dir(tmp)
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
            _fsync_dir(self.dir)
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
        with ExitStack() as stack:
            # one lock per entry, always taken in key order: two recipes sharing an entry build it
            # once, and neither can hold one lock while waiting for the other's
            for k in sorted({k for k, _ in keys.values()}):
                stack.enter_context(_locked(self.dir / f".{k}.lock"))
            missing = []
            for w, (k, _) in keys.items():
                arr = self._open(k)
                if arr is None:
                    self._remove_leftovers(k)
                    missing.append(w)
                else:
                    arrays[w] = arr
            if missing:
                t0 = time.time()
                built = self._build(model, heads, data, missing, device)
                seconds = time.time() - t0
                for w in missing:
                    k, meta = keys[w]
                    self._write(k, dict(meta, build_seconds=round(seconds, 3)), built[w])
                    self.built.append(k)
                    arr = self._open(k)
                    if arr is None:
                        raise RuntimeError(f"teacher cache: entry {k} failed its check right after being written")
                    arrays[w] = arr
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
        with track("teacher cache", len(data), unit="row") as bar:  # layerkd.progress
            for batch in ordered_batches(data, 128, device):
                tr = live.trace(batch, needs)
                idx = batch.index.cpu().numpy()
                for f, p in fields:
                    value = {"logits": tr.logits, "head_logits": tr.head_logits}.get(f) if p is None else tr.pooled[p]
                    v = value.float().cpu().numpy()
                    if (f, p) not in out:
                        out[(f, p)] = np.zeros((len(data), *v.shape[1:]), dtype=self.dtype)
                    with np.errstate(over="ignore"):  # an overflow is reported below, as one error line
                        out[(f, p)][idx] = v
                bar.update(advance=len(idx))
        for k, arr in out.items():
            if not np.isfinite(arr).all():  # a user error: the run stops before its first checkpoint
                fix = ("exceed fp16's range (±65504); set cache.dtype: fp32 or pass --no-cache" if self.dtype_name == "fp16"
                       else "are not finite (NaN or inf); check the teacher")
                raise ConfigError(f"teacher cache: the teacher's {k[0]} on {data.split.source} {fix}")
        self.build_seconds += time.time() - t0
        return out

    # ------------------------------------------------------------------ management (layerkd cache ls/clear)
    def scan(self) -> tuple[list[dict], list[Path]]:
        """(entries, strangers): the cache's entries with their metadata and size, and every other
        file or directory under ``teacher/`` that is not layerkd's (never touched; see the module
        docstring). Locks and the temporary directories of builds (``.<key>…``) are neither."""
        rows: list[dict] = []
        strangers: list[Path] = []
        if not self.dir.is_dir():
            return rows, strangers
        for d in sorted(self.dir.iterdir()):
            if d.name.startswith(".") and KEY_PATTERN.match(d.name[1:]):
                continue  # locks and the temporary directories of builds in progress
            meta = _entry_meta(d)
            if meta is None:
                strangers.append(d)
                continue
            size = sum(f.stat().st_size for f in d.iterdir() if f.is_file())
            rows.append({"key": d.name, "bytes": size, **meta})
        return rows, strangers

    def entries(self) -> list[dict]:
        return self.scan()[0]

    def clear(self, keys: list[str] | None = None) -> tuple[int, list[Path]]:
        """Remove the given entries (all if None); returns (how many, the strangers left alone).
        An unknown key is an error and nothing is removed."""
        rows, strangers = self.scan()
        if keys is not None:
            unknown = sorted(set(keys) - {e["key"] for e in rows})
            if unknown:
                raise ConfigError(f"cache clear: no entry {', '.join(unknown)} in {self.dir} "
                                  "(layerkd cache ls lists the entries)")
        n = 0
        for e in rows:
            if keys is None or e["key"] in keys:
                shutil.rmtree(self.dir / e["key"], ignore_errors=True)
                n += 1
        return n, strangers


def _entry_meta(d: Path) -> dict | None:
    """The metadata of a cache entry directory; None if ``d`` is not one."""
    if not d.is_dir() or d.is_symlink() or not KEY_PATTERN.fullmatch(d.name):
        return None
    try:
        meta = json.loads((d / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("field") not in CACHEABLE or not isinstance(meta.get("sha256"), str):
        return None
    return meta

"""What every reader returns: a :class:`Split` of :class:`Example` rows, and the checks all readers
share (file bytes, UTF-8, empty text, labels), each failing with a :class:`~layerkd.errors.DataError`
that names the file and line."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import DataError
from ..tasks import Task


@dataclass(frozen=True)
class Example:
    text_a: str
    text_b: str | None
    label: int | float | None


@dataclass
class Split:
    """The rows of one split of one task, with where they came from."""

    task: Task
    name: str
    examples: list[Example]
    source: str
    fingerprint: str
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.examples)

    @property
    def has_labels(self) -> bool:
        return bool(self.examples) and self.examples[0].label is not None

    def labels(self) -> list[int | float]:
        if not self.has_labels:
            raise DataError(f"{self.source}: split {self.name!r} has no labels")
        return [e.label for e in self.examples]  # type: ignore[misc]

    def subsample(self, n: int | None, seed: int = 0) -> Split:
        """A fixed random subset of ``n`` rows (kept in file order). ``None`` or n ≥ len: unchanged."""
        if n is None or n >= len(self.examples):
            return self
        if n <= 0:
            raise DataError(f"{self.source}: subsample size must be positive, got {n}")
        rng = random.Random(seed)
        keep = sorted(rng.sample(range(len(self.examples)), n))
        fp = hashlib.sha256(f"{self.fingerprint}:subsample:{n}:{seed}".encode()).hexdigest()
        meta = dict(self.meta, subsample={"n": n, "seed": seed, "of": len(self.examples)})
        return replace(self, examples=[self.examples[i] for i in keep], fingerprint=fp, meta=meta)


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_bytes(path: Path, what: str) -> bytes:
    if not path.exists():
        raise DataError(f"{what} not found: {path}")
    if path.is_dir():
        raise DataError(f"{what} is a directory, expected a file: {path}")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def _decode(data: bytes, path: Path) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(
            f"{path} line {line}: not valid UTF-8 (byte 0x{data[exc.start]:02x}); save the file as UTF-8"
        ) from None


def _check_text(value: str, path: Path, line: int, column: str) -> str:
    if not value.strip():
        raise DataError(f"{path} line {line}: empty text in column {column!r}")
    return value


def _label(task: Task, raw: Any, path: Path, line: int) -> int | float:
    try:
        return task.label_id(raw)
    except ValueError as exc:
        raise DataError(f"{path} line {line}: {exc}") from None

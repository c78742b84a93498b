"""What every reader returns: a :class:`Split` of :class:`Example` rows, and the checks all readers
share (file bytes, UTF-8, empty text, labels), each failing with a :class:`~layerkd.errors.DataError`
that names the file and line."""

from __future__ import annotations

import hashlib
import random
import unicodedata
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


def _invisible(ch: str) -> bool:
    """Whitespace, or a format character that renders as nothing (Unicode category Cf: zero-width
    space and joiners, word joiner, BOM, soft hyphen, direction marks). ``str.strip()`` keeps the
    latter, so a field of only zero-width characters looked non-empty."""
    return ch.isspace() or unicodedata.category(ch) == "Cf"


def _visible_text(value: str) -> str:
    return "".join(ch for ch in value if unicodedata.category(ch) != "Cf").strip()


def _check_text(value: str, path: Path, line: int, column: str) -> str:
    """A text field must have something visible: blank, whitespace-only and zero-width-only text is empty."""
    if all(_invisible(ch) for ch in value):
        raise DataError(f"{path} line {line}: empty text in column {column!r}")
    return value


def check_unique_columns(names: list[str], path: Path, line: int = 1) -> None:
    """A header (or a JSON object) that names a column twice is an error: readers would silently take
    one of the two (a run trained on the wrong labels)."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise DataError(f"{path} line {line}: column {name!r} appears twice; rename or remove one of them")
        seen.add(name)


def _label(task: Task, raw: Any, path: Path, line: int) -> int | float:
    try:
        return task.label_id(raw)
    except ValueError as exc:
        raise DataError(f"{path} line {line}: {exc}{_stray_hint(task, raw)}") from None


def _stray_hint(task: Task, raw: Any) -> str:
    """Say so when a label is valid but for stray whitespace or invisible characters (a zero-width
    space, a BOM): the repr in the message shows them, the hint names the fix."""
    if not isinstance(raw, str):
        return ""
    clean = _visible_text(raw)
    if clean == raw.strip():
        return ""
    try:
        task.label_id(clean)
    except ValueError:
        return ""
    return f"; it has stray whitespace or invisible characters: remove them to get {clean!r}"

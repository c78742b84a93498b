"""Refusing a student that cannot be allocated, before allocating it.

A ``config:layers=…,hidden=…`` student is built at whatever size it names; an absurd one
(``config:layers=100000,hidden=4096``) used to end in a ``RuntimeError`` traceback or, with
memory overcommit, in the kernel's OOM killer. :func:`check_fits_memory` estimates the float32
weights (parameters × 4 bytes) and refuses, with one line, a model whose weights alone exceed the
memory available now. Training needs more (gradients, optimizer states, activations), so passing
this check does not promise the run fits; it only turns the hopeless cases into an error.
"""

from __future__ import annotations

from typing import Any

from ..errors import ModelError

BYTES_PER_PARAM = 4  # float32 weights


def available_memory() -> int | None:
    """Bytes of memory available now (``psutil``; ``None`` when it cannot tell)."""
    try:
        import psutil  # noqa: PLC0415  (installed with accelerate)

        return int(psutil.virtual_memory().available)
    except Exception:  # noqa: BLE001 - no psutil or no /proc: skip the check rather than guess
        return None


def transformer_params(cfg: Any, *, layers: int, hidden: int, intermediate: int) -> int:
    """Parameters of a BERT-style encoder + classifier with this shape and ``cfg``'s vocabulary
    (embeddings, ``layers`` blocks of attention + feed-forward + two layer norms, pooler, head)."""
    vocab = int(getattr(cfg, "vocab_size", 30522) or 0)
    positions = int(getattr(cfg, "max_position_embeddings", 512) or 0)
    types = int(getattr(cfg, "type_vocab_size", 2) or 0)
    labels = int(getattr(cfg, "num_labels", 2) or 2)
    embeddings = (vocab + positions + types) * hidden + 2 * hidden
    block = 4 * (hidden * hidden + hidden) + 2 * hidden * intermediate + intermediate + hidden + 4 * hidden
    return embeddings + layers * block + hidden * hidden + hidden + hidden * labels + labels


def check_fits_memory(params: int, what: str, available: int | None = None) -> None:
    """Raise a :class:`ModelError` when ``params`` float32 weights exceed the available memory."""
    available = available_memory() if available is None else available
    need = params * BYTES_PER_PARAM
    if available is not None and need > available:
        raise ModelError(f"{what}: about {params:,} parameters ({need / 2**30:,.1f} GiB as float32) do not fit in "
                         f"the {available / 2**30:,.1f} GiB of memory available; choose fewer layers or a smaller width")

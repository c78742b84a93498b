"""Checking safetensors weight files before a model is built from them.

A truncated or corrupt ``model.safetensors`` (a copy cut short, a disk error, a file that only has
the name) made ``safetensors`` raise ``SafetensorError`` from deep inside ``transformers`` — a
traceback in ``evaluate`` and ``distill``. :func:`check_safetensors` opens the file the way
safetensors does (the 8-byte header length, the JSON header, every tensor's byte range inside the
file, with safetensors' own bound on the header size, so a "huge header" is refused without being
read) and turns any problem into one :class:`~layerkd.errors.ModelError` line naming the file. It
reads the header only, not the weights. Bytes flipped inside a tensor cannot be detected this way
(safetensors has no checksum); layerkd's own checkpoints carry SHA-256 manifests for that.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ModelError


def check_safetensors(path: str | Path) -> None:
    """Raise a :class:`ModelError` unless ``path`` is a well-formed safetensors file."""
    from safetensors import SafetensorError, safe_open  # noqa: PLC0415

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            fh.keys()
    except SafetensorError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{path}: not a valid safetensors file ({reason}); the file is truncated or corrupt — "
                         "copy or save the model again") from None
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc.strerror or exc}") from None


def check_weight_files(directory: str | Path) -> None:
    """Check every ``*.safetensors`` file of a model directory (sharded models have several)."""
    for f in sorted(Path(directory).glob("*.safetensors")):
        check_safetensors(f)

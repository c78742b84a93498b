"""User-facing errors.

Every mistake a user can make (a missing file, a malformed row, an unknown config key, an
impossible teacher/student pair ...) raises a :class:`LayerKDError` subclass whose message is
one line naming the file or field and what was expected. The CLI prints it as
``error: <message>`` and exits with code 2. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class LayerKDError(Exception):
    """Base class for user errors (bad input, config or model pair). CLI exit code 2."""

    def __init__(self, message: str):
        # Keep it one line: tracebacks and multi-line dumps are for bugs, not for users.
        super().__init__(" ".join(str(message).split()))


class DataError(LayerKDError):
    """A data file, split, row, column or label is missing or malformed."""


class ConfigError(LayerKDError):
    """A config file, key or value is unknown or out of range."""


class ModelError(LayerKDError):
    """A model path is not a model, or its tokenizer/labels do not match."""


class PairError(LayerKDError):
    """A method's needs cannot be met by this teacher/student pair."""


class CheckpointError(LayerKDError):
    """A checkpoint is missing, corrupted, or from another configuration."""


class NonFiniteLossError(LayerKDError):
    """A loss term became NaN or infinite during training."""

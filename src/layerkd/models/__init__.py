"""Models. Every model — a Hugging Face encoder, a BiLSTM, a CNN, a cached teacher — produces a
:class:`~layerkd.models.trace.Trace`; objectives only ever see Traces."""

from .base import ModelInfo
from .trace import Trace

__all__ = ["ModelInfo", "Trace"]

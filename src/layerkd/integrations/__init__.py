"""layerkd inside other training loops: :class:`DistillationTrainer`, a ``transformers.Trainer``
whose loss is a layerkd recipe (``docs/integrations.md``)."""

from __future__ import annotations

__all__ = ["DistillationTrainer"]


def __getattr__(name: str):
    if name == "DistillationTrainer":  # imported on first use: transformers' Trainer is slow to import
        from .hf_trainer import DistillationTrainer

        return DistillationTrainer
    raise AttributeError(name)

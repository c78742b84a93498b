"""Content fingerprints of models (weights + config + tokenizer), used to key caches."""

from __future__ import annotations

import hashlib

import torch
from torch import nn


def module_fingerprint(module: nn.Module, extra: str = "") -> str:
    """SHA-256 over every parameter and buffer (name, dtype, shape, bytes) plus ``extra``."""
    h = hashlib.sha256(extra.encode())
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        t = t.detach().cpu().contiguous()
        if t.dtype == torch.bfloat16:
            t = t.view(torch.int16)
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def model_fingerprint(model: nn.Module) -> str:
    """Weights, architecture config and tokenizer of a layerkd model."""
    cfg = getattr(model, "config", None)
    cfg_text = cfg.to_json_string(use_diff=False) if hasattr(cfg, "to_json_string") else repr(cfg)
    tok = model.info.tokenizer_fingerprint if hasattr(model, "info") else ""
    return module_fingerprint(model, extra=f"{type(model).__name__}|{cfg_text}|{tok}")

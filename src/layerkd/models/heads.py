"""Pseudo classifiers: one small linear head per chosen layer (Universal-KD, DIH).

All heads are evaluated in one batched einsum over the stacked layer vectors. Teacher heads are
fitted with the teacher frozen (the ``fit-teacher-heads`` stage) and stored beside the run
(``heads.safetensors`` + ``heads.json``); student heads belong to the objective that trains them.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .. import jsonio
from ..errors import ModelError
from .weights_check import check_safetensors


class LayerHeads(nn.Module):
    """``len(layers)`` linear classifiers on the ``pooling``-pooled vectors of ``layers``.

    ``forward(layer_vectors [B, L+1, d]) -> [B, k, C]``. Dropout is applied to the input
    vectors during training only. With ``standardize`` each layer's vector is first z-scored with
    the ``shift`` and ``scale`` buffers ([k, d]; set by :meth:`set_standardization` from training
    data, saved with the weights).
    """

    def __init__(self, layers: list[int], width: int, num_labels: int, *, pooling: str = "cls", dropout: float = 0.1,
                 standardize: bool = False):
        super().__init__()
        if not layers:
            raise ValueError("LayerHeads needs at least one layer")
        self.layers = tuple(int(i) for i in layers)
        self.width = width
        self.num_labels = num_labels
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.weight = nn.Parameter(torch.empty(len(layers), width, num_labels))
        self.bias = nn.Parameter(torch.zeros(len(layers), num_labels))
        nn.init.normal_(self.weight, std=0.02)
        self.register_buffer("_index", torch.tensor(self.layers, dtype=torch.long), persistent=False)
        self.standardize = standardize
        if standardize:
            self.register_buffer("shift", torch.zeros(len(layers), width))
            self.register_buffer("scale", torch.ones(len(layers), width))

    #: the smallest scale, relative to the dimension's mean: half precision's resolution (2**-10)
    SCALE_FLOOR_REL = 2.0 ** -10
    SCALE_FLOOR_ABS = 1e-6

    def set_standardization(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Per-layer, per-dimension training mean and std ([k, d]).

        A scale is never below ``|mean| * 2**-10`` (nor 1e-6): a spread under the half-precision
        resolution of the value is rounding, not signal. The statistics usually come from the fp16
        teacher cache while the heads' logits are later computed on the live fp32 teacher, so a
        dimension that is constant in fp16 (MiniLM's outlier dimension 99, ≈ 8–10 in layers 1–4)
        still moves by up to half a step there; divided by its zero std it produced logits of ~1e4
        (measured: STS-B students collapsed to a constant prediction). With the floor such a
        dimension stays within ±0.5 after standardising."""
        if not self.standardize:
            raise ValueError("these heads were built without standardize=True")
        self.shift.copy_(mean)
        floor = (mean.abs() * self.SCALE_FLOOR_REL).clamp_min(self.SCALE_FLOOR_ABS)
        self.scale.copy_(torch.maximum(std, floor))

    def forward(self, layer_vectors: torch.Tensor) -> torch.Tensor:
        if layer_vectors.shape[1] <= max(self.layers):
            raise ValueError(f"heads on layers {self.layers} but the model has {layer_vectors.shape[1] - 1} layers")
        x = layer_vectors.index_select(1, self._index.to(layer_vectors.device))
        if self.standardize:
            x = (x - self.shift.to(x.dtype)) / self.scale.to(x.dtype)
        x = self.dropout(x)
        return torch.einsum("bkd,kdc->bkc", x, self.weight.to(x.dtype)) + self.bias.to(x.dtype)

    # ------------------------------------------------------------------ io
    def config_dict(self) -> dict:
        return {"layers": list(self.layers), "width": self.width, "num_labels": self.num_labels,
                "pooling": self.pooling, "dropout": self.dropout.p, "standardize": self.standardize}

    def save(self, out_dir: str | Path, extra: dict | None = None) -> None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        tensors = {"weight": self.weight, "bias": self.bias}
        if self.standardize:
            tensors.update(shift=self.shift, scale=self.scale)
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(out / "heads.safetensors"))
        meta = dict(self.config_dict(), **(extra or {}))
        (out / "heads.json").write_text(jsonio.dumps(meta, indent=2))

    @classmethod
    def load(cls, path: str | Path) -> LayerHeads:
        path = Path(path)
        meta_path, weights_path = path / "heads.json", path / "heads.safetensors"
        if not meta_path.exists() or not weights_path.exists():
            raise ModelError(f"{path}: not a heads directory (expected heads.json and heads.safetensors)")
        meta = json.loads(meta_path.read_text())
        heads = cls(meta["layers"], meta["width"], meta["num_labels"], pooling=meta.get("pooling", "cls"),
                    dropout=meta.get("dropout", 0.1), standardize=bool(meta.get("standardize", False)))
        check_safetensors(weights_path)  # truncated/corrupt: one ModelError line
        state = load_file(str(weights_path))
        names = ("weight", "bias", "shift", "scale") if heads.standardize else ("weight", "bias")
        missing = [n for n in names if n not in state]
        if missing:
            raise ModelError(f"{weights_path}: no {missing[0]!r} tensor (heads.json says standardize="
                             f"{heads.standardize})")
        for n in names:
            getattr(heads, n).data.copy_(state[n])
        return heads

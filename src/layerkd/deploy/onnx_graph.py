"""Tracing a layerkd model into an ONNX graph.

The graph is the model's logits as a function of the tensors its tokenizer produces, named as in
Hugging Face (``input_ids``, ``attention_mask`` and, where the tokenizer makes them,
``token_type_ids``; output ``logits``), with the batch and sequence axes dynamic. The model is
traced in eval mode and fp32, *as layerkd runs it*: a transformer's forward hooks (``--pooling
mean``, :mod:`layerkd.models.classifier_pooling`) are part of the trace, so the graph pools as the
PyTorch model does.

Exporter: ``torchscript`` (default) is torch's tracing exporter (``torch.onnx.export(...,
dynamo=False)``): fast (well under a second for a small student), needs neither onnxscript nor
network access, and follows forward hooks. ``dynamo`` is torch's newer ``torch.export``-based
exporter (needs ``onnxscript``; roughly ten times slower here). Either way the export is checked
against PyTorch afterwards (:mod:`layerkd.deploy.export_run`), so a trace that went wrong cannot
pass silently.

The sample input of the trace always contains padding (every row gets one extra pad position),
so that no padding-dependent branch of the model (e.g. an attention mask dropped because it was
all ones) is frozen into the graph in its "no padding" form.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import torch
from torch import nn

from .runtime import ExportError

EXPORTERS = ("torchscript", "dynamo")
DEFAULT_OPSET = 17


class LogitsOnly(nn.Module):
    """``model`` as a function of positional tensors named ``names``, returning its logits."""

    def __init__(self, model: nn.Module, names: list[str]):
        super().__init__()
        self.model = model
        self.names = list(names)

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.model(dict(zip(self.names, tensors, strict=True))).logits


def sample_inputs(data, role: str = "student") -> dict[str, torch.Tensor]:
    """A two-row batch (the shortest and the longest row of ``data``, an EncodedSplit) with one
    more pad position appended to every row: the trace always sees padding."""
    lengths = data.lengths
    rows = [int(lengths.argmin()), int(lengths.argmax())] if len(lengths) > 1 else [0, 0]
    fields = data.batch(rows).inputs[role]
    pad = data.pad_ids[data.role_key[role]]
    out = {}
    for name, t in fields.items():
        value = pad if name == "input_ids" else 0
        out[name] = torch.cat([t, torch.full((t.shape[0], 1), value, dtype=t.dtype)], dim=1)
    return out


def export_onnx(model: nn.Module, sample: dict[str, torch.Tensor], path: Path, *, exporter: str = "torchscript",
                opset: int = DEFAULT_OPSET) -> None:
    """Write ``model``'s logits graph to ``path`` (see the module docstring)."""
    if exporter not in EXPORTERS:
        raise ExportError(f"--exporter {exporter!r}: expected one of {', '.join(EXPORTERS)}")
    if exporter == "dynamo":
        from .runtime import require  # noqa: PLC0415

        require("onnxscript", "--exporter dynamo")
    names = list(sample)
    wrapper = LogitsOnly(model.float().eval(), names).eval()
    axes = {n: {0: "batch", 1: "sequence"} for n in names} | {"logits": {0: "batch"}}
    kwargs = {"dynamo": exporter == "dynamo", "input_names": names, "output_names": ["logits"], "opset_version": opset}
    if exporter == "dynamo":  # torch.export's own form of the same dynamic axes
        dyn = torch.export.Dim.DYNAMIC
        kwargs.update(verbose=False, dynamic_shapes=(tuple({0: dyn, 1: dyn} for _ in names),))  # one *tensors argument
    else:
        kwargs["dynamic_axes"] = axes
    # the tracing exporter warns about its own deprecation and about traced Python values; the
    # dynamo exporter prints its progress on stdout: the verification afterwards is what counts
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(wrapper, tuple(sample[n] for n in names), str(path), **kwargs)
        except Exception as exc:  # the exporters raise many types (TorchExportError, RuntimeError, …)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ExportError(f"torch.onnx ({exporter} exporter, opset {opset}) could not export "
                              f"{getattr(model, 'name', '') or type(model).__name__}: {first[:300]}") from None
    model.eval()

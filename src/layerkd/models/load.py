"""Loading any saved layerkd model, and building students from a spec string.

Student specs (``--student``):

* a path or hub id — a pretrained model (e.g. ``../models/paraphrase-MiniLM-L3-v2``);
* ``layers:2,4,6`` — a copy of the teacher keeping those blocks (1-based);
* ``bottom:2`` — the teacher's bottom blocks (same as ``layers:1,2``);
* ``config:layers=2,hidden=256,heads=4[,intermediate=1024]`` — a fresh encoder of the teacher's
  family and tokenizer with that shape;
* ``bilstm:…`` / ``cnn:…`` — the non-transformer students (see :mod:`layerkd.models.rnn_cnn`).
"""

from __future__ import annotations

import json
from pathlib import Path

from torch import nn

from ..errors import ModelError
from ..tasks import Task
from .labels import align_labels
from .memory import check_fits_memory, transformer_params
from .transformer import TransformerClassifier, student_from_config, student_from_layers

LAYERKD_MODEL_FILE = "layerkd_model.json"


def load_model(path: str | Path, task: Task | None = None, *, trust_remote_code: bool = False,
               require_head: bool = False) -> nn.Module:
    """Load a saved model of any kind (Hugging Face encoder, BiLSTM, CNN)."""
    p = Path(str(path))
    if (p / LAYERKD_MODEL_FILE).exists():
        from .rnn_cnn import load_rnn_cnn  # noqa: PLC0415

        model = load_rnn_cnn(p)
        if task is not None and model.info.num_labels != task.num_labels:
            raise ModelError(f"{p} has {model.info.num_labels} outputs but task {task.name} needs {task.num_labels}")
        align_labels(model, task, where=str(path))  # by name, never by position when names disagree
        return model
    model = TransformerClassifier.from_pretrained(
        str(path),
        num_labels=None if task is None else task.num_labels,
        label_names=None if task is None else task.labels,
        trust_remote_code=trust_remote_code,
    )
    if require_head and not is_fine_tuned(str(path)):
        raise ModelError(f"{path} has no fine-tuned classification head; fine-tune it first (layerkd finetune)")
    align_labels(model, task, where=str(path))  # by name, never by position when names disagree
    return model


def apply_pooling(model: nn.Module, mode: str | None) -> None:
    """Set the classifier pooling of a transformer (``None``: keep the model's own)."""
    if mode is None:
        return
    if not hasattr(model, "set_pooling"):
        raise ModelError(f"pooling {mode!r}: only transformer models have a classifier pooling option; "
                         f"{model.info.kind} students pool with their own pool= option")
    model.set_pooling(mode)


def is_fine_tuned(path: str) -> bool:
    p = Path(path) / "config.json"
    if not p.exists():
        return True  # a hub id: cannot tell offline; trust the user
    cfg = json.loads(p.read_text())
    return any(str(a).endswith("ForSequenceClassification") for a in cfg.get("architectures") or [])


def _parse_kv(text: str, where: str) -> dict[str, str]:
    out = {}
    for part in filter(None, (s.strip() for s in text.split(","))):
        if "=" not in part:
            raise ModelError(f"{where}: expected key=value pairs, got {part!r}")
        k, v = (x.strip() for x in part.split("=", 1))
        if k in out:
            raise ModelError(f"{where}: {k} is given twice ({k}={out[k]} and {k}={v}); give it once")
        out[k] = v
    return out


def _int(v: str, key: str, where: str) -> int:
    try:
        value = int(v)
    except ValueError:
        raise ModelError(f"{where}: {key} must be an integer, got {v!r}") from None
    if value < 1:
        raise ModelError(f"{where}: {key} must be ≥ 1, got {value}")
    return value


def build_student(spec: str, teacher: nn.Module | None, task: Task, *, train_texts=None,
                  trust_remote_code: bool = False) -> nn.Module:
    """A student from its spec (see the module docstring)."""
    spec = spec.strip()
    kind, _, rest = spec.partition(":")
    if kind in ("layers", "bottom", "config") and teacher is None:
        raise ModelError(f"student {spec!r} is built from the teacher, but there is no teacher")
    if kind in ("layers", "bottom", "config") and not isinstance(teacher, TransformerClassifier):
        raise ModelError(f"student {spec!r}: only a transformer teacher can be cut into a student")
    if kind == "layers":
        try:
            layers = [int(x) for x in rest.split(",") if x.strip()]
        except ValueError:
            raise ModelError(f"student {spec!r}: expected layers:<comma-separated layer numbers>") from None
        return student_from_layers(teacher, layers)
    if kind == "bottom":
        k = _int(rest, "bottom", f"student {spec!r}")
        if k > teacher.num_layers:
            raise ModelError(f"student {spec!r}: the teacher has only {teacher.num_layers} layers")
        return student_from_layers(teacher, list(range(1, k + 1)))
    if kind == "config":
        kv = _parse_kv(rest, f"student {spec!r}")
        allowed = {"layers", "hidden", "heads", "intermediate"}
        bad = sorted(set(kv) - allowed)
        if bad:
            raise ModelError(f"student {spec!r}: unknown key {bad[0]!r}; expected {', '.join(sorted(allowed))}")
        if "layers" not in kv:
            raise ModelError(f"student {spec!r}: layers=N is required")
        ints = {k: _int(v, k, f"student {spec!r}") for k, v in kv.items()}
        hidden = ints.get("hidden", int(getattr(teacher.config, "hidden_size", 0) or 0))
        check_fits_memory(transformer_params(teacher.config, layers=ints["layers"], hidden=hidden,
                                             intermediate=ints.get("intermediate", 4 * hidden)), f"student {spec!r}")
        return student_from_config(teacher, layers=ints["layers"], hidden=ints.get("hidden"), heads=ints.get("heads"),
                                   intermediate=ints.get("intermediate"))
    if kind in ("bilstm", "cnn"):
        from .rnn_cnn import build_rnn_cnn  # noqa: PLC0415

        return build_rnn_cnn(kind, _parse_kv(rest, f"student {spec!r}"), task, teacher=teacher, train_texts=train_texts)
    return load_model(spec, task, trust_remote_code=trust_remote_code)

"""What ``benchmarks/speed.py`` measures: its rows, the student-side levers, the papers' model shapes
(with the randomly initialised teachers built for them) and the memory/time estimate printed
before a paper-shaped run.

**Rows.** A row is ``<base>[-live][@<lever>]``:

* ``ce`` — the student's own fine-tuning on gold labels: the floor;
* a cacheable method (``kd pkd alp rail universal universal+rail`` by default; any preset or
  ``+``-combination) — distillation reading the teacher-output cache; ``<method>-live`` runs the
  teacher live instead (``cache.enabled: false``);
* ``internal`` — internal KD (``internal-all``), whose attention maps cannot be cached;
* ``textbrewer`` — TextBrewer's ``GeneralDistiller`` running our ``pkd`` recipe on the same batches;
* ``teacher`` — the teacher's forward pass alone (inference mode, hidden states, the same batches):
  the time a free teacher could at most save per epoch, the measured side of the bounds.

**Levers** (``@bf16``, ``@foreach``, ``@fused``, ``@forloop``, ``@frozen-emb``) change only the
student's side of a row: bf16 autocast, torch's AdamW implementation (``train.optimizer_impl``) or
freezing the student's word-embedding matrix (its dense 30k × d gradient and Adam update leave the
step). They are reported in their own table next to the same row without the lever, never in the
fp32 comparison; ``benchmarks/levers.py`` measures what they cost in quality.

**Shapes** (``--shape``): randomly initialised teachers — timing depends on shapes only — saved as if
fine-tuned, with MiniLM's WordPiece vocabulary (``../shared/models/all-MiniLM-L6-v2/vocab.txt``), so
the token lengths are those of real text. ``bert-base`` (12 × 768, 12 heads, FFN 3072) with its
students BERT-2/4/6 cut from it (``bottom:2/4/6``); ``roberta-large`` (24 × 1024, 16 heads, FFN 4096,
RoBERTa's 50,265-row embedding matrix; the WordPiece ids all fall inside it) with the
DistilRoBERTa-shaped student (6 × 768, ``config:...``); ``tiny`` / ``tiny-roberta`` for ``--smoke``.
"""

from __future__ import annotations

from pathlib import Path

CACHED = ["kd", "pkd", "alp", "rail", "universal", "universal+rail"]
SPECIAL = ("ce", "internal", "textbrewer", "teacher")
ALL_ROWS = ["ce", *CACHED, *(f"{m}-live" for m in CACHED), "internal", "textbrewer", "teacher"]
LEVERS = {
    "bf16": {"precision": "bf16"},
    "foreach": {"optimizer_impl": "foreach"},
    "fused": {"optimizer_impl": "fused"},
    "forloop": {"optimizer_impl": "forloop"},
    "frozen-emb": {"freeze_embeddings": True},
}
LEVER_ROWS = ["ce@bf16", "alp@bf16", "ce@foreach", "ce@fused", "ce@frozen-emb", "alp@frozen-emb"]

SHAPES = {
    "bert-base": {"family": "bert", "layers": 12, "hidden": 768, "heads": 12, "intermediate": 3072, "vocab_size": None,
                  "students": {"BERT-2": "bottom:2", "BERT-4": "bottom:4", "BERT-6": "bottom:6"}},
    "roberta-large": {"family": "roberta", "layers": 24, "hidden": 1024, "heads": 16, "intermediate": 4096,
                      "vocab_size": 50265,
                      "students": {"DistilRoBERTa": "config:layers=6,hidden=768,heads=12,intermediate=3072"}},
    "tiny": {"family": "bert", "layers": 4, "hidden": 32, "heads": 4, "intermediate": 64, "vocab_size": None,
             "students": {"T-2": "bottom:2"}},
    "tiny-roberta": {"family": "roberta", "layers": 4, "hidden": 32, "heads": 4, "intermediate": 64, "vocab_size": None,
                     "students": {"T-2x24": "config:layers=2,hidden=24,heads=4,intermediate=48"}},
}


def parse_row(row: str) -> dict:
    """A row's spec: kind (layerkd / textbrewer / forward), method, cache, teacher label, lever."""
    name, _, lever = row.partition("@")
    if lever and lever not in LEVERS:
        raise SystemExit(f"unknown lever {lever!r} in row {row!r}; expected one of: {', '.join(LEVERS)}")
    if lever and name in ("textbrewer", "teacher"):
        raise SystemExit(f"row {row!r}: levers apply to layerkd's student rows only")
    out = {"lever": lever or None, "base_row": name, **LEVERS.get(lever, {})}
    if name == "ce":
        return {**out, "kind": "layerkd", "method": "ce", "cache": False, "teacher": "none"}
    if name == "internal":
        return {**out, "kind": "layerkd", "method": "internal-all", "cache": True, "teacher": "live (attention maps)",
                "epochs_budget": 12}
    if name == "textbrewer":
        return {**out, "kind": "textbrewer", "method": "pkd (TextBrewer GeneralDistiller)", "cache": False,
                "teacher": "live"}
    if name == "teacher":
        return {**out, "kind": "forward", "method": "teacher forward only", "cache": False, "teacher": "live (no student)"}
    live = name.endswith("-live")
    method = name[:-5] if live else name
    if not method or method in SPECIAL or not all(p.strip() for p in method.split("+")):
        raise SystemExit(f"unknown row {row!r}; expected some of: {', '.join(ALL_ROWS + LEVER_ROWS)}")
    return {**out, "kind": "layerkd", "method": method, "cache": not live,
            "teacher": "live (--no-cache)" if live else "cache"}


def student_layers(spec: str, teacher_layers: int) -> int:
    """Layers of a student spec (``bottom:K``, ``layers:a,b``, ``config:layers=K,...``)."""
    kind, _, rest = spec.partition(":")
    if kind == "bottom":
        return int(rest)
    if kind == "layers":
        return len([x for x in rest.split(",") if x.strip()])
    if kind == "config":
        return int(dict(kv.split("=", 1) for kv in rest.split(","))["layers"])
    return teacher_layers


def student_shape(spec: str, shape: dict) -> dict:
    """Layers, width and FFN of a student spec cut from (or configured beside) a teacher ``shape``."""
    kv = dict(x.split("=", 1) for x in spec.partition(":")[2].split(",")) if spec.startswith("config:") else {}
    return {"layers": student_layers(spec, shape["layers"]), "hidden": int(kv.get("hidden", shape["hidden"])),
            "intermediate": int(kv.get("intermediate", shape["intermediate"] if "hidden" not in kv else 4 * int(kv["hidden"])))}


def build_teacher(out: Path, shape_name: str, vocab: Path | None) -> Path:
    """A randomly initialised classifier of this shape, saved as if fine-tuned (seed 0)."""
    import torch  # noqa: PLC0415
    from transformers import (  # noqa: PLC0415
        BertConfig,
        BertForSequenceClassification,
        BertTokenizer,
        RobertaConfig,
        RobertaForSequenceClassification,
    )

    from layerkd import toy  # noqa: PLC0415
    from layerkd.models.transformer import _quiet_transformers  # noqa: PLC0415

    _quiet_transformers()
    shape = SHAPES[shape_name]
    out.mkdir(parents=True, exist_ok=True)
    if vocab is None:
        tok = toy.write_tokenizer(out)
    else:
        tok = BertTokenizer(str(vocab), do_lower_case=True)
        tok.save_pretrained(str(out))
    dims = {"hidden_size": shape["hidden"], "num_hidden_layers": shape["layers"], "num_attention_heads": shape["heads"],
            "intermediate_size": shape["intermediate"], "num_labels": 2, "vocab_size": shape["vocab_size"] or len(tok)}
    torch.manual_seed(0)
    if shape["family"] == "roberta":  # WordPiece ids with RoBERTa's layout: padding id 0, positions from 2;
        # two token types, since the WordPiece tokenizer marks a pair's second sentence (RoBERTa has one)
        model = RobertaForSequenceClassification(RobertaConfig(max_position_embeddings=514, pad_token_id=tok.pad_token_id,
                                                               type_vocab_size=2, **dims))
    else:
        model = BertForSequenceClassification(BertConfig(max_position_embeddings=512, **dims))
    model.save_pretrained(str(out), safe_serialization=True)
    return out


# ------------------------------------------------------------------------------ the estimate
def layer_flops(hidden: int, intermediate: int, length: int) -> float:
    """Forward FLOPs per token of one encoder block (projections, FFN, attention scores and mix)."""
    return 2 * (4 * hidden * hidden + 2 * hidden * intermediate) + 4 * length * hidden


def probe_gflops(seconds: float = 0.5) -> float:
    """This machine's fp32 matmul rate (GFLOP/s) at the threads torch uses, on BERT-sized matrices."""
    import time  # noqa: PLC0415

    import torch  # noqa: PLC0415

    a, b = torch.randn(2048, 768), torch.randn(768, 3072)
    a @ b
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        n += 1
    return n * 2 * 2048 * 768 * 3072 / (time.perf_counter() - t0) / 1e9


def estimate(shape: dict, student: dict, *, batch: int, length: int, steps: int, rows: list[str], rounds: int,
             gflops: float, available: int | None) -> dict:
    """Seconds per teacher forward / student step (every sequence at max length: an upper bound at
    the matmul rate measured), the epochs' total, and the memory one worker needs."""
    tokens = batch * length
    teacher_s = shape["layers"] * layer_flops(shape["hidden"], shape["intermediate"], length) * tokens / (gflops * 1e9)
    student_s = 3 * student["layers"] * layer_flops(student["hidden"], student["intermediate"], length) * tokens / (gflops * 1e9)
    per_row = {}
    for row in rows:
        spec = parse_row(row)
        live = spec["kind"] in ("textbrewer",) or spec["method"] == "internal-all" or (spec["kind"] == "layerkd" and
                                                                                       not spec["cache"] and spec["method"] != "ce")
        per_row[row] = steps * ({"forward": teacher_s}.get(spec["kind"], student_s + (teacher_s if live else 0.0)))
    builds = sum(steps * teacher_s for r in rows if parse_row(r)["cache"] and parse_row(r)["method"] != "internal-all")
    vocab = shape["vocab_size"] or 30522
    t_params = vocab * shape["hidden"] + shape["layers"] * (4 * shape["hidden"] ** 2 + 2 * shape["hidden"] * shape["intermediate"])
    s_params = vocab * student["hidden"] + student["layers"] * (4 * student["hidden"] ** 2 + 2 * student["hidden"] * student["intermediate"])
    # weights, gradients and Adam's two moments for the student; activations kept for backward
    # (~34·d + 5·heads·length values per token and layer, fp32); the teacher's weights and hidden states
    act = student["layers"] * tokens * (34 * student["hidden"] + 5 * shape["heads"] * length) * 4
    need = 4 * t_params + 16 * s_params + act + (shape["layers"] + 1) * tokens * shape["hidden"] * 4 + 1.5e9
    return {"gflops": round(gflops, 1), "teacher_forward_s_per_step": round(teacher_s, 3),
            "student_step_s_per_step": round(student_s, 3), "epochs_s_per_round": round(sum(per_row.values()), 1),
            "total_epochs_s": round(sum(per_row.values()) * rounds + builds, 3), "per_row_epoch_s": per_row,
            "teacher_params": t_params, "student_params": s_params, "memory_need_bytes": int(need),
            "memory_available_bytes": available}

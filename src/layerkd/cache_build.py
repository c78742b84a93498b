"""``layerkd cache build``: load a teacher once and write the cache entries that a cache-only
distillation (:mod:`layerkd.cache_only`) reads.

The splits are made exactly as ``layerkd distill`` makes them from the same data options (the
carved validation split, the training subsample), tokenised with the teacher's tokenizer at the
same max length, and keyed by the teacher's files (:func:`layerkd.cache_only.teacher_identity`).
Entries are written for the training split (what the recipe reads) and the validation split
(what the layer-attention diagnostics read). Existing entries are kept (checked, not rebuilt).
"""

from __future__ import annotations

import logging
from typing import Any

from .errors import ConfigError
from .models.pooling import POOLINGS
from .objectives.base import Needs

log = logging.getLogger("layerkd")

NEED_FIELDS = ("logits", "layer_vectors", "head_logits")


def parse_needs(text: str) -> Needs:
    """``logits,layer_vectors[:pooling],head_logits`` → :class:`Needs` (``layer_vectors`` alone: ``cls``)."""
    fields: set[str] = set()
    poolings: set[str] = set()
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        field, _, pooling = part.partition(":")
        if field not in NEED_FIELDS or (pooling and (field != "layer_vectors" or pooling not in POOLINGS[:3])):
            raise ConfigError(f"--needs: unknown need {part!r}; expected logits, layer_vectors[:cls|mean|max] or head_logits")
        fields.add(field)
        if field == "layer_vectors":
            poolings.add(pooling or "cls")
    if not fields:
        raise ConfigError("--needs: give at least one of logits, layer_vectors[:cls|mean|max], head_logits")
    return Needs(teacher=frozenset(fields), teacher_poolings=frozenset(poolings))


def build_cache(cfg, needs: Needs, *, device=None) -> list[dict[str, Any]]:
    """Write (or find) every entry of ``needs`` for the run config's training and validation splits;
    one row per entry: key, field, pooling, split, rows, and whether it was built now."""
    import torch  # noqa: PLC0415

    from .cache_only import FilesKeyedCache, teacher_identity, wanted_fields  # noqa: PLC0415
    from .data.encoding import EncodedSplit  # noqa: PLC0415
    from .models.load import load_model  # noqa: PLC0415
    from .stages.common import load_data  # noqa: PLC0415
    from .stages.distill import cache_root  # noqa: PLC0415
    from .stages.preflight import check_max_length  # noqa: PLC0415
    from .tasks import task_from_config  # noqa: PLC0415

    task = task_from_config(cfg.task)
    train, dev, _test, _extra = load_data(cfg.data, task)
    heads = None
    if "head_logits" in needs.teacher:
        if cfg.teacher.heads is None:
            raise ConfigError("--needs head_logits: give the fitted heads (--teacher-heads, from layerkd fit-heads)")
        from .models.heads import LayerHeads  # noqa: PLC0415

        heads = LayerHeads.load(cfg.teacher.heads)
    identity = teacher_identity(cfg.teacher.path, task)  # before loading: a directory without weights stops here
    teacher = load_model(cfg.teacher.path, task, trust_remote_code=cfg.trust_remote_code, require_head=True)
    check_max_length(cfg.train.max_length, "--max-length", teacher=teacher)
    teacher.cache_identity = identity
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cache = FilesKeyedCache(cache_root(cfg), dtype=cfg.cache.dtype, max_length=cfg.train.max_length)
    rows = []
    for split in (train, dev):
        data = EncodedSplit(split, {"teacher": teacher.text_encoder}, cfg.train.max_length)
        before = len(cache.built)
        cache.source(teacher, heads, data, needs, device)
        built = set(cache.built[before:])
        for field, pooling in wanted_fields(needs):
            key = cache.key(teacher, heads, data, field, pooling)[0]
            rows.append({"key": key, "field": field, "pooling": pooling, "split": split.name, "source": split.source,
                         "rows": len(data), "built": key in built})
    return rows

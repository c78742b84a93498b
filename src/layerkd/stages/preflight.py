"""Checks that need the loaded models, run before a command creates or writes anything.

A setting that can only fail once training is under way (a sentence longer than the model's
position table, half an epoch in) is refused here instead, with one line naming it:

* ``max_length`` must lie in ``train.max_length``'s range (:class:`layerkd.config.TrainConfig`,
  8 to 4096 tokens) and fit every transformer that encodes text with it: at most its position
  table (``max_position_embeddings``, or the tokenizer's ``model_max_length`` where that is
  smaller, as for RoBERTa's offset positions). BiLSTM/CNN students have no such limit.
"""

from __future__ import annotations

from ..errors import ConfigError


def length_bounds() -> tuple[int, int]:
    """``train.max_length``'s bounds, read from the config model (one source for both)."""
    from ..config import TrainConfig  # noqa: PLC0415

    lo, hi = 1, None
    for m in TrainConfig.model_fields["max_length"].metadata:
        lo = getattr(m, "ge", None) or lo
        hi = getattr(m, "le", None) or hi
    return int(lo), int(hi)


def positions_limit(model) -> int | None:
    """How many tokens ``model`` can take at once (None: no fixed limit, e.g. a BiLSTM or CNN)."""
    cfg = getattr(model, "config", None)
    n = getattr(cfg, "max_position_embeddings", None)
    if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
        return None
    if getattr(cfg, "position_embedding_type", "absolute") not in ("absolute", None):
        return None  # relative positions: no table to run past
    tok = getattr(getattr(model, "tokenizer", None), "model_max_length", None)
    if isinstance(tok, int) and 0 < tok < n:
        n = tok
    return n


def check_max_length(max_length: int, where: str, **models) -> None:
    """Refuse ``max_length`` outside its range or beyond a model's positions. ``where`` names the
    setting (``train.max_length``, ``--max-length``); ``models`` are role=model (``teacher=…``)."""
    if isinstance(max_length, bool) or not isinstance(max_length, int):
        raise ConfigError(f"{where}: expected a whole number of tokens, got {max_length!r}")
    lo, hi = length_bounds()
    if not lo <= max_length <= hi:
        raise ConfigError(f"{where} {max_length}: expected {lo} to {hi} tokens")
    for role, model in models.items():
        limit = positions_limit(model)
        if limit is not None and max_length > limit:
            name = getattr(model, "name", "") or role
            raise ConfigError(f"{where} {max_length} is beyond the {role} {name}'s {limit} positions; set it to {limit} or less")

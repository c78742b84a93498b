"""Option parsing of the non-transformer student specs (``bilstm:…`` / ``cnn:…``).

The option table per kind (parser, default) and :func:`parse_options`, which fills in defaults and
turns a bad key or value into one :class:`~layerkd.errors.ModelError` line naming the option and
what was expected. The options themselves are documented in :mod:`layerkd.models.rnn_cnn`.
"""

from __future__ import annotations

from typing import Any

from ..errors import ModelError


def _pos_int(v: str) -> int:
    x = int(v)
    if x < 1:
        raise ValueError
    return x


def _prob(v: str) -> float:
    x = float(v)
    if not 0.0 <= x < 1.0:
        raise ValueError
    return x


def _bool(v: str) -> bool:
    s = v.strip().lower()
    if s in ("true", "1", "yes", "on"):
        return True
    if s in ("false", "0", "no", "off"):
        return False
    raise ValueError


def _kernels(v: str) -> list[int]:
    ks = [_pos_int(k) for k in v.split("-")]
    if not ks:
        raise ValueError
    return ks


def _choice(*allowed: str):
    def parse(v: str) -> str:
        if v not in allowed:
            raise ValueError
        return v

    parse.expected = "one of " + "|".join(allowed)  # type: ignore[attr-defined]
    return parse


_pos_int.expected = "a positive integer"  # type: ignore[attr-defined]
_prob.expected = "a number in [0, 1)"  # type: ignore[attr-defined]
_bool.expected = "true or false"  # type: ignore[attr-defined]
_kernels.expected = "filter widths joined by '-', e.g. 3-4-5"  # type: ignore[attr-defined]

_COMMON = {
    "embed": (_pos_int, 300),
    "dropout": (_prob, 0.1),
    "pool": (_choice("max", "mean"), "max"),
    "tokenizer": (_choice("word", "teacher"), "word"),
    "init": (_choice("random", "teacher"), "random"),
    "vocab_size": (_pos_int, 30000),
    "min_freq": (_pos_int, 2),
}
OPTIONS: dict[str, dict[str, tuple[Any, Any]]] = {
    "bilstm": {"layers": (_pos_int, 2), "hidden": (_pos_int, 300), "bidirectional": (_bool, True), **_COMMON},
    "cnn": {"layers": (_pos_int, 4), "channels": (_pos_int, 300), "kernels": (_kernels, [3]), "gated": (_bool, True),
            "residual": (_bool, True), **_COMMON},
}


def parse_options(kind: str, options: dict[str, str]) -> tuple[dict[str, Any], set[str]]:
    """Resolved options (defaults filled in) and the set of keys the user gave."""
    if kind not in OPTIONS:
        raise ModelError(f"unknown student kind {kind!r}; expected bilstm or cnn")
    table = OPTIONS[kind]
    allowed = ", ".join(sorted(table))
    out = {k: (list(d) if isinstance(d, list) else d) for k, (_, d) in table.items()}
    for key, value in options.items():
        if key not in table:
            raise ModelError(f"student {kind}: unknown option {key!r}; allowed: {allowed}")
        parse = table[key][0]
        try:
            out[key] = parse(str(value).strip())
        except ValueError:
            raise ModelError(f"student {kind}: option {key}={value!r}: expected {parse.expected}") from None
    return out, set(options)

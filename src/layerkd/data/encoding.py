"""Encoding: each model tokenises with its own tokenizer, once per split.

A :class:`TextEncoder` turns (text_a, text_b) pairs into token id lists. :class:`HFTextEncoder`
wraps any Hugging Face tokenizer; the word-level encoder of the BiLSTM/CNN students lives with
those models. :class:`EncodedSplit` holds one encoding per *role* (``"student"``, ``"teacher"``);
roles whose encoders have the same fingerprint share one encoding, so a same-tokenizer pair is
tokenised once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from .batching import Batch
from .readers import Split


@runtime_checkable
class TextEncoder(Protocol):
    """What the data layer needs from a tokenizer."""

    @property
    def fingerprint(self) -> str: ...

    @property
    def pad_id(self) -> int: ...

    def encode(self, texts_a: Sequence[str], texts_b: Sequence[str] | None, max_length: int) -> dict[str, list[list[int]]]:
        """Token ids per example (key ``input_ids``; optionally ``token_type_ids``), unpadded."""
        ...


def tokenizer_fingerprint(tokenizer) -> str:
    """A stable hash of a Hugging Face tokenizer's vocabulary and normalisation settings."""
    h = hashlib.sha256(type(tokenizer).__name__.encode())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        # the serialised backend also records the truncation/padding of the *last call* (and
        # save_pretrained writes it out): those are per-call state, not part of the tokenizer
        state = json.loads(backend.to_str())
        state.pop("truncation", None)
        state.pop("padding", None)
        h.update(json.dumps(state, sort_keys=True).encode())
    else:
        h.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    for attr in ("do_lower_case", "model_max_length", "padding_side", "truncation_side"):
        h.update(f"{attr}={getattr(tokenizer, attr, None)}".encode())
    return h.hexdigest()


class HFTextEncoder:
    """A Hugging Face tokenizer as a :class:`TextEncoder`."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self._fingerprint = tokenizer_fingerprint(tokenizer)

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    @property
    def pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return 0 if pad is None else int(pad)

    def encode(self, texts_a, texts_b, max_length):
        out = self.tokenizer(
            list(texts_a),
            None if texts_b is None else list(texts_b),
            truncation=True,
            max_length=max_length,
            padding=False,
            return_attention_mask=False,
        )
        enc = {"input_ids": out["input_ids"]}
        if "token_type_ids" in out:
            enc["token_type_ids"] = out["token_type_ids"]
        return enc


def _pack(fields: dict[str, list[np.ndarray]]) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """One encoding's rows as (offsets, lengths, {field: concatenated values})."""
    lengths = np.fromiter((len(x) for x in fields["input_ids"]), dtype=np.int64, count=len(fields["input_ids"]))
    offsets = np.zeros(len(lengths), dtype=np.int64)
    if len(lengths) > 1:
        np.cumsum(lengths[:-1], out=offsets[1:])
    flat = {name: (np.concatenate(seqs).astype(np.int64, copy=False) if seqs else np.zeros(0, np.int64))
            for name, seqs in fields.items()}
    return offsets, lengths, flat


class EncodedSplit(torch.utils.data.Dataset):
    """A split tokenised once for each role's encoder.

    ``self[i]`` is a dict with the example index, its label and, per role, its unpadded token
    ids; :func:`~layerkd.data.batching.collate` pads a list of them into a
    :class:`~layerkd.data.batching.Batch`.
    """

    def __init__(self, split: Split, encoders: Mapping[str, TextEncoder], max_length: int, *, length_role: str | None = None):
        if not encoders:
            raise ValueError("EncodedSplit needs at least one encoder")
        self.split = split
        self.max_length = max_length
        self.role_key: dict[str, str] = {}
        self.pad_ids: dict[str, int] = {}
        self.encodings: dict[str, dict[str, list[np.ndarray]]] = {}
        texts_a = [e.text_a for e in split.examples]
        texts_b = [e.text_b for e in split.examples] if split.task.is_pair else None
        for role, enc in encoders.items():
            key = enc.fingerprint
            self.role_key[role] = key
            self.pad_ids[key] = enc.pad_id
            if key not in self.encodings:
                raw = enc.encode(texts_a, texts_b, max_length)
                self.encodings[key] = {name: [np.asarray(ids, dtype=np.int64) for ids in seqs] for name, seqs in raw.items()}
        role = length_role or next(iter(encoders))
        self.lengths = np.asarray([len(x) for x in self.encodings[self.role_key[role]]["input_ids"]], dtype=np.int64)
        if split.has_labels:
            dtype = torch.float32 if split.task.is_regression else torch.long
            self.labels: torch.Tensor | None = torch.tensor(split.labels(), dtype=dtype)
        else:
            self.labels = None
        self._packed: dict[str, tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]] | None = None

    @property
    def roles(self) -> list[str]:
        return list(self.role_key)

    @property
    def fingerprint(self) -> str:
        return self.split.fingerprint

    def __len__(self) -> int:
        return len(self.split)

    def batch(self, indices) -> Batch:
        """The padded batch of rows ``indices`` — the same as ``collate([self[i] for i in indices])``,
        built with array operations instead of a Python loop over the examples."""
        idx = np.asarray(indices, dtype=np.int64)
        if idx.ndim != 1 or not len(idx):
            raise ValueError("EncodedSplit.batch: expected a non-empty list of row indices")
        if self._packed is None:
            self._packed = {key: _pack(fields) for key, fields in self.encodings.items()}
        padded: dict[str, dict[str, torch.Tensor]] = {}
        for key, (offsets, lengths, flat) in self._packed.items():
            lens = lengths[idx]
            width = max(int(lens.max()), 1)
            pos = np.arange(width, dtype=np.int64)[None, :]
            valid = pos < lens[:, None]
            src = offsets[idx][:, None] + np.minimum(pos, np.maximum(lens - 1, 0)[:, None])
            out: dict[str, torch.Tensor] = {}
            for name, values in flat.items():
                fill = self.pad_ids[key] if name == "input_ids" else 0
                taken = values[np.minimum(src, max(len(values) - 1, 0))] if len(values) else np.zeros(src.shape, np.int64)
                out[name] = torch.from_numpy(np.where(valid, taken, fill).astype(np.int64, copy=False))
            out["attention_mask"] = torch.from_numpy(valid.astype(np.int64))
            padded[key] = {n: out[n] for n in ("input_ids", "attention_mask", "token_type_ids") if n in out}
        labels = None if self.labels is None else self.labels[torch.from_numpy(idx)]
        index = torch.from_numpy(idx.copy())
        return Batch(index, labels, {role: padded[key] for role, key in self.role_key.items()}, index)

    def __getitem__(self, i: int) -> dict:
        item = {"index": i, "label": None if self.labels is None else self.labels[i], "enc": {}}
        for key, fields in self.encodings.items():
            item["enc"][key] = {name: seqs[i] for name, seqs in fields.items()}
        item["role_key"] = self.role_key
        item["pad_ids"] = self.pad_ids
        return item

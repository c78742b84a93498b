"""Batches: dynamic padding and a length-grouped, deterministic batch sampler."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:  # encoding imports this module
    from .encoding import EncodedSplit


@dataclass
class Batch:
    """One padded batch. ``inputs[role]`` holds ``input_ids``, ``attention_mask`` and, when the
    tokenizer produces them, ``token_type_ids`` — each ``[B, T_role]``."""

    index: torch.Tensor
    labels: torch.Tensor | None
    inputs: dict[str, dict[str, torch.Tensor]]
    # the example indices on the CPU, kept when the batch moves to a device (the teacher cache
    # reads rows by index; asking the device for them would sync every step)
    host_index: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.index.shape[0])

    def to(self, device: torch.device | str) -> Batch:
        moved: dict[tuple[int, str], torch.Tensor] = {}
        inputs: dict[str, dict[str, torch.Tensor]] = {}
        for role, fields in self.inputs.items():
            inputs[role] = {}
            for name, t in fields.items():
                k = (id(t), name)
                if k not in moved:  # roles sharing an encoding share the moved tensor too
                    moved[k] = t.to(device, non_blocking=True)
                inputs[role][name] = moved[k]
        labels = None if self.labels is None else self.labels.to(device, non_blocking=True)
        host = self.host_index if self.host_index is not None else (self.index if self.index.device.type == "cpu" else None)
        return Batch(self.index.to(device, non_blocking=True), labels, inputs, host)


def _pad(seqs: list[np.ndarray], value: int) -> torch.Tensor:
    width = max(len(s) for s in seqs)
    out = np.full((len(seqs), width), value, dtype=np.int64)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = s
    return torch.from_numpy(out)


def collate(items: list[dict]) -> Batch:
    """Pad each encoding to the longest example in the batch (dynamic padding)."""
    role_key: dict[str, str] = items[0]["role_key"]
    pad_ids: dict[str, int] = items[0]["pad_ids"]
    padded: dict[str, dict[str, torch.Tensor]] = {}
    for key in set(role_key.values()):
        fields = items[0]["enc"][key]
        ids = [it["enc"][key]["input_ids"] for it in items]
        out = {"input_ids": _pad(ids, pad_ids[key])}
        lengths = torch.tensor([len(s) for s in ids])
        out["attention_mask"] = (torch.arange(out["input_ids"].shape[1])[None, :] < lengths[:, None]).long()
        if "token_type_ids" in fields:
            out["token_type_ids"] = _pad([it["enc"][key]["token_type_ids"] for it in items], 0)
        padded[key] = out
    labels = None
    if items[0]["label"] is not None:
        labels = torch.stack([it["label"] for it in items])
    index = torch.tensor([it["index"] for it in items], dtype=torch.long)
    return Batch(index, labels, {role: padded[key] for role, key in role_key.items()})


class LengthGroupedBatchSampler:
    """Deterministic batches for an epoch: shuffle, then group similar lengths.

    The indices are shuffled with a generator seeded by ``(seed, epoch)``, cut into "mega-batches"
    of ``batch_size × group_size`` examples, each sorted by length and cut into batches; the
    batch order is shuffled again. Padding waste falls sharply while batches stay random. The
    same (seed, epoch) always gives the same batches, which is what exact resume relies on.

    With ``num_shards > 1`` (several processes) each global batch of ``batch_size`` examples is
    split into ``num_shards`` interleaved slices and shard ``shard_index`` gets its slice, so a
    multi-process run sees the same global batches as a single process.
    """

    def __init__(
        self,
        lengths: np.ndarray,
        batch_size: int,
        *,
        seed: int = 0,
        shuffle: bool = True,
        group_by_length: bool = True,
        group_size: int = 50,
        drop_last: bool = False,
        num_shards: int = 1,
        shard_index: int = 0,
    ):
        self.lengths = np.asarray(lengths)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.shuffle = shuffle
        self.group_by_length = group_by_length
        self.group_size = group_size
        self.drop_last = drop_last
        self.num_shards = num_shards
        self.shard_index = shard_index
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def global_batches(self, epoch: int | None = None) -> list[list[int]]:
        epoch = self.epoch if epoch is None else epoch
        n = len(self.lengths)
        rng = np.random.default_rng([self.seed, epoch])
        if not self.shuffle:
            order = np.argsort(-self.lengths, kind="stable") if self.group_by_length else np.arange(n)
        else:
            order = rng.permutation(n)
            if self.group_by_length:
                mega = self.batch_size * self.group_size
                chunks = [order[i : i + mega] for i in range(0, n, mega)]
                order = np.concatenate([c[np.argsort(-self.lengths[c], kind="stable")] for c in chunks])
        batches = [order[i : i + self.batch_size].tolist() for i in range(0, n, self.batch_size)]
        # drop_last applies whether or not the order is shuffled
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        if self.shuffle and self.group_by_length:
            perm = rng.permutation(len(batches))
            batches = [batches[i] for i in perm]
        return batches

    def batches(self, epoch: int | None = None) -> list[list[int]]:
        out = self.global_batches(epoch)
        if self.num_shards > 1:
            # every shard must take the same number of steps (gradient sync would hang otherwise):
            # a global batch smaller than the number of shards is topped up by repeating its rows
            out = [(b * self.num_shards)[: max(len(b), self.num_shards)] for b in out]
            out = [b[self.shard_index :: self.num_shards] for b in out]
        return out

    def __iter__(self):
        return iter(self.batches())

    def __len__(self) -> int:
        return len(self.batches())


def ordered_batches(data: EncodedSplit, batch_size: int, device=None, *, rank: int = 0, world: int = 1) -> Iterator[Batch]:
    """Every example of ``data`` once, in length-grouped batches without shuffling, moved to
    ``device`` when one is given (for passes that only read: evaluation, statistics, the teacher
    cache, diagnostics, prediction).

    With ``world > 1`` process ``rank`` takes every ``world``-th batch, so the processes together
    still cover each row exactly once (unlike the training sampler's shards, nothing is repeated).
    Batches are built with ``EncodedSplit.batch`` (array operations; the same tensors as
    :func:`collate`)."""
    batches = LengthGroupedBatchSampler(data.lengths, batch_size, shuffle=False).batches()
    for b in batches[rank::world]:
        batch = data.batch(b)
        yield batch if device is None else batch.to(device)

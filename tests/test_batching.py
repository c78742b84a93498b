"""Encoding (EncodedSplit, HFTextEncoder), dynamic padding (collate) and LengthGroupedBatchSampler."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from layerkd import toy
from layerkd.data.batching import Batch, LengthGroupedBatchSampler, collate, ordered_batches
from layerkd.data.encoding import EncodedSplit, HFTextEncoder, TextEncoder
from layerkd.data.readers import read_file
from layerkd.tasks import task_from_config

CLS, SEP = toy.VOCAB.index("[CLS]"), toy.VOCAB.index("[SEP]")


def expected_ids(a: str, b: str | None = None) -> tuple[list[int], list[int]]:
    """Golden input_ids / token_type_ids: the toy tokenizer is word-level over toy.VOCAB."""
    ids_a = [CLS] + [toy.VOCAB.index(w) for w in a.split()] + [SEP]
    ids_b = [] if b is None else [toy.VOCAB.index(w) for w in b.split()] + [SEP]
    return ids_a + ids_b, [0] * len(ids_a) + [1] * len(ids_b)


class CountingEncoder:
    """A TextEncoder wrapper that counts encode() calls and can change the fingerprint / pad id."""

    def __init__(self, inner: TextEncoder, fingerprint: str | None = None, pad_id: int | None = None):
        self.inner, self.calls = inner, 0
        self._fingerprint = fingerprint or inner.fingerprint
        self._pad_id = inner.pad_id if pad_id is None else pad_id

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    @property
    def pad_id(self) -> int:
        return self._pad_id

    def encode(self, texts_a, texts_b, max_length):
        self.calls += 1
        return self.inner.encode(texts_a, texts_b, max_length)


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("toy-tok")
    toy.write_tokenizer(d)
    return d


def hf_encoder(tok_dir) -> HFTextEncoder:
    from transformers import BertTokenizer

    return HFTextEncoder(BertTokenizer.from_pretrained(str(tok_dir)))


@pytest.fixture(scope="module")
def pair_split(tmp_path_factory):
    train, _ = toy.write_pair_data(tmp_path_factory.mktemp("pairs"), n_train=40, n_dev=5, seed=3)
    return read_file(task_from_config(toy.TOY_PAIR_TASK), train)


@pytest.fixture(scope="module")
def single_split(tmp_path_factory):
    train, _ = toy.write_sentiment_data(tmp_path_factory.mktemp("single"), n_train=60, n_dev=5, seed=4)
    return read_file(task_from_config(toy.TOY_TASK), train)


@pytest.fixture(scope="module")
def regression_split(tmp_path_factory):
    task = task_from_config({"name": "bt-regression", "text_columns": ["sentence"], "regression": True})
    p = tmp_path_factory.mktemp("reg") / "r.tsv"
    p.write_text("sentence\tlabel\nthe movie was good\t4.5\nbad\t0.25\nthe plot is very dull\t1\n", encoding="utf-8")
    return read_file(task, p)


# ============================================================================= EncodedSplit


def test_hf_encoder_matches_the_word_level_vocabulary(tok_dir, pair_split):
    enc = hf_encoder(tok_dir)
    assert isinstance(enc, TextEncoder)
    assert enc.pad_id == toy.VOCAB.index("[PAD]")
    ex = pair_split.examples[:5]
    out = enc.encode([e.text_a for e in ex], [e.text_b for e in ex], 64)
    assert set(out) == {"input_ids", "token_type_ids"}
    for e, ids, types_ in zip(ex, out["input_ids"], out["token_type_ids"], strict=True):
        assert (ids, types_) == expected_ids(e.text_a, e.text_b)


def test_same_tokenizer_roles_are_tokenised_once_and_share_arrays(tok_dir, pair_split):
    student, teacher = CountingEncoder(hf_encoder(tok_dir)), CountingEncoder(hf_encoder(tok_dir))
    assert student.inner is not teacher.inner and student.fingerprint == teacher.fingerprint
    data = EncodedSplit(pair_split, {"student": student, "teacher": teacher}, max_length=64)
    assert student.calls + teacher.calls == 1
    assert data.roles == ["student", "teacher"]
    assert len(data.encodings) == 1
    assert data.encodings[data.role_key["student"]] is data.encodings[data.role_key["teacher"]]
    assert len(data) == len(pair_split) == 40
    for i, e in enumerate(pair_split.examples):
        ids, types_ = expected_ids(e.text_a, e.text_b)
        enc = data.encodings[data.role_key["student"]]
        assert enc["input_ids"][i].tolist() == ids and enc["token_type_ids"][i].tolist() == types_
        assert enc["input_ids"][i].dtype == np.int64
        assert data.lengths[i] == len(ids)


def test_different_fingerprints_are_tokenised_separately(tok_dir, single_split):
    a = CountingEncoder(hf_encoder(tok_dir))
    b = CountingEncoder(hf_encoder(tok_dir), fingerprint="other-tokenizer")
    data = EncodedSplit(single_split, {"student": a, "teacher": b}, max_length=8, length_role="teacher")
    assert (a.calls, b.calls) == (1, 1)
    assert len(data.encodings) == 2
    assert data.encodings[data.role_key["student"]] is not data.encodings[data.role_key["teacher"]]
    full = [len(expected_ids(e.text_a)[0]) for e in single_split.examples]
    assert max(full) > 8  # truncation is exercised
    np.testing.assert_array_equal(data.lengths, np.minimum(full, 8))


def test_encoded_split_labels_and_items(tok_dir, single_split, regression_split):
    data = EncodedSplit(single_split, {"student": hf_encoder(tok_dir)}, max_length=32)
    assert data.labels.dtype == torch.long
    assert data.labels.tolist() == single_split.labels()
    item = data[3]
    assert item["index"] == 3 and int(item["label"]) == single_split.examples[3].label
    assert item["enc"][data.role_key["student"]]["input_ids"].tolist() == expected_ids(single_split.examples[3].text_a)[0]
    reg = EncodedSplit(regression_split, {"student": hf_encoder(tok_dir)}, max_length=32)
    assert reg.labels.dtype == torch.float32
    assert reg.labels.tolist() == [4.5, 0.25, 1.0]


def test_encoded_split_needs_an_encoder(single_split):
    with pytest.raises(ValueError, match="at least one encoder"):
        EncodedSplit(single_split, {}, max_length=32)


# ============================================================================= collate


def test_collate_pads_dynamically_with_the_pad_id(tok_dir, pair_split):
    enc = CountingEncoder(hf_encoder(tok_dir), pad_id=99)  # a pad id distinct from 0 and real ids
    data = EncodedSplit(pair_split, {"student": enc}, max_length=64)
    idx = [5, 0, 17, 9]
    batch = collate([data[i] for i in idx])
    assert isinstance(batch, Batch) and len(batch) == 4
    assert batch.index.tolist() == idx and batch.index.dtype == torch.long
    inputs = batch.inputs["student"]
    lengths = [int(data.lengths[i]) for i in idx]
    width = max(lengths)
    assert width < 64  # padded to the batch's longest, not to max_length
    for name in ("input_ids", "attention_mask", "token_type_ids"):
        assert inputs[name].shape == (4, width) and inputs[name].dtype == torch.long
    for row, (i, n) in enumerate(zip(idx, lengths, strict=True)):
        ids, types_ = expected_ids(pair_split.examples[i].text_a, pair_split.examples[i].text_b)
        assert inputs["input_ids"][row].tolist() == ids + [99] * (width - n)
        assert inputs["attention_mask"][row].tolist() == [1] * n + [0] * (width - n)
        assert inputs["token_type_ids"][row].tolist() == types_ + [0] * (width - n)
    assert batch.labels.dtype == torch.long
    assert batch.labels.tolist() == [pair_split.examples[i].label for i in idx]


def test_collate_regression_labels_are_float(tok_dir, regression_split):
    data = EncodedSplit(regression_split, {"student": hf_encoder(tok_dir)}, max_length=32)
    batch = collate([data[i] for i in range(3)])
    assert batch.labels.dtype == torch.float32
    assert batch.labels.tolist() == [4.5, 0.25, 1.0]
    assert batch.inputs["student"]["input_ids"].shape == (3, 7)  # [CLS] the plot is very dull [SEP]


def test_roles_sharing_an_encoding_share_tensors(tok_dir, pair_split):
    shared = hf_encoder(tok_dir)
    other = CountingEncoder(hf_encoder(tok_dir), fingerprint="other", pad_id=7)
    data = EncodedSplit(pair_split, {"student": shared, "teacher": shared, "assistant": other}, max_length=10)
    batch = collate([data[i] for i in range(8)])
    s, t, a = batch.inputs["student"], batch.inputs["teacher"], batch.inputs["assistant"]
    assert s is t and s["input_ids"] is t["input_ids"]
    assert a is not s and a["input_ids"] is not s["input_ids"]
    assert torch.equal(a["attention_mask"], s["attention_mask"])  # same tokenizer underneath, same lengths
    moved = batch.to("cpu")
    assert moved.inputs["student"]["input_ids"] is moved.inputs["teacher"]["input_ids"]
    assert torch.equal(moved.inputs["assistant"]["input_ids"], a["input_ids"])


def test_collate_without_labels(tok_dir, tmp_path):
    task = task_from_config(toy.TOY_TASK)
    p = tmp_path / "u.tsv"
    p.write_text("sentence\nthe movie was good\nbad\n", encoding="utf-8")
    data = EncodedSplit(read_file(task, p, require_labels=False), {"student": hf_encoder(tok_dir)}, max_length=16)
    assert data.labels is None and data[0]["label"] is None
    batch = collate([data[0], data[1]])
    assert batch.labels is None
    assert batch.inputs["student"]["attention_mask"].sum(dim=1).tolist() == [6, 3]


def _assert_same_batch(a: Batch, b: Batch) -> None:
    assert torch.equal(a.index, b.index) and a.index.dtype == b.index.dtype
    assert (a.labels is None) == (b.labels is None)
    if a.labels is not None:
        assert torch.equal(a.labels, b.labels) and a.labels.dtype == b.labels.dtype
    assert a.inputs.keys() == b.inputs.keys()
    for role in a.inputs:
        assert list(a.inputs[role]) == list(b.inputs[role])
        for name, t in a.inputs[role].items():
            assert torch.equal(t, b.inputs[role][name]) and t.dtype == b.inputs[role][name].dtype, (role, name)


def test_vectorised_batch_equals_collate(tok_dir, pair_split, single_split, regression_split, tmp_path):
    """``EncodedSplit.batch`` (the training step's collate, no per-example Python loop) builds
    exactly what ``collate`` builds: pairs with token types, several encodings with their own pad
    ids, float labels, no labels."""
    other = CountingEncoder(hf_encoder(tok_dir), fingerprint="other", pad_id=7)
    cases = [
        EncodedSplit(pair_split, {"student": CountingEncoder(hf_encoder(tok_dir), pad_id=99)}, max_length=64),
        EncodedSplit(pair_split, {"student": hf_encoder(tok_dir), "teacher": hf_encoder(tok_dir), "assistant": other}, 10),
        EncodedSplit(single_split, {"student": hf_encoder(tok_dir)}, max_length=6),
        EncodedSplit(regression_split, {"student": hf_encoder(tok_dir)}, max_length=32),
    ]
    p = tmp_path / "u.tsv"
    p.write_text("sentence\nthe movie was good\nbad\n", encoding="utf-8")
    cases.append(EncodedSplit(read_file(task_from_config(toy.TOY_TASK), p, require_labels=False),
                              {"student": hf_encoder(tok_dir)}, max_length=16))
    rng = np.random.default_rng(0)
    for data in cases:
        n = len(data)
        for idx in ([0], list(range(n)), rng.permutation(n)[: max(1, n // 2)].tolist(), [n - 1, 0, n - 1]):
            _assert_same_batch(data.batch(idx), collate([data[i] for i in idx]))
    b = cases[1].batch([3, 1])
    assert b.inputs["student"] is b.inputs["teacher"]  # roles sharing an encoding share tensors
    assert torch.equal(b.host_index, b.index) and b.to("cpu").host_index is not None
    with pytest.raises(ValueError, match="non-empty"):
        cases[0].batch([])


# ============================================================================= LengthGroupedBatchSampler


def varied_lengths(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, 120, n)


def padding(batches: list[list[int]], lengths: np.ndarray) -> int:
    """Pad tokens a list of batches costs with dynamic padding."""
    return int(sum(lengths[b].max() * len(b) - lengths[b].sum() for b in batches))


def flat(batches: list[list[int]]) -> list[int]:
    return [i for b in batches for i in b]


def test_sampler_is_deterministic_per_seed_and_epoch():
    lengths = varied_lengths(500)
    a = LengthGroupedBatchSampler(lengths, 16, seed=3)
    b = LengthGroupedBatchSampler(lengths, 16, seed=3)
    assert a.batches(0) == b.batches(0) and a.batches(4) == b.batches(4)
    assert a.batches(0) != a.batches(1)  # a new epoch reshuffles
    assert a.batches(0) != LengthGroupedBatchSampler(lengths, 16, seed=4).batches(0)
    b.set_epoch(4)
    assert list(b) == a.batches(4)
    assert len(b) == len(a.batches(4))


@pytest.mark.parametrize("group_by_length", [True, False])
def test_every_index_once_per_epoch_with_correct_batch_sizes(group_by_length):
    n, bs = 1003, 32
    sampler = LengthGroupedBatchSampler(varied_lengths(n), bs, seed=1, group_by_length=group_by_length, group_size=4)
    for epoch in range(3):
        batches = sampler.batches(epoch)
        assert sorted(flat(batches)) == list(range(n))
        assert sorted(len(b) for b in batches) == [n % bs] + [bs] * (n // bs)
    assert len(sampler) == n // bs + 1


def test_drop_last_drops_the_short_batch():
    n, bs = 1003, 32
    for shuffle in (True, False):
        batches = LengthGroupedBatchSampler(varied_lengths(n), bs, shuffle=shuffle, drop_last=True).batches()
        assert [len(b) for b in batches] == [bs] * (n // bs)
        assert len(set(flat(batches))) == n - n % bs


def test_length_grouping_reduces_padding():
    lengths = varied_lengths(2000, seed=5)
    grouped = LengthGroupedBatchSampler(lengths, 32, seed=0, group_by_length=True).batches()
    plain = LengthGroupedBatchSampler(lengths, 32, seed=0, group_by_length=False).batches()
    assert padding(grouped, lengths) < padding(plain, lengths) / 5


def test_grouped_batches_are_not_in_length_order():
    """Batches stay random: the batch order is shuffled after grouping."""
    lengths = varied_lengths(2000, seed=5)
    batches = LengthGroupedBatchSampler(lengths, 32, seed=0, group_size=2).batches()
    firsts = [int(lengths[b].max()) for b in batches]
    assert firsts != sorted(firsts, reverse=True)


def test_without_shuffle_batches_are_sorted_by_length_descending():
    lengths = varied_lengths(100, seed=2)
    sampler = LengthGroupedBatchSampler(lengths, 8, shuffle=False)
    batches = sampler.batches(0)
    assert batches == sampler.batches(5)  # no randomness at all
    order = flat(batches)
    assert sorted(order) == list(range(100))
    assert all(lengths[x] >= lengths[y] for x, y in zip(order, order[1:], strict=False))
    assert order == sorted(range(100), key=lambda i: -lengths[i])  # stable: ties keep index order
    sequential = LengthGroupedBatchSampler(lengths, 8, shuffle=False, group_by_length=False).batches()
    assert sequential == [list(range(i, min(i + 8, 100))) for i in range(0, 100, 8)]


@pytest.mark.parametrize(("n", "bs", "shards"), [(161, 32, 2), (65, 16, 3), (66, 16, 3), (64, 16, 2)])
def test_shards_take_interleaved_slices_of_the_same_global_batches(n, bs, shards):
    lengths = varied_lengths(n, seed=n)
    single = LengthGroupedBatchSampler(lengths, bs, seed=9)
    per_shard = [LengthGroupedBatchSampler(lengths, bs, seed=9, num_shards=shards, shard_index=k) for k in range(shards)]
    for epoch in (0, 1):
        global_batches = single.batches(epoch)
        shard_batches = [s.batches(epoch) for s in per_shard]
        assert {len(b) for b in shard_batches} == {len(global_batches)}  # same number of steps everywhere
        for j, g in enumerate(global_batches):
            if len(g) >= shards:
                for k in range(shards):
                    assert shard_batches[k][j] == g[k::shards]
            else:  # a tiny last batch is topped up by repeating its rows, so no shard is empty
                for k in range(shards):
                    assert len(shard_batches[k][j]) >= 1 and set(shard_batches[k][j]) <= set(g)
        assert set().union(*(flat(b) for b in shard_batches)) == set(range(n))


def test_a_one_element_last_batch_gives_each_shard_that_element():
    n, bs = 161, 32  # 5 full global batches, then a batch of 1
    lengths = varied_lengths(n)
    global_batches = LengthGroupedBatchSampler(lengths, bs, seed=2).batches()
    (lonely,) = [b for b in global_batches if len(b) == 1]
    j = global_batches.index(lonely)
    s0 = LengthGroupedBatchSampler(lengths, bs, seed=2, num_shards=2, shard_index=0).batches()
    s1 = LengthGroupedBatchSampler(lengths, bs, seed=2, num_shards=2, shard_index=1).batches()
    assert len(s0) == len(s1) == 6
    assert s0[j] == s1[j] == lonely
    assert all(len(s0[i]) == len(s1[i]) == 16 for i in range(6) if i != j)


def test_tokenizer_fingerprint_ignores_per_call_truncation(tmp_path):
    from layerkd import toy
    from layerkd.data.encoding import HFTextEncoder, tokenizer_fingerprint

    tok = toy.write_tokenizer(tmp_path / "tok")
    before = tokenizer_fingerprint(tok)
    HFTextEncoder(tok).encode(["the movie was good"], None, 7)
    HFTextEncoder(tok).encode(["the movie was good"], None, 128)
    assert tokenizer_fingerprint(tok) == before
    other = toy.write_tokenizer(tmp_path / "tok2")
    (tmp_path / "tok2" / "vocab.txt").write_text("\n".join(toy.VOCAB + ["extra"]) + "\n")
    from transformers import BertTokenizer

    assert tokenizer_fingerprint(BertTokenizer(str(tmp_path / "tok2" / "vocab.txt"))) != tokenizer_fingerprint(other)


# ============================================================================= ordered_batches


@pytest.mark.parametrize("world", [1, 2, 3])
def test_ordered_batches_cover_every_row_once_across_processes(tok_dir, pair_split, world):
    data = EncodedSplit(pair_split, {"student": hf_encoder(tok_dir)}, max_length=64)
    parts = [list(ordered_batches(data, 3, rank=r, world=world)) for r in range(world)]
    rows = sorted(int(i) for part in parts for b in part for i in b.index)
    assert rows == list(range(len(data)))  # nothing repeated, nothing missing (the training shards repeat)
    expected = LengthGroupedBatchSampler(data.lengths, 3, shuffle=False).batches()
    for r, part in enumerate(parts):  # rank r takes global batches r, r + world, ...
        assert [b.index.tolist() for b in part] == expected[r::world]
    for part in parts:  # the same tensors as collate of the same rows
        for b in part:
            _assert_same_batch(b, collate([data[i] for i in b.index.tolist()]))

"""The teacher-output cache (issue 5): fingerprints, corruption, atomic and race-free builds,
cached = live losses for every cacheable method, and live-only recipes bypassing the cache.

Everything runs on the toy task with the tiny fine-tuned teacher of ``conftest.py``; the whole
file takes well under a minute on one thread.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import layerkd.teacher_cache as tc
from layerkd.data.encoding import EncodedSplit, HFTextEncoder
from layerkd.data.readers import read_file
from layerkd.methods import resolve_method
from layerkd.models.heads import LayerHeads
from layerkd.models.load import build_student, load_model
from layerkd.models.transformer import TransformerClassifier
from layerkd.objectives.base import BuildContext, Needs
from layerkd.objectives.registry import build_objective
from layerkd.recipe import build_recipe
from layerkd.teacher import LiveTeacher, TeacherProvider
from layerkd.teacher_cache import CachedTeacher, TeacherCache

ALL = Needs(teacher=frozenset({"logits", "layer_vectors", "head_logits"}), teacher_poolings=frozenset({"cls", "mean"}))
LOGITS = Needs(teacher=frozenset({"logits"}))
CLS = Needs(teacher=frozenset({"logits", "layer_vectors"}), teacher_poolings=frozenset({"cls"}))
CPU = torch.device("cpu")


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def teacher(tiny_teacher_dir, toy_task):
    return load_model(str(tiny_teacher_dir), toy_task)


@pytest.fixture(scope="module")
def train_split(toy_task, toy_data):
    return read_file(toy_task, toy_data[0], split="train")


def encode(model, split, max_length=32) -> EncodedSplit:
    enc = model.text_encoder
    return EncodedSplit(split, {"student": enc, "teacher": enc}, max_length, length_role="student")


@pytest.fixture(scope="module")
def data(teacher, train_split):
    return encode(teacher, train_split)


def make_heads(teacher, layers=(1, 2, 3), pooling="cls", seed=0, std=1.0) -> LayerHeads:
    torch.manual_seed(seed)
    h = LayerHeads(list(layers), teacher.info.hidden_size, 2, pooling=pooling)
    torch.nn.init.normal_(h.weight, std=std)  # logits of a few units, like fitted heads
    return h.eval()


@pytest.fixture(scope="module")
def heads(teacher):
    return make_heads(teacher)


def entry_dirs(root: Path) -> list[Path]:
    d = root / "teacher"
    return sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")) if d.exists() else []


def batches(data, size=64):
    from layerkd.data.batching import LengthGroupedBatchSampler

    return [data.batch(b) for b in LengthGroupedBatchSampler(data.lengths, size, seed=1).batches(0)]


# ----------------------------------------------------------------------------- fingerprint


def _variants(teacher, heads, data, train_split, toy_task, tmp_path):
    """name -> (model, heads, data, field, pooling, dtype) differing from the base in one input."""
    base = dict(model=teacher, heads=heads, data=data, field="layer_vectors", pooling="cls", dtype="fp16")

    changed_teacher = copy.deepcopy(teacher)
    with torch.no_grad():
        next(changed_teacher.parameters()).view(-1)[0] += 1e-3

    tok2 = copy.deepcopy(teacher.tokenizer)
    tok2.add_tokens(["zzzqx"])  # one more token: a different tokenizer, the same model weights
    other_tok = TransformerClassifier(teacher.hf, tok2, name="retokenised")
    data_tok2 = EncodedSplit(train_split, {"student": HFTextEncoder(tok2), "teacher": HFTextEncoder(tok2)}, 32)

    rows = Path(train_split.source).read_text().splitlines()
    text, label = rows[1].split("\t")
    rows[1] = f"{text} very\t{label}"  # one row's text changed
    edited = tmp_path / "edited.tsv"
    edited.write_text("\n".join(rows) + "\n")
    data_edited = encode(teacher, read_file(toy_task, edited, split="train"))

    return base, {
        "teacher weights": dict(base, model=changed_teacher),
        "tokenizer": dict(base, model=other_tok, data=data_tok2),
        "data file contents": dict(base, data=data_edited),
        "max length": dict(base, data=encode(teacher, train_split, max_length=8)),
        "pooling": dict(base, pooling="mean"),
        "dtype": dict(base, dtype="fp32"),
        "field": dict(base, field="logits", pooling=None),
    }


def _key(root, v) -> str:
    return TeacherCache(root, dtype=v["dtype"]).key(v["model"], v["heads"], v["data"], v["field"], v["pooling"])[0]


def test_every_input_of_the_fingerprint_changes_the_key(teacher, heads, data, train_split, toy_task, tmp_path):
    base, variants = _variants(teacher, heads, data, train_split, toy_task, tmp_path)
    k0 = _key(tmp_path, base)
    assert _key(tmp_path, base) == k0  # deterministic, also across TeacherCache objects
    keys = {name: _key(tmp_path, v) for name, v in variants.items()}
    for name, k in keys.items():
        assert k != k0, f"changing the {name} did not change the cache key"
    assert len(set(keys.values())) == len(keys)


def test_heads_are_part_of_the_head_logits_key_only(teacher, heads, data, tmp_path):
    cache = TeacherCache(tmp_path)
    k_heads = cache.key(teacher, heads, data, "head_logits", None)[0]
    for other in (make_heads(teacher, seed=1),  # weights
                  make_heads(teacher, layers=(2, 3, 4)),  # same weights, other layers
                  make_heads(teacher, pooling="mean")):  # same weights, other pooling
        assert cache.key(teacher, other, data, "head_logits", None)[0] != k_heads
        # logits and layer vectors do not depend on the heads: no needless rebuild
        assert cache.key(teacher, other, data, "logits", None)[0] == cache.key(teacher, heads, data, "logits", None)[0]


def test_in_place_weight_change_of_the_same_object_changes_the_key(teacher, data, tmp_path):
    model = copy.deepcopy(teacher)
    cache = TeacherCache(tmp_path)
    k0 = cache.key(model, None, data, "logits", None)[0]
    assert cache.key(model, None, data, "logits", None)[0] == k0  # memoised
    with torch.no_grad():
        model.hf.classifier.bias.add_(0.5)
    assert cache.key(model, None, data, "logits", None)[0] != k0


def test_same_contents_elsewhere_hit_the_same_entry(teacher, data, train_split, toy_task, tmp_path):
    copy_path = tmp_path / "moved" / "train.tsv"
    copy_path.parent.mkdir()
    shutil.copy(train_split.source, copy_path)
    moved = encode(teacher, read_file(toy_task, copy_path, split="train"))
    cache = TeacherCache(tmp_path / "c")
    assert cache.key(teacher, None, moved, "logits", None)[0] == cache.key(teacher, None, data, "logits", None)[0]


def test_hit_and_miss(teacher, heads, data, train_split, tmp_path, caplog):
    root = tmp_path / "cache"
    first = TeacherCache(root)
    with caplog.at_level(logging.INFO, logger="layerkd"):
        src = first.source(teacher, heads, data, ALL, CPU)
    assert len(first.built) == 4 and caplog.text.count("teacher cache: computing") == 1  # one teacher pass
    assert len(entry_dirs(root)) == 4
    caplog.clear()
    again = TeacherCache(root)  # a later run
    with caplog.at_level(logging.INFO, logger="layerkd"):
        src2 = again.source(teacher, heads, data, ALL, CPU)
    assert again.built == [] and "computing" not in caplog.text
    for k, arr in src.arrays.items():
        np.testing.assert_array_equal(np.asarray(arr), np.asarray(src2.arrays[k]))
    # a changed input (max length) misses and builds its own entries; the old ones stay
    short = TeacherCache(root)
    short.source(teacher, heads, encode(teacher, train_split, max_length=8), CLS, CPU)
    assert len(short.built) == 2 and len(entry_dirs(root)) == 6
    # a recipe needing a subset reuses what exists
    subset = TeacherCache(root)
    subset.source(teacher, None, data, LOGITS, CPU)
    assert subset.built == []


def test_cache_ls_and_clear(teacher, data, tmp_path, capsys):
    from clihelp import run_cli

    root = tmp_path / "cache"
    TeacherCache(root).source(teacher, None, data, CLS, CPU)
    code, out, _ = run_cli("cache", "ls", "--cache-dir", root, capsys=capsys)
    assert code == 0 and "logits" in out and "layer_vectors:cls" in out and f"rows={len(data)}" in out
    code, out, _ = run_cli("cache", "clear", "--cache-dir", root, capsys=capsys)
    assert code == 0 and "removed 2 entries" in out
    assert entry_dirs(root) == []


# ----------------------------------------------------------------------------- corruption


def _truncate(p: Path) -> None:
    size = p.stat().st_size
    with open(p, "r+b") as fh:
        fh.truncate(size - 7)


def _flip(p: Path) -> None:
    raw = bytearray(p.read_bytes())
    for i in (len(raw) // 2, len(raw) - 3):  # inside the values, not the header: np.load alone would not notice
        raw[i] ^= 0xFF
    p.write_bytes(bytes(raw))


def _bad_meta(p: Path) -> None:
    (p.parent / "meta.json").write_text("{not json")


def _no_data(p: Path) -> None:
    p.unlink()


@pytest.mark.parametrize("damage,message", [
    (_truncate, "data file truncated"),
    (_flip, "checksum mismatch"),
    (_bad_meta, "unreadable metadata"),
    (_no_data, "data file missing"),
], ids=["truncated", "flipped-bytes", "bad-meta", "missing-data"])
def test_corrupted_entry_is_detected_and_rebuilt(teacher, data, tmp_path, caplog, damage, message):
    root = tmp_path / "cache"
    good = TeacherCache(root).source(teacher, None, data, CLS, CPU)
    reference = {k: np.array(v) for k, v in good.arrays.items()}
    del good
    victim = next(d for d in entry_dirs(root) if json.loads((d / "meta.json").read_text())["field"] == "layer_vectors")
    damage(victim / "data.npy")
    cache = TeacherCache(root)
    with caplog.at_level(logging.INFO, logger="layerkd"):
        src = cache.source(teacher, None, data, CLS, CPU)
    assert f"teacher cache entry {victim.name} is corrupted ({message}" in caplog.text
    assert "rebuilding it" in caplog.text
    assert cache.built == [victim.name]  # only the damaged entry is rebuilt
    for k, v in reference.items():
        np.testing.assert_array_equal(np.asarray(src.arrays[k]), v)
    meta = json.loads((victim / "meta.json").read_text())
    assert tc.sha256_file(victim / "data.npy") == meta["sha256"]


# ----------------------------------------------------------------------------- atomic build


def _crash_in_save(monkeypatch):
    real = np.save

    def half_then_die(path, arr, *a, **k):
        real(path, arr, *a, **k)
        with open(path, "r+b") as fh:  # a half-written file, then the process "dies"
            fh.truncate(os.path.getsize(path) // 2)
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(tc.np, "save", half_then_die)


def _crash_at_commit(monkeypatch):
    def die(*a, **k):
        raise KeyboardInterrupt("killed before the rename")

    monkeypatch.setattr(tc.os, "replace", die)


@pytest.mark.parametrize("crash", [_crash_in_save, _crash_at_commit], ids=["while-writing", "before-rename"])
def test_interrupted_build_leaves_nothing_readable(teacher, data, tmp_path, monkeypatch, crash):
    root = tmp_path / "cache"
    cache = TeacherCache(root)
    key = cache.key(teacher, None, data, "logits", None)[0]
    with monkeypatch.context() as m:
        crash(m)
        with pytest.raises(KeyboardInterrupt):
            cache.source(teacher, None, data, LOGITS, CPU)
    assert entry_dirs(root) == [] and cache.entries() == []
    assert TeacherCache(root)._open(key) is None
    assert not list((root / "teacher").glob(f".{key}.tmp-*"))  # cleaned up on the way out
    # the next build succeeds
    again = TeacherCache(root)
    src = again.source(teacher, None, data, LOGITS, CPU)
    assert again.built == [key] and src.arrays[("logits", None)].shape == (len(data), 2)


def test_hard_killed_build_leaves_no_entry_and_the_next_build_cleans_up(teacher, data, tmp_path, caplog):
    """A build killed with SIGKILL (no handler runs) in the middle of writing its array."""
    root = tmp_path / "cache"
    key = TeacherCache(root).key(teacher, None, data, "logits", None)[0]
    script = f"""
import os, signal, numpy as np, torch
import layerkd.teacher_cache as tc
from layerkd import toy
from layerkd.data.encoding import EncodedSplit
from layerkd.data.readers import read_file
from layerkd.models.load import load_model
from layerkd.objectives.base import Needs
from layerkd.tasks import task_from_config
torch.set_num_threads(1)
task = task_from_config(toy.TOY_TASK)
teacher = load_model({teacher.name!r}, task)
enc = teacher.text_encoder
data = EncodedSplit(read_file(task, {data.split.source!r}, split="train"), {{"student": enc, "teacher": enc}}, 32)
real = np.save
def save_and_die(path, arr, *a, **k):
    real(path, arr, *a, **k)
    with open(path, "r+b") as fh:
        fh.truncate(os.path.getsize(path) // 3)
    os.kill(os.getpid(), signal.SIGKILL)
tc.np.save = save_and_die
tc.TeacherCache({str(root)!r}).source(teacher, None, data, Needs(teacher=frozenset({{"logits"}})), torch.device("cpu"))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr[-2000:]
    leftovers = list((root / "teacher").glob(f".{key}.tmp-*"))
    assert leftovers and entry_dirs(root) == []  # the half-written array exists only under a temporary name
    assert TeacherCache(root).entries() == [] and TeacherCache(root)._open(key) is None
    cache = TeacherCache(root)
    with caplog.at_level(logging.INFO, logger="layerkd"):
        src = cache.source(teacher, None, data, LOGITS, CPU)
    assert "left by an interrupted build" in caplog.text
    assert not list((root / "teacher").glob(f".{key}.tmp-*"))
    live = LiveTeacher(teacher)
    b = batches(data)[0]
    np.testing.assert_allclose(src.trace(b, LOGITS).logits.numpy(), live.trace(b, LOGITS).logits.numpy(), atol=2e-3)


# ----------------------------------------------------------------------------- concurrency


def test_concurrent_builders_build_once(teacher, data, tmp_path, monkeypatch):
    """Two builders at once (threads here; flock locks exclude open files, so threads contend
    exactly like processes): each entry is computed once, both get the same arrays, and two
    recipes that overlap (logits / logits + vectors) neither deadlock nor build twice."""
    root = tmp_path / "cache"
    calls: list[tuple] = []
    real_build = TeacherCache._build

    def slow_build(self, model, heads, data_, fields, device):
        calls.append(tuple(fields))
        time.sleep(0.3)  # hold the lock long enough for the other builder to arrive
        return real_build(self, model, heads, data_, fields, device)

    monkeypatch.setattr(TeacherCache, "_build", slow_build)
    results: dict[str, CachedTeacher] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(3)

    def worker(name, needs):
        try:
            start.wait()
            results[name] = TeacherCache(root).source(teacher, None, data, needs, CPU)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=a) for a in (("a", LOGITS), ("b", CLS), ("c", CLS))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and len(results) == 3
    built_fields = [f for c in calls for f in c]
    assert built_fields.count(("logits", None)) == 1 and built_fields.count(("layer_vectors", "cls")) == 1
    logits = [np.asarray(r.arrays[("logits", None)]) for r in results.values()]
    np.testing.assert_array_equal(logits[0], logits[1])
    np.testing.assert_array_equal(logits[0], logits[2])
    assert len(entry_dirs(root)) == 2


# ----------------------------------------------------------------------------- cached = live


CACHEABLE_METHODS = ["kd", "pkd", "ckd", "alp", "rail", "universal", "dih"]


@pytest.fixture(scope="module")
def student(teacher, toy_task):
    torch.manual_seed(0)
    return build_student("bottom:2", teacher, toy_task).eval()


@pytest.fixture(scope="module")
def cached_sources(teacher, heads, data, tmp_path_factory):
    root = tmp_path_factory.mktemp("cache-eq")
    return {dt: TeacherCache(root, dtype=dt).source(teacher, heads, data, ALL, CPU) for dt in ("fp16", "fp32")}


@pytest.mark.parametrize("method", CACHEABLE_METHODS)
def test_cached_and_live_teacher_give_the_same_loss(method, teacher, heads, student, data, cached_sources, toy_task):
    spec = next(o for o in resolve_method(method).recipe.objectives if o.name == method)
    ctx = BuildContext(student=student.info, teacher=teacher.info, num_labels=2, regression=False, seed=0,
                       teacher_head_layers=heads.layers)
    torch.manual_seed(0)
    obj = build_objective(spec.name, spec.options, ctx).eval()
    needs = obj.needs
    assert needs.teacher_cacheable
    live = LiveTeacher(teacher, heads)
    for batch in batches(data)[:3]:
        with torch.no_grad():
            s = student(batch.inputs["student"], hidden_states=needs.student_hidden)
            want = obj(s, live.trace(batch, needs), batch).item()
            got16 = obj(s, cached_sources["fp16"].trace(batch, needs), batch).item()
            got32 = obj(s, cached_sources["fp32"].trace(batch, needs), batch).item()
        assert want > 0
        assert got32 == pytest.approx(want, rel=1e-5, abs=1e-6), method
        assert got16 == pytest.approx(want, rel=5e-3, abs=1e-4), method  # fp16 storage: 11-bit mantissa


def test_cached_and_live_runs_log_the_same_losses(tiny_teacher_dir, toy_data, tmp_path):
    """Through the whole pipeline: ``alp`` with the cache and with ``--no-cache`` (cache.enabled
    false) train the same student on the same batches — the logged losses agree to fp16 precision."""
    from conftest import distill_config
    from layerkd.stages.distill import distill

    def losses(out, enabled):
        cfg = distill_config(tiny_teacher_dir, toy_data, "alp", out, epochs=1, cache_dir=tmp_path / "cache",
                             extra={"train": {"log_every_steps": 1}, "cache": {"enabled": enabled}})
        res = distill(cfg, progress=False)
        rows = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
        return [r["loss"] for r in rows if r["event"] == "train"], res["diagnostics"]["teacher_source"]

    cached, src_c = losses(tmp_path / "cached", True)
    live, src_l = losses(tmp_path / "live", False)
    assert {d["mode"] for d in src_c} == {"cache"} and {d["mode"] for d in src_l} == {"live"}
    train_decision = next(d for d in src_c if d["split"] == "train")
    assert train_decision["built"] and train_decision["seconds"] >= 0
    assert len(cached) == len(live) > 10
    np.testing.assert_allclose(cached, live, rtol=2e-3, atol=1e-4)


# ----------------------------------------------------------------------------- live-only and mixed recipes


class ForwardSpy:
    """Records the arguments of every teacher forward pass (and whether inference mode was on)."""

    def __init__(self, model):
        self.calls: list[dict] = []
        real = model.forward

        def forward(inputs, *, hidden_states=False, attentions=False):
            self.calls.append({"hidden_states": hidden_states, "attentions": attentions,
                               "inference_mode": torch.is_inference_mode_enabled()})
            return real(inputs, hidden_states=hidden_states, attentions=attentions)

        model.forward = forward


@pytest.fixture
def fresh_teacher(tiny_teacher_dir, toy_task):
    """A teacher of its own (attention recipes switch it to eager attention)."""
    return load_model(str(tiny_teacher_dir), toy_task)


def _recipe(method, teacher, student, heads=None, epochs=4):
    ctx = BuildContext(student=student.info, teacher=teacher.info, num_labels=2, regression=False, seed=0,
                       teacher_head_layers=heads.layers if heads is not None else ())
    return build_recipe(resolve_method(method).recipe, ctx, epochs)


@pytest.mark.parametrize("method", ["tinybert", "internal-all"])
def test_attention_recipe_bypasses_the_cache(method, fresh_teacher, student, data, tmp_path):
    recipe = _recipe(method, fresh_teacher, student)
    needs = recipe.needs(0)
    assert "attentions" in needs.teacher and not needs.teacher_cacheable
    spy = ForwardSpy(fresh_teacher)
    provider = TeacherProvider(fresh_teacher, cache=TeacherCache(tmp_path / "cache"))
    src = provider.source(needs, CPU, data)
    assert isinstance(src, LiveTeacher)
    tr = src.trace(batches(data)[0], needs)
    assert tr.attentions and len(tr.attentions) == fresh_teacher.num_layers
    assert spy.calls == [{"hidden_states": True, "attentions": True, "inference_mode": True}]
    assert provider.decisions[0]["mode"] == "live"
    assert not (tmp_path / "cache" / "teacher").exists()  # nothing built, nothing written


def test_mixed_recipe_runs_live_only_what_it_must(fresh_teacher, student, data, tmp_path):
    """Internal KD (stacked): its attention stages run the teacher live, its final soft-label phase
    reads the cache — and a live pass asks the model only for what the phase compares."""
    recipe = _recipe("internal", fresh_teacher, student)
    cache = TeacherCache(tmp_path / "cache")
    provider = TeacherProvider(fresh_teacher, cache=cache)
    spy = ForwardSpy(fresh_teacher)
    batch = batches(data)[0]
    modes = []
    for i in range(len(recipe.phases)):
        needs = recipe.needs(i)
        src = provider.source(needs, CPU, data)
        modes.append("live" if isinstance(src, LiveTeacher) else "cache")
        src.trace(batch, needs)
    assert modes[:-1] == ["live"] * (len(recipe.phases) - 1) and modes[-1] == "cache"
    assert len(cache.built) == 1 and json.loads((entry_dirs(tmp_path / "cache")[0] / "meta.json").read_text())["field"] == "logits"
    n_calls = len(spy.calls)
    for _ in range(3):  # the cached phase never runs the teacher again
        provider.source(recipe.needs(len(recipe.phases) - 1), CPU, data).trace(batch, recipe.needs(len(recipe.phases) - 1))
    assert len(spy.calls) == n_calls
    assert all(c["inference_mode"] for c in spy.calls)

    # a live pass requests hidden states / attention maps only when the phase needs them
    live = LiveTeacher(fresh_teacher)
    spy.calls.clear()
    live.trace(batch, LOGITS)
    live.trace(batch, CLS)
    live.trace(batch, Needs(teacher=frozenset({"logits", "attentions"})))
    live.trace(batch, Needs(teacher=frozenset({"hidden_states"})))
    assert [(c["hidden_states"], c["attentions"]) for c in spy.calls] == [
        (False, False), (True, False), (False, True), (True, False)]


def test_live_teacher_outputs_are_plain_tensors(teacher, heads, data):
    """Made under inference mode but usable in autograd: a loss on them backpropagates into the student."""
    live = LiveTeacher(teacher, heads)
    tr = live.trace(batches(data)[0], ALL)
    for t in (tr.logits, tr.pooled["cls"], tr.pooled["mean"], tr.head_logits):
        assert not t.is_inference() and not t.requires_grad
    w = torch.zeros(tr.logits.shape[1], requires_grad=True)
    ((tr.logits * w).sum() + (tr.head_logits * w).sum()).backward()
    assert w.grad is not None

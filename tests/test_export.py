"""``layerkd export`` (ONNX, verified against PyTorch, int8) and ``layerkd evaluate`` on an export.

Tiny runs (a 4-layer 32-wide BERT fine-tuned for one epoch with [CLS] and with mean classifier
pooling; a BiLSTM and a CNN distilled from it) are exported; the export must reproduce PyTorch's
logits within the tolerance on the run's dev rows and score the same metric through onnxruntime.
Skipped cleanly when the ``onnx`` extra (onnx, onnxruntime) is not installed.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from clihelp import assert_user_error, run_cli  # noqa: E402
from conftest import distill_config  # noqa: E402
from layerkd import toy  # noqa: E402
from layerkd.config import validate_run_config  # noqa: E402
from layerkd.deploy import DEFAULT_TOLERANCE  # noqa: E402
from layerkd.deploy import runtime as rt  # noqa: E402
from layerkd.deploy.export_run import export_run  # noqa: E402
from layerkd.errors import ConfigError  # noqa: E402
from layerkd.stages.evaluate import evaluate_model  # noqa: E402

EPOCH = {"epochs": 1, "lr": 2e-3, "batch_size": 16, "max_length": 32, "seed": 0, "warmup_ratio": 0.0}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, toy_data, tiny_bert_dir):
    """name -> run directory: transformer students with cls and mean pooling, a BiLSTM and a CNN."""
    from layerkd.stages.distill import distill
    from layerkd.stages.finetune import finetune

    root = tmp_path_factory.mktemp("export-runs")
    train, dev = toy_data
    out = {}
    for pooling in ("cls", "mean"):
        out[pooling] = root / pooling
        finetune(validate_run_config({
            "task": toy.TOY_TASK, "data": {"train_file": str(train), "dev_file": str(dev), "train_subsample": 96},
            "model": str(tiny_bert_dir), "train": EPOCH, "output_dir": str(out[pooling]), "pooling": pooling,
        }), progress=False)
    for kind, spec in (("bilstm", "bilstm:layers=1,hidden=16,embed=16"), ("cnn", "cnn:layers=2,channels=16,embed=16,kernels=3-4")):
        out[kind] = root / kind
        cfg = distill_config(out["cls"], toy_data, "kd", out[kind], student=spec, epochs=1,
                             extra={"data": {"train_subsample": 96}})
        distill(cfg, progress=False)
    return out


def _dev_logits(run_dir, dev):
    """PyTorch logits of the saved run on the dev file (row order), as layerkd evaluates it."""
    from layerkd.data.encoding import EncodedSplit
    from layerkd.data.readers import read_file
    from layerkd.models.load import load_model
    from layerkd.stages.evaluate import predict
    from layerkd.tasks import task_from_config

    task = task_from_config(toy.TOY_TASK)
    model = load_model(run_dir, task)
    data = read_file(task, dev, None, split="dev")
    return model, predict(model, EncodedSplit(data, {"student": model.text_encoder}, 32))


@pytest.mark.parametrize("kind", ["cls", "mean", "bilstm", "cnn"])
def test_export_matches_pytorch(kind, runs, toy_data, tmp_path):
    out = tmp_path / "onnx"
    meta = export_run(runs[kind], output=out)
    v = meta["verification"]
    assert v["passed"] and v["rows"] == 200 and 0 <= v["max_abs_diff"] <= DEFAULT_TOLERANCE
    assert v["metrics"]["onnx"] == v["metrics"]["pytorch"]
    assert meta["kind"] == ("transformer" if kind in ("cls", "mean") else kind) and meta["max_length"] == 32
    assert meta["tokenizer"] == ("hf" if kind in ("cls", "mean") else "word")
    assert {"input_ids", "attention_mask"} <= set(meta["inputs"])
    on_disk = json.loads((out / rt.EXPORT_FILE).read_text())
    assert on_disk["verification"]["max_abs_diff"] == v["max_abs_diff"] and on_disk["versions"]["onnxruntime"]
    assert sorted(p.name for p in runs[kind].iterdir() if p.name.startswith(".layerkd-export")) == []  # no temp left
    # independently of the export's own check: the graph's logits on the dev file, row by row
    _, ref = _dev_logits(runs[kind], toy_data[1])
    res = evaluate_model(str(out), _toy_task(), file=str(toy_data[1]))
    assert res["runtime"] == "onnxruntime" and res["max_length"] == 32
    got = _onnx_logits(out / rt.MODEL_FILE, out, toy_data[1])
    assert np.abs(got - ref).max() <= DEFAULT_TOLERANCE


def _toy_task():
    from layerkd.tasks import task_from_config

    return task_from_config(toy.TOY_TASK)


def _onnx_logits(onnx_file, export_dir, dev):
    from layerkd.data.encoding import EncodedSplit
    from layerkd.data.readers import read_file

    meta = rt.read_meta(export_dir)
    data = read_file(_toy_task(), dev, None, split="dev")
    return rt.predict(rt.session(onnx_file), EncodedSplit(data, {"student": rt.text_encoder(export_dir, meta)}, 32))


def test_mean_pooling_is_in_the_graph(runs, toy_data, tmp_path):
    """The mean-pooled student's graph pools like the hooks do: its logits match the mean model
    and differ from the same weights read through [CLS]."""
    export_run(runs["mean"], output=tmp_path / "onnx")
    model, mean_ref = _dev_logits(runs["mean"], toy_data[1])
    assert model.pooling == "mean"
    from layerkd.data.encoding import EncodedSplit
    from layerkd.data.readers import read_file
    from layerkd.stages.evaluate import predict

    model.set_pooling("cls")
    data = read_file(_toy_task(), toy_data[1], None, split="dev")
    cls_ref = predict(model, EncodedSplit(data, {"student": model.text_encoder}, 32))
    got = _onnx_logits(tmp_path / "onnx" / rt.MODEL_FILE, tmp_path / "onnx", toy_data[1])
    assert np.abs(mean_ref - cls_ref).max() > 100 * DEFAULT_TOLERANCE  # the pooling matters for these weights
    assert np.abs(got - mean_ref).max() <= DEFAULT_TOLERANCE


@pytest.mark.parametrize("kind", ["cls", "bilstm"])
def test_int8_export_reports_its_metric_change(kind, runs, toy_data, tmp_path):
    out = tmp_path / "onnx"
    meta = export_run(runs[kind], output=out, quantize="int8")
    v, sizes = meta["verification"], meta["sizes"]
    q = v["int8"]
    assert (out / rt.INT8_FILE).is_file() and meta["files"]["int8"] == rt.INT8_FILE
    assert 0 < sizes[rt.INT8_FILE] < sizes[rt.MODEL_FILE] == (out / rt.MODEL_FILE).stat().st_size
    assert q["metric_change"]["accuracy"] == pytest.approx(v["metrics"]["onnx_int8"]["accuracy"] - v["metrics"]["onnx"]["accuracy"])
    assert 0 < q["max_abs_diff_vs_fp32"] < 1.0 and 0 <= q["argmax_agreement_vs_fp32"] <= 1
    # the int8 file scores through `layerkd evaluate` exactly as the export reported
    res = evaluate_model(str(out / rt.INT8_FILE), _toy_task(), file=str(toy_data[1]))
    assert res["onnx_file"] == rt.INT8_FILE and res["accuracy"] == v["metrics"]["onnx_int8"]["accuracy"]


def test_evaluate_export_equals_pytorch_metric(runs, toy_data, tmp_path, capsys):
    """Through the CLI: export, then `layerkd evaluate` on the export and on the run agree."""
    out = tmp_path / "onnx"
    code, stdout, err = run_cli("export", runs["cls"], "--output", out, capsys=capsys)
    assert code == 0, err
    assert "verified on 200 rows" in stdout and f"report: {out / 'export.json'}" in stdout
    torch_res = evaluate_model(str(runs["cls"]), _toy_task(), file=str(toy_data[1]), max_length=32)
    onnx_res = evaluate_model(str(out), _toy_task(), file=str(toy_data[1]))
    assert onnx_res["rows"] == torch_res["rows"] == 200
    assert abs(onnx_res["accuracy"] - torch_res["accuracy"]) <= 1e-9


def test_parity_failure_writes_nothing(runs, tmp_path, monkeypatch):
    """A graph whose logits drift beyond the tolerance is refused with one line; nothing is written."""
    real = rt.predict
    monkeypatch.setattr(rt, "predict", lambda *a, **k: real(*a, **k) + 10 * DEFAULT_TOLERANCE)
    before = sorted(p.name for p in runs["cnn"].iterdir())
    with pytest.raises(rt.ExportError, match=r"differ from PyTorch's by up to 0\.001 on 200 rows .* beyond the tolerance "
                                             r"0\.0001 \(--tolerance\); nothing was written"):
        export_run(runs["cnn"])
    assert sorted(p.name for p in runs["cnn"].iterdir()) == before  # no onnx/, no temporary directory


def test_tolerance_zero_is_exact(runs, tmp_path, monkeypatch):
    """--tolerance 0 demands bit-identical logits; the comparison itself is exact."""
    real = rt.predict
    monkeypatch.setattr(rt, "predict", lambda *a, **k: np.nextafter(real(*a, **k), np.float32(np.inf)))
    with pytest.raises(rt.ExportError, match=r"beyond the tolerance 0 "):
        export_run(runs["cnn"], output=tmp_path / "x", tolerance=0.0)
    assert not (tmp_path / "x").exists()


def test_output_rules(runs, tmp_path, toy_data):
    with pytest.raises(ConfigError, match="is the dev file"):  # never over (or inside) the data
        export_run(runs["cnn"], output=toy_data[1])
    out = tmp_path / "onnx"
    export_run(runs["cnn"], output=out)
    with pytest.raises(ConfigError, match="already holds an export; pass --overwrite"):
        export_run(runs["cnn"], output=out)
    first = (out / rt.EXPORT_FILE).read_text()
    export_run(runs["cnn"], output=out, overwrite=True)
    assert json.loads((out / rt.EXPORT_FILE).read_text())["format"] == json.loads(first)["format"]
    with pytest.raises(ConfigError, match="is the run directory"):
        export_run(runs["cnn"], output=runs["cnn"])
    with pytest.raises(ConfigError, match="contains the run directory"):
        export_run(runs["cnn"], output=runs["cnn"].parent)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="was not made by layerkd"):
        export_run(runs["cnn"], output=foreign, overwrite=True)
    assert (foreign / "notes.txt").read_text() == "mine"


def test_exported_labels_are_matched_by_name(runs, tmp_path, toy_data):
    out = tmp_path / "onnx"
    export_run(runs["cnn"], output=out)
    from layerkd.tasks import task_from_config

    reversed_task = task_from_config({**toy.TOY_TASK, "name": "toy-reversed", "labels": ["1", "0"]})
    fwd = evaluate_model(str(out), _toy_task(), file=str(toy_data[1]))
    rev = evaluate_model(str(out), reversed_task, file=str(toy_data[1]))
    assert fwd["accuracy"] == rev["accuracy"]  # the columns follow the label names
    other = task_from_config({**toy.TOY_TASK, "name": "toy-other", "labels": ["neg", "pos"]})
    with pytest.raises(Exception, match=r"was exported for labels 0, 1 but task toy-other has neg, pos"):
        evaluate_model(str(out), other, file=str(toy_data[1]))


@pytest.mark.slow
def test_dynamo_exporter(runs, tmp_path):
    """torch's torch.export-based exporter works too (slower; needs onnxscript)."""
    pytest.importorskip("onnxscript")
    meta = export_run(runs["cnn"], output=tmp_path / "onnx", exporter="dynamo")
    assert meta["exporter"] == "dynamo" and meta["verification"]["passed"]


def test_missing_extra_is_one_line(runs, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(__import__("sys").modules, "onnxruntime", None)
    code, _, err = run_cli("export", runs["cnn"], "--output", tmp_path / "x", capsys=capsys)
    assert_user_error(code, err, r"layerkd export needs the onnx extra: onnxruntime is not installed \(pip install 'layerkd\[onnx\]'\)")
    assert not (tmp_path / "x").exists()


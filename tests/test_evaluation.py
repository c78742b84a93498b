"""layerkd.evaluation.score_split: outputs come back in dataset order although the batches are
length-grouped, the metrics are the task's (checked against numpy), the model's mode is restored
and the metric prefix applies to every name but ``_main``."""

from __future__ import annotations

import contextlib
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from layerkd.data.encoding import EncodedSplit, HFTextEncoder
from layerkd.data.readers import read_file
from layerkd.evaluation import score_split

FAKE_ACCELERATOR = SimpleNamespace(num_processes=1, process_index=0, device=torch.device("cpu"),
                                   autocast=contextlib.nullcontext)


@pytest.fixture(scope="module")
def pair_dev(toy_pair_task, toy_pair_data, tiny_bert_dir) -> EncodedSplit:
    enc = HFTextEncoder(AutoTokenizer.from_pretrained(str(tiny_bert_dir)))
    return EncodedSplit(read_file(toy_pair_task, toy_pair_data[1], split="dev"), {"student": enc}, 32)


def _table(n: int) -> torch.Tensor:
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(3))


def test_outputs_in_dataset_order_and_metrics_match_numpy(pair_dev, toy_pair_task):
    table = _table(len(pair_dev))
    seen = []

    def outputs(batch):
        seen.append(batch.index.tolist())
        return table[batch.index]

    model = torch.nn.Linear(1, 1).train()
    res = score_split(pair_dev, outputs, model, task=toy_pair_task, accelerator=FAKE_ACCELERATOR, batch_size=7)
    assert len(seen) == -(-len(pair_dev) // 7)
    assert sorted(i for b in seen for i in b) == list(range(len(pair_dev)))
    assert any(b != sorted(b) or b[0] != 7 * k for k, b in enumerate(seen))  # batches are not in dataset order...
    np.testing.assert_array_equal(res.outputs, table.numpy())  # ...but the outputs are
    gold = pair_dev.labels.numpy()
    pred = table.argmax(-1).numpy()
    np.testing.assert_array_equal(res.predictions, pred)
    tp = int(((pred == 1) & (gold == 1)).sum())
    f1 = 2 * tp / (int((pred == 1).sum()) + int((gold == 1).sum()))
    assert res.metrics["accuracy"] == pytest.approx(float((pred == gold).mean()))
    assert res.metrics["f1"] == pytest.approx(f1)
    assert res.main == res.metrics[toy_pair_task.main_metric]
    assert model.training  # restored


def test_prefix_and_eval_mode(pair_dev, toy_pair_task):
    table = _table(len(pair_dev))
    model = torch.nn.Linear(1, 1).eval()
    modes = []

    def outputs(batch):
        modes.append(model.training)
        return table[batch.index]

    res = score_split(pair_dev, outputs, model, task=toy_pair_task, accelerator=FAKE_ACCELERATOR, batch_size=64,
                      metric_prefix="ood/")
    assert modes and not any(modes)
    assert not model.training
    assert set(res.metrics) == {"ood/accuracy", "ood/f1", "_main"}
    assert res.main == res.metrics[f"ood/{toy_pair_task.main_metric}"]

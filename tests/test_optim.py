"""train.optimizer_impl (layerkd.optim): torch's AdamW implementations, one update, and the run hash."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from layerkd.config import TrainConfig, trained_dump, validate_run_config
from layerkd.optim import build_adamw


class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb, self.LayerNorm, self.out = nn.Embedding(50, 8), nn.LayerNorm(8), nn.Linear(8, 3)

    def forward(self, x):
        return self.out(self.LayerNorm(self.emb(x)))


def _model():
    torch.manual_seed(0)
    m = _Tiny()
    m.emb.weight.requires_grad_(False)  # frozen parameters are left out of the optimiser
    return m


def _steps(impl: str) -> torch.Tensor:
    m = _model()
    opt = build_adamw(m.named_parameters(), TrainConfig(optimizer_impl=impl, lr=1e-2))
    x = torch.tensor([[1, 2, 3], [4, 5, 6]])
    for _ in range(3):
        opt.zero_grad()
        m(x).pow(2).mean().backward()
        opt.step()
    return torch.cat([p.detach().flatten() for p in m.parameters()])


@pytest.mark.parametrize("impl, flags", [("default", {"foreach": None, "fused": None}),
                                         ("foreach", {"foreach": True, "fused": None}),
                                         ("fused", {"fused": True}), ("forloop", {"foreach": False})])
def test_each_implementation_is_what_torch_builds_with_decay_groups(impl, flags):
    m = _model()
    opt = build_adamw(m.named_parameters(), TrainConfig(optimizer_impl=impl, weight_decay=0.1))
    assert isinstance(opt, torch.optim.AdamW)
    for k, v in flags.items():
        assert opt.defaults[k] == v, (k, opt.defaults[k])
    decay, rest = opt.param_groups
    assert [p.shape for p in decay["params"]] == [torch.Size([3, 8])] and decay["weight_decay"] == 0.1
    assert [p.shape for p in rest["params"]] == [torch.Size([8]), torch.Size([8]), torch.Size([3])]
    assert rest["weight_decay"] == 0.0


def test_implementations_compute_the_same_update():
    ref = _steps("default")
    for impl in ("foreach", "fused", "forloop"):
        torch.testing.assert_close(_steps(impl), ref, rtol=1e-5, atol=1e-6)
    assert not torch.equal(ref, torch.cat([p.detach().flatten() for p in _model().parameters()]))  # it did train


def test_default_stays_out_of_the_run_hash_any_other_value_enters_it():
    base = {"task": "sst-2", "data": {"data_dir": "glue"}, "model": "m", "output_dir": "out"}
    default = trained_dump(validate_run_config(base))
    assert "optimizer_impl" not in default["train"]
    fused = trained_dump(validate_run_config({**base, "train": {"optimizer_impl": "fused"}}))
    assert fused["train"]["optimizer_impl"] == "fused"
    assert {k: v for k, v in fused["train"].items() if k != "optimizer_impl"} == default["train"]


def test_an_unknown_implementation_is_refused():
    with pytest.raises(ValueError, match="optimizer_impl"):
        TrainConfig(optimizer_impl="sparse")

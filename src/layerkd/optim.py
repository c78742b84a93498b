"""The optimiser every layerkd training run uses: AdamW with decoupled weight decay on the weights
(not on biases and layer norms), built here from a :class:`~layerkd.config.TrainConfig`.

``train.optimizer_impl`` chooses torch's implementation of the same update (issue 22 point 2, a
student-side throughput lever):

* ``default`` — torch's own choice: the multi-tensor (``foreach``) kernels on CUDA, the per-parameter
  for-loop on the CPU (torch 2.13 has no CPU foreach default);
* ``foreach`` — the multi-tensor kernels (``foreach=True``);
* ``fused`` — one fused kernel per parameter group (``fused=True``; CPU and CUDA in torch ≥ 2.4);
* ``forloop`` — the per-parameter loop (``foreach=False``).

They compute the same update up to the order of floating-point operations, so a run's numbers can
differ in the last bits: any value but ``default`` enters the run hash (``default`` is left out,
:data:`layerkd.config.ADDED_OPTIONS`, so runs recorded before the option existed keep their keys).
``benchmarks/levers.py`` measures what each costs and changes.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

IMPLEMENTATIONS: dict[str, dict] = {
    "default": {},
    "foreach": {"foreach": True},
    "fused": {"fused": True},
    "forloop": {"foreach": False},
}


def no_decay(name: str) -> bool:
    """Parameters without weight decay: biases and layer norms."""
    n = name.lower()
    return n.endswith("bias") or "layernorm" in n or "layer_norm" in n or n.endswith(".ln.weight")


def build_adamw(named_parameters: Iterable[tuple[str, torch.nn.Parameter]], cfg) -> torch.optim.AdamW:
    """AdamW over the trainable parameters (frozen ones are left out), two weight-decay groups."""
    decay, rest = [], []
    for name, p in named_parameters:
        if p.requires_grad:
            (rest if no_decay(name) else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    impl = IMPLEMENTATIONS[getattr(cfg, "optimizer_impl", "default")]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=cfg.lr, eps=cfg.adam_eps, **impl)
